"""``fastspawn.Popen`` against ``subprocess.Popen``: the same session of
calls (attributes, repr, poll/wait/communicate, signals, context manager,
timeouts, __del__) is played through both classes and what each step gave
must match. Then the few things fastspawn promises beyond the stdlib
(pidfd-based wait, signalling through the pidfd).

Every test runs on both backends (the autouse ``backend`` fixture).
"""
import fcntl
import gc
import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import pytest

import fastspawn
from fastspawn import _popen
from fsutil import approx_timeout, describe_exception, digest, wait_exited

PIPE = subprocess.PIPE
STDOUT = subprocess.STDOUT
DEVNULL = subprocess.DEVNULL

IMPLS = (("subprocess", subprocess), ("fastspawn", fastspawn))


def sh(cmd, *extra):
    return ["sh", "-c", cmd] + list(extra)


class Recorder:
    """Records what each step of a session gave (value or exception)."""

    def __init__(self):
        self.steps = []

    def __call__(self, label, func, *args, **kwargs):
        try:
            value = func(*args, **kwargs)
        except Exception as e:
            self.steps.append((label, describe_exception(e)))
            return e
        self.steps.append((label, digest(value)))
        return value

    def note(self, label, value):
        self.steps.append((label, digest(value)))


def play(session, *args, parallel=False):
    """Run ``session(mod, rec, *args)`` for subprocess and fastspawn; return
    both recordings (plus the warnings each issued). ``parallel``: run the
    two side by side (for sessions that mostly wait; warnings are not
    recorded then: catch_warnings is process-wide)."""
    if parallel:
        return _play_parallel(session, args)
    out = {}
    for tag, mod in IMPLS:
        rec = Recorder()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            session(mod, rec, *args)
        rec.note("warnings", [(w.category.__name__, _no_digits(w.message))
                              for w in caught])
        out[tag] = rec.steps
    return out


def _play_parallel(session, args):
    out = {}
    errors = []

    def worker(tag, mod):
        rec = Recorder()
        try:
            session(mod, rec, *args)
        except BaseException as e:  # pragma: no cover - re-raised below
            errors.append(e)
        out[tag] = rec.steps

    threads = [threading.Thread(target=worker, args=impl) for impl in IMPLS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "session hung for 60 s"
    if errors:
        raise errors[0]
    return out


def _no_digits(msg):
    import re
    return re.sub(r"\d+", "<n>", str(msg))


def assert_same(session, *args, parallel=False):
    res = play(session, *args, parallel=parallel)
    assert res["fastspawn"] == res["subprocess"]
    return res["fastspawn"]


def stream_info(f):
    if f is None:
        return None
    info = {"type": type(f).__name__, "mode": getattr(f, "mode", None),
            "closed": f.closed}
    for name in ("encoding", "errors", "line_buffering"):
        if hasattr(f, name):
            info[name] = getattr(f, name)
    if not f.closed:
        if hasattr(fcntl, "F_GETPIPE_SZ"):      # Python >= 3.10
            info["pipe_size"] = fcntl.fcntl(f.fileno(), fcntl.F_GETPIPE_SZ)
        info["inheritable"] = os.get_inheritable(f.fileno())
    return info


# ---------------------------------------------------------------------------
# identity of the public objects


def test_popen_is_a_subprocess_popen():
    with fastspawn.Popen(["true"]) as p:
        assert isinstance(p, subprocess.Popen)
    assert issubclass(fastspawn.Popen, subprocess.Popen)
    assert fastspawn.Popen.__name__ == "Popen"


@pytest.mark.parametrize("name", [
    "CalledProcessError", "TimeoutExpired", "SubprocessError", "PIPE",
    "STDOUT", "DEVNULL", "list2cmdline"])
def test_same_objects_as_subprocess(name):
    assert getattr(fastspawn, name) is getattr(subprocess, name)


def test_exception_hierarchy_catchable_as_subprocess():
    with pytest.raises(subprocess.CalledProcessError):
        fastspawn.run(sh("exit 1"), check=True)
    with pytest.raises(subprocess.TimeoutExpired):
        fastspawn.run(["sleep", "5"], timeout=0.05)
    with pytest.raises(subprocess.SubprocessError):
        fastspawn.run(["true"], preexec_fn=lambda: 1 / 0)


def test_completed_process_is_a_subprocess_completed_process():
    r = fastspawn.run(["true"])
    assert isinstance(r, subprocess.CompletedProcess)
    assert issubclass(fastspawn.CompletedProcess, subprocess.CompletedProcess)
    assert repr(r) == repr(subprocess.run(["true"]))


def test_list2cmdline_same_results():
    for seq in (["a b", 'c"d', "e\\", ""], ["plain"], []):
        assert fastspawn.list2cmdline(seq) == subprocess.list2cmdline(seq)


# ---------------------------------------------------------------------------
# attributes and stream objects


ATTR_CASES = {
    "binary": {},
    "text": {"text": True},
    "universal-newlines": {"universal_newlines": True},
    "encoding": {"encoding": "latin-1"},
    "errors-only": {"errors": "replace"},
    "encoding-errors": {"encoding": "ascii", "errors": "backslashreplace"},
    "bufsize-0": {"bufsize": 0},
    "bufsize-1-text": {"bufsize": 1, "text": True},
    "bufsize-1-binary": {"bufsize": 1},
    "bufsize-4096": {"bufsize": 4096},
    "pipesize-4096": {"pipesize": 4096},
    "pipesize-1MiB": {"pipesize": 1 << 20},
    "pipesize-minus-1": {"pipesize": -1},
}


def _attrs_session(mod, rec, kw):
    p = rec("create", mod.Popen, ["cat"], stdin=PIPE, stdout=PIPE,
            stderr=PIPE, **kw)
    if isinstance(p, Exception):     # e.g. pipesize before Python 3.10
        return
    rec.steps[-1] = ("create", "ok")
    with p:
        for name in ("args", "returncode", "text_mode", "universal_newlines",
                     "encoding", "errors", "pipesize", "_child_created"):
            rec.note(name, getattr(p, name, "<missing>"))
        rec.note("pid-is-int", type(p.pid) is int and p.pid > 0)
        rec.note("stdin", stream_info(p.stdin))
        rec.note("stdout", stream_info(p.stdout))
        rec.note("stderr", stream_info(p.stderr))
        data = "x\r\ny\n" if p.text_mode else b"x\r\ny\n"
        rec("communicate", p.communicate, data)
        rec.note("after-stdout", stream_info(p.stdout))
        rec.note("returncode-after", p.returncode)


@pytest.mark.parametrize("kw", list(ATTR_CASES.values()),
                         ids=list(ATTR_CASES))
def test_attributes_and_streams(kw):
    assert_same(_attrs_session, kw)


def _args_session(mod, rec, args, kw):
    with mod.Popen(args, **kw) as p:
        rec.note("args", p.args)
        rec.note("repr-running-shape", repr(p).split(" returncode:")[0])
    rec.note("repr-after", repr(p))
    rec.note("returncode", p.returncode)


@pytest.mark.parametrize("args,kw", [
    (["true"], {}),
    ("true", {"shell": True}),
    ([b"true"], {}),
    (("true",), {}),
    ("exit 3", {"shell": True}),
    (["true", "x" * 200], {}),       # repr is truncated at 80 characters
    (["sh", "-c", "kill -9 $$"], {}),
], ids=["list", "shell", "bytes", "tuple", "exit-3", "long", "killed"])
def test_args_and_repr(args, kw):
    assert_same(_args_session, args, kw)


def test_repr_shape():
    p = fastspawn.Popen(["sleep", "5"])
    try:
        assert repr(p) == "<Popen: returncode: None args: ['sleep', '5']>"
    finally:
        p.kill()
        p.wait()
    assert repr(p) == "<Popen: returncode: -9 args: ['sleep', '5']>"


def _pid_session(mod, rec):
    with mod.Popen(sh("echo $$"), stdout=PIPE) as p:
        out = p.stdout.read()
    rec.note("pid-matches", int(out) == p.pid)


def test_pid_is_the_childs():
    assert_same(_pid_session)


# ---------------------------------------------------------------------------
# context manager


def _with_session(mod, rec):
    with mod.Popen(sh("echo hi; echo err >&2"), stdout=PIPE,
                   stderr=PIPE) as p:
        rec("read", p.stdout.read)
    rec.note("returncode", p.returncode)
    rec.note("stdout-closed", p.stdout.closed)
    rec.note("stderr-closed", p.stderr.closed)


def _with_raising_session(mod, rec):
    def body():
        with mod.Popen(["sleep", "5"], stdin=PIPE) as p:
            p.kill()
            raise KeyError("from the body")
    rec("with", body)


def _with_stdin_session(mod, rec):
    with mod.Popen(["cat"], stdin=PIPE, stdout=PIPE) as p:
        p.stdin.write(b"written, then closed by __exit__")
    rec.note("returncode", p.returncode)
    rec.note("stdin-closed", p.stdin.closed)


@pytest.mark.parametrize("session", [_with_session, _with_raising_session,
                                     _with_stdin_session],
                         ids=["plain", "body-raises", "stdin-pipe"])
def test_context_manager(session):
    assert_same(session)


# ---------------------------------------------------------------------------
# poll / wait


def _poll_wait_session(mod, rec):
    p = mod.Popen(["sleep", "5"])
    rec("poll-running", p.poll)
    e = rec("wait-timeout", p.wait, timeout=0.1)
    rec.note("wait-timeout-type", type(e).__name__)
    rec("wait-timeout-0", p.wait, timeout=0)
    rec("wait-timeout-negative", p.wait, timeout=-1)
    rec("kill", p.kill)
    rec("wait", p.wait)
    rec("poll-after", p.poll)
    rec("wait-again", p.wait, timeout=1)
    rec.note("returncode", p.returncode)


def _wait_exit_codes_session(mod, rec):
    for cmd in ("exit 0", "exit 1", "exit 255", "kill -TERM $$",
                "kill -KILL $$"):
        p = mod.Popen(sh(cmd))
        rec(cmd + ":wait-timeout", p.wait, timeout=10)
        rec(cmd + ":poll", p.poll)


def _poll_until_exit_session(mod, rec):
    p = mod.Popen(sh("exit 7"))
    wait_exited(p.pid)
    rec("poll", p.poll)
    rec("wait", p.wait)


def _wait_external_reap_session(mod, rec):
    p = mod.Popen(sh("exit 7"))
    os.waitpid(p.pid, 0)          # someone else reaps it
    rec("wait-timeout", p.wait, timeout=5)
    rec("poll", p.poll)


def _wait_external_reap_no_timeout_session(mod, rec):
    p = mod.Popen(sh("exit 7"))
    os.waitpid(p.pid, 0)
    rec("wait", p.wait)


@pytest.mark.parametrize("session", [
    _poll_wait_session, _wait_exit_codes_session, _poll_until_exit_session,
    _wait_external_reap_session, _wait_external_reap_no_timeout_session,
], ids=["poll-wait-timeout", "exit-codes", "poll-exited",
        "external-reap-wait-timeout", "external-reap-wait"])
def test_poll_and_wait(session):
    assert_same(session)


def _threads_session(mod, rec):
    p = mod.Popen(sh("sleep 0.3; exit 5"))
    results = {}

    def waiter(name, **kw):
        results[name] = p.wait(**kw)

    threads = [threading.Thread(target=waiter, args=("timeout",),
                                kwargs={"timeout": 20}),
               threading.Thread(target=waiter, args=("plain",)),
               threading.Thread(target=waiter, args=("timeout2",),
                                kwargs={"timeout": 20})]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    rec.note("alive", [t.is_alive() for t in threads])
    rec.note("results", sorted(results.items()))
    rec.note("returncode", p.returncode)


def test_wait_from_several_threads():
    assert_same(_threads_session, parallel=True)


# ---------------------------------------------------------------------------
# signals


def _signals_session(mod, rec):
    for name, how in (("terminate", lambda p: p.terminate()),
                      ("kill", lambda p: p.kill()),
                      ("usr1", lambda p: p.send_signal(signal.SIGUSR1)),
                      ("int", lambda p: p.send_signal(signal.SIGINT))):
        p = mod.Popen(["sleep", "5"])
        rec(name, how, p)
        rec(name + ":wait", p.wait, timeout=10)
        rec(name + ":again", how, p)     # after reaping: a no-op
        rec(name + ":returncode", lambda p=p: p.returncode)


def _signal_zero_session(mod, rec):
    p = mod.Popen(["sleep", "5"])
    rec("signal-0", p.send_signal, 0)
    rec("poll", p.poll)
    p.kill()
    rec("wait", p.wait)


def _signal_exited_unreaped_session(mod, rec):
    p = mod.Popen(sh("exit 3"))
    wait_exited(p.pid)
    rec("terminate", p.terminate)     # polls first: reaped, not signalled
    rec("returncode", lambda: p.returncode)
    rec("wait", p.wait)


def _signal_after_external_reap_session(mod, rec):
    p = mod.Popen(["sleep", "5"])
    os.kill(p.pid, signal.SIGKILL)
    os.waitpid(p.pid, 0)
    rec("send_signal", p.send_signal, signal.SIGTERM)
    rec("returncode", lambda: p.returncode)
    rec("wait", p.wait)


@pytest.mark.parametrize("session", [
    _signals_session, _signal_zero_session, _signal_exited_unreaped_session,
    _signal_after_external_reap_session,
], ids=["terminate-kill-send", "signal-0", "exited-unreaped",
        "after-external-reap"])
def test_signals(session):
    assert_same(session)


# ---------------------------------------------------------------------------
# communicate


def _communicate_twice_session(mod, rec, kw):
    p = mod.Popen(sh("echo out; echo err >&2"), **kw)
    rec("first", p.communicate)
    rec("second", p.communicate)
    rec("with-input", p.communicate, b"late")
    rec("returncode", lambda: p.returncode)


@pytest.mark.parametrize("kw", [
    {"stdout": PIPE, "stderr": PIPE},
    {"stdout": PIPE, "stderr": PIPE, "text": True},
    {"stdout": PIPE},
    {"stderr": PIPE},
    {"stdin": PIPE, "stdout": PIPE},
    {},
], ids=["two-pipes", "two-pipes-text", "stdout-only", "stderr-only",
        "stdin-stdout", "no-pipes"])
def test_communicate_twice(kw):
    assert_same(_communicate_twice_session, kw)


def _resume_session(mod, rec, kw, input):
    cmd = "cat; echo a; echo e1 >&2; sleep 0.6; echo b; echo e2 >&2"
    p = mod.Popen(sh(cmd), **kw)
    e = rec("first", p.communicate, input, timeout=0.3)
    rec.note("first-raised", type(e).__name__)
    rec("second", p.communicate)
    rec("returncode", lambda: p.returncode)


@pytest.mark.parametrize("kw,input", [
    ({"stdout": PIPE, "stderr": PIPE, "stdin": DEVNULL}, None),
    ({"stdout": PIPE, "stderr": PIPE, "stdin": PIPE}, b"in\n"),
    ({"stdout": PIPE, "stderr": PIPE, "stdin": PIPE, "text": True},
     "in\r\n"),
    ({"stdout": PIPE, "stderr": STDOUT, "stdin": DEVNULL}, None),
], ids=["two-pipes", "with-input", "text", "merged-single-pipe"])
def test_communicate_after_timeout_resumes(kw, input):
    """communicate(timeout) raises TimeoutExpired with the output so far;
    a second communicate() gets all of it."""
    assert_same(_resume_session, kw, input, parallel=True)


def _timeout_no_pipes_session(mod, rec):
    p = mod.Popen(["sleep", "5"])
    e = rec("communicate", p.communicate, timeout=0.2)
    rec.steps[-1] = ("communicate", approx_timeout(rec.steps[-1][1], 0.2))
    rec.note("raised", type(e).__name__)
    p.kill()
    rec("again", p.communicate)
    rec("returncode", lambda: p.returncode)


def test_communicate_timeout_without_pipes():
    assert_same(_timeout_no_pipes_session, parallel=True)


def _prewritten_session(mod, rec):
    p = mod.Popen(["cat"], stdin=PIPE, stdout=PIPE, stderr=PIPE)
    p.stdin.write(b"pre-")
    rec("communicate", p.communicate, b"post")


def _stdin_only_session(mod, rec):
    p = mod.Popen(["cat"], stdin=PIPE, stdout=DEVNULL)
    rec("communicate", p.communicate, b"x" * 200000)
    rec("returncode", lambda: p.returncode)


def _stdin_closed_by_child_session(mod, rec):
    p = mod.Popen(sh("exec 0<&-; echo closed; sleep 0.1"), stdin=PIPE,
                  stdout=PIPE, stderr=PIPE)
    rec("communicate", p.communicate, b"y" * (1 << 20))


def _big_three_pipes_session(mod, rec):
    data = bytes(range(256)) * 8192      # 2 MiB
    p = mod.Popen(sh("cat; head -c 1000000 /dev/zero >&2"), stdin=PIPE,
                  stdout=PIPE, stderr=PIPE)
    rec("communicate", p.communicate, data)


def _text_big_session(mod, rec):
    p = mod.Popen(["cat"], stdin=PIPE, stdout=PIPE, stderr=PIPE,
                  encoding="utf-8", errors="surrogateescape")
    # ~400 KB through the pipes, CRLF and non-ASCII throughout, with a
    # surrogate-escaped byte every 3000 characters (not every 4: PyPy's
    # str.encode through an error handler costs about length x escapes,
    # minutes for 100000 of them, with subprocess as much as with us).
    rec("communicate", p.communicate,
        ("\u00e9\r\n" * 999 + "\udcff") * 100)


def _communicate_after_read_session(mod, rec):
    # The caller already read everything through the file object.
    p = mod.Popen(sh("echo one; echo two >&2"), stdout=PIPE, stderr=PIPE)
    rec("read-out", p.stdout.read)
    rec("read-err", p.stderr.read)
    rec("communicate", p.communicate)


def _input_memoryview_session(mod, rec):
    p = mod.Popen(["cat"], stdin=PIPE, stdout=PIPE, stderr=PIPE)
    rec("communicate", p.communicate, memoryview(b"0123456789")[2:8])


def _input_str_binary_session(mod, rec):
    p = mod.Popen(["cat"], stdin=PIPE, stdout=PIPE, stderr=PIPE)
    rec("communicate", p.communicate, "not bytes")
    p.kill()
    p.wait()
    for f in (p.stdin, p.stdout, p.stderr):
        f.close()


@pytest.mark.parametrize("session", [
    _prewritten_session, _stdin_only_session, _stdin_closed_by_child_session,
    _big_three_pipes_session, _text_big_session,
    _communicate_after_read_session, _input_memoryview_session,
    _input_str_binary_session,
], ids=["prewritten-stdin", "stdin-only", "child-closes-stdin",
        "big-three-pipes", "text-big", "after-read", "memoryview-input",
        "str-input-binary-mode"])
def test_communicate(session):
    assert_same(session)


# ---------------------------------------------------------------------------
# __del__ of a Popen nobody waited for


def _del_session(mod, rec):
    p = mod.Popen(sh("exit 0"))
    wait_exited(p.pid)
    pid = p.pid
    del p
    gc.collect()
    # __del__ polled: the child is reaped now.
    try:
        os.waitpid(pid, os.WNOHANG)
        rec.note("reaped", False)
    except ChildProcessError:
        rec.note("reaped", True)


def test_del_unwaited_warns_and_reaps():
    steps = assert_same(_del_session)
    assert ("warnings", [("ResourceWarning",
                          "subprocess <n> is still running")]) in steps


# ---------------------------------------------------------------------------
# exec failures at Popen level (leak checks by the autouse fixture)


def _popen_error_session(mod, rec, args, kw):
    def create():
        p = mod.Popen(args, **kw)
        p.kill()
        p.communicate()
        return "created"
    rec("create", create)


@pytest.mark.parametrize("args,kw", [
    (["nonexistent_prog_fs_xyz"], {"stdin": PIPE, "stdout": PIPE,
                                   "stderr": PIPE}),
    (["true"], {"cwd": "/nonexistent/dir", "stdout": PIPE}),
    (["true"], {"preexec_fn": lambda: 1 / 0, "stdout": PIPE}),
    (["true"], {"pass_fds": (-1,)}),
    (["true"], {"bufsize": "x"}),
    (["true"], {"text": True, "universal_newlines": False}),
    ([], {}),
], ids=["missing-program", "missing-cwd", "preexec-raises",
        "negative-pass-fd", "bad-bufsize", "text-conflict", "empty-args"])
def test_popen_errors(args, kw):
    assert_same(_popen_error_session, args, kw)


# ---------------------------------------------------------------------------
# audit events


_audit = {"on": False, "events": []}
_audit_hooked = []


def _audit_hook(event, args):
    if _audit["on"] and event == "subprocess.Popen":
        _audit["events"].append(args)


def _audited(func, *args, **kwargs):
    if not _audit_hooked:
        sys.addaudithook(_audit_hook)   # (cannot be removed: stays inert)
        _audit_hooked.append(True)
    _audit["events"] = []
    _audit["on"] = True
    try:
        try:
            func(*args, **kwargs)
        except Exception as e:
            result = type(e).__name__
        else:
            result = "ok"
    finally:
        _audit["on"] = False
    return result, digest(_audit["events"])


def _popen_wait(mod, *args, **kwargs):
    with mod.Popen(*args, **kwargs) as p:
        pass
    return p.returncode


@pytest.mark.parametrize("func,args,kw", [
    ("run", (["true"],), {}),
    ("run", (["true"],), {"capture_output": True, "env": {"A": "1"},
                          "cwd": "/"}),
    ("run", ("true",), {"shell": True}),
    ("run", (["x", "-c", "true"],), {"executable": "/bin/sh"}),
    ("run", (["nonexistent_prog_fs_xyz"],), {}),
    ("check_output", (["echo", "x"],), {}),
    ("getoutput", ("true",), {}),
    ("call", ([b"true"],), {}),
    ("popen", (["true"],), {"cwd": b"/"}),
], ids=["run", "run-env-cwd", "shell", "executable", "missing", "check_output",
        "getoutput", "call-bytes", "popen"])
def test_audit_event_subprocess_popen(func, args, kw):
    """The "subprocess.Popen" audit event (executable, args, cwd, env) is
    raised as subprocess raises it, on every path."""
    got = {}
    for tag, mod in IMPLS:
        f = (lambda *a, mod=mod, **k: _popen_wait(mod, *a, **k)) \
            if func == "popen" \
            else getattr(mod, func)
        got[tag] = _audited(f, *args, **kw)
    assert got["fastspawn"] == got["subprocess"]
    assert got["subprocess"][1], "no audit event seen"


# ---------------------------------------------------------------------------
# beyond the stdlib: what fastspawn promises on top


def _has_pidfd(p):
    """Whether ``p`` can have a pidfd (opened on first need)."""
    return p._fs_get_pidfd() >= 0


def test_wait_timeout_returns_promptly_on_exit():
    """wait(timeout) sleeps on the pidfd: it returns as soon as the child
    exits (generous bound) and does not sleep-poll waitpid meanwhile."""
    p = fastspawn.Popen(["sleep", "0.3"])
    event_driven = _has_pidfd(p) or _popen._procwait.EVENT_DRIVEN
    calls = []
    orig = p._try_wait

    def counting(flags):
        calls.append(flags)
        return orig(flags)

    p._try_wait = counting
    try:
        t0 = time.monotonic()
        assert p.wait(timeout=60) == 0
        elapsed = time.monotonic() - t0
    finally:
        del p._try_wait
        if p.returncode is None:
            p.kill()
            p.wait()
    assert elapsed < 0.3 + 2.0
    if not event_driven:
        pytest.skip("no pidfd/kqueue: wait(timeout) polls like subprocess")
    # subprocess's loop would call waitpid every <= 50 ms (about 10 times
    # here); the pidfd wait needs one look before and one after.
    assert len(calls) <= 3, calls


def test_wait_timeout_expires_on_time():
    p = fastspawn.Popen(["sleep", "5"])
    try:
        t0 = time.monotonic()
        with pytest.raises(subprocess.TimeoutExpired) as info:
            p.wait(timeout=0.2)
        assert time.monotonic() - t0 < 0.2 + 2.0
        assert info.value.timeout == 0.2
        assert p.returncode is None
    finally:
        p.kill()
        p.wait()


def test_wait_timeout_wakes_when_killed_from_another_thread():
    p = fastspawn.Popen(["sleep", "30"])
    timer = threading.Timer(0.2, p.kill)
    timer.start()
    try:
        t0 = time.monotonic()
        assert p.wait(timeout=60) == -signal.SIGKILL
        assert time.monotonic() - t0 < 0.2 + 2.0
    finally:
        timer.join()
        if p.returncode is None:
            p.kill()
            p.wait()


def test_send_signal_after_external_reap_sends_nothing(monkeypatch):
    """The child was reaped behind Popen's back (os.waitpid) and Popen
    cannot learn it (another thread holds the waitpid lock, so poll() is a
    no-op): subprocess would now os.kill() a pid that may belong to
    another process. fastspawn signals through the pidfd, which still
    names the dead child: nothing is signalled and nothing is raised."""
    p = fastspawn.Popen(["sleep", "30"])
    if not _has_pidfd(p):
        p.kill()
        p.wait()
        pytest.skip("no pidfd on this system")
    kills = []
    real_kill = os.kill

    def spy_kill(pid, sig):
        kills.append((pid, sig))
        return real_kill(pid, sig)

    sent = []
    real_pidfd_send = _popen._pidfd_send_signal

    def spy_pidfd_send(fd, sig, *a):
        sent.append(sig)
        return real_pidfd_send(fd, sig, *a)

    real_kill(p.pid, signal.SIGKILL)
    os.waitpid(p.pid, 0)                    # the external reap
    monkeypatch.setattr(os, "kill", spy_kill)
    monkeypatch.setattr(_popen, "_pidfd_send_signal", spy_pidfd_send)
    _signal_with_poll_blocked(p)
    monkeypatch.undo()
    assert kills == []
    assert sent == [signal.SIGTERM, signal.SIGTERM, signal.SIGKILL]
    assert p.wait() == 0        # the status is lost: subprocess's 0
    assert p.poll() == 0


def _signal_with_poll_blocked(p):
    """send_signal/terminate/kill while another thread holds the waitpid
    lock (poll() learns nothing): none may raise or set a returncode."""
    assert p._waitpid_lock.acquire(False)
    try:
        p.send_signal(signal.SIGTERM)       # must not raise
        p.terminate()
        p.kill()
        assert p.returncode is None
    finally:
        p._waitpid_lock.release()


def test_send_signal_after_external_reap_plain():
    """Same, without the lock held: poll() learns the child is gone; no
    signal, no exception, returncode 0 (as subprocess)."""
    p = fastspawn.Popen(["sleep", "30"])
    os.kill(p.pid, signal.SIGKILL)
    os.waitpid(p.pid, 0)
    p.send_signal(signal.SIGTERM)
    p.terminate()
    p.kill()
    assert p.returncode == 0
    assert p.wait(timeout=1) == 0


needs_pidfd = pytest.mark.skipif(
    getattr(os, "pidfd_open", None) is None
    or getattr(signal, "pidfd_send_signal", None) is None,
    reason="no pidfds here")


@needs_pidfd
def test_pidfd_is_opened_on_first_need_only():
    """No pidfd per child (it costs more than Popen's Python code): the
    first wait with a timeout or signal opens it; the reap closes it."""
    p = fastspawn.Popen(["sleep", "30"])
    assert p._fs_pidfd == -1
    with pytest.raises(subprocess.TimeoutExpired):
        p.wait(timeout=0.01)
    fd = p._fs_pidfd
    assert fd >= 0
    p.kill()
    assert p.wait() == -signal.SIGKILL
    assert p._fs_pidfd == _popen._PIDFD_GONE
    with pytest.raises(OSError):
        os.fstat(fd)            # closed with the reap


@needs_pidfd
def test_send_signal_after_external_reap_before_any_pidfd(monkeypatch):
    """The child was reaped by somebody else before fastspawn ever opened
    its pidfd, and poll() cannot learn it (the waitpid lock is held): the
    pidfd opened now fails (ESRCH), so nothing is signalled -- neither
    through a pidfd nor through os.kill(), which subprocess would call on a
    pid that may belong to another process."""
    p = fastspawn.Popen(["sleep", "30"])
    assert p._fs_pidfd == -1
    os.kill(p.pid, signal.SIGKILL)
    os.waitpid(p.pid, 0)                    # the external reap
    kills, sent = [], []
    monkeypatch.setattr(os, "kill", lambda *a: kills.append(a))
    monkeypatch.setattr(_popen, "_pidfd_send_signal",
                        lambda *a: sent.append(a))
    _signal_with_poll_blocked(p)
    monkeypatch.undo()
    assert kills == [] and sent == []
    assert p._fs_pidfd == _popen._PIDFD_GONE
    assert p.wait(timeout=1) == 0       # the status is lost: subprocess's 0


@needs_pidfd
def test_lazily_opened_pidfd_must_name_our_child():
    """A pid reused by another process after an external reap: its pidfd
    opens, but names no child of ours, so it is refused."""
    if getattr(os, "P_PIDFD", None) is None:
        pytest.skip("no waitid(P_PIDFD) here")
    fd = os.pidfd_open(os.getppid())        # some process, not our child
    try:
        assert not _popen._pidfd_names_our_child(fd)
    finally:
        os.close(fd)
    with fastspawn.Popen(["sleep", "30"]) as p:
        fd = os.pidfd_open(p.pid)
        try:
            assert _popen._pidfd_names_our_child(fd)
            p.kill()
            p._waitpid_lock.acquire()
            try:
                wait_exited(p.pid)
                # exited, not reaped: still ours
                assert _popen._pidfd_names_our_child(fd)
            finally:
                p._waitpid_lock.release()
        finally:
            os.close(fd)


def test_communicate_from_two_threads_at_once():
    """A second communicate() while another thread is in one raises
    RuntimeError (README): the two would share one loop's state (memory,
    in the C backend). The first goes on unharmed."""
    p = fastspawn.Popen(["sleep", "30"], stdout=subprocess.PIPE)
    res = []
    t = threading.Thread(target=lambda: res.append(p.communicate(timeout=60)))
    t.start()
    deadline = time.monotonic() + 30
    while p._fs_comm is None or not p._fs_comm.busy:
        assert time.monotonic() < deadline and t.is_alive()
        time.sleep(0.005)
    with pytest.raises(RuntimeError,
                       match="^communicate\\(\\) is already running in "
                             "another thread$"):
        p.communicate(timeout=60)
    p.kill()
    t.join(30)
    assert res == [(b"", None)]
    assert p.returncode == -signal.SIGKILL
    assert not p._fs_comm.busy

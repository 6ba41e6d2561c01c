"""Resource exhaustion and faults, on both backends (autouse ``backend``
fixture; the autouse leak checker insists on 0 leaked fds and 0 unreaped
children after each test):

* RLIMIT_NOFILE just above what is open: spawning with pipes raises a
  clean OSError(EMFILE), leaks nothing, and recovers once fds are freed;
  waiting and communicating need no new fd.
* RLIMIT_NPROC reached (in a separate interpreter switched to a private,
  unprivileged uid, since root ignores the limit): a clean
  BlockingIOError(EAGAIN) exactly like subprocess's, nothing leaked.
* Memory exhaustion while capturing (RLIMIT_AS, separate interpreter):
  MemoryError, the child killed and reaped, nothing leaked.
* Children killed by signals, children closing stdin early, signals at the
  parent during waits (EINTR is retried, handlers run), KeyboardInterrupt
  (no zombie), and a grandchild holding the pipes past a timeout.
"""
import errno
import gc
import os
import signal
import subprocess
import sys
import threading
import time
import weakref

import pytest

import fastspawn
from fsfault import (
    children, fds_exhausted, open_fds, outcome, private_uid, run_scenario,
)

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
STDOUT = subprocess.STDOUT
ROOT = os.geteuid() == 0
root_only = pytest.mark.skipif(not ROOT, reason="needs root (setuid)")


# ---------------------------------------------------------------------------
# RLIMIT_NOFILE


def _popen3(m):
    p = m.Popen(["cat"], stdin=PIPE, stdout=PIPE, stderr=PIPE)
    out, err = p.communicate(b"hello")
    return (p.returncode, out, err)


def _popen_stdout_only(m):
    with m.Popen(["echo", "hello"], stdout=PIPE) as p:
        return (p.wait(timeout=10), p.stdout.read())


def _popen_merged(m):
    p = m.Popen(["sh", "-c", "echo hello; echo err >&2"], stdout=PIPE,
                stderr=STDOUT)
    return (p.communicate(timeout=10), p.returncode)


def _popen_nopipes(m):
    p = m.Popen(["true"])
    return p.wait(timeout=10)


def _popen_vfork_path(m):
    # umask: the C backend's vfork child, the pure backend's fork_exec
    p = m.Popen(["cat"], stdin=PIPE, stdout=PIPE, umask=0o22)
    return p.communicate(b"hello")


def _popen_pass_fds(m):
    r, w = os.pipe()
    try:
        try:
            p = m.Popen(["sh", "-c", "echo hello > /proc/self/fd/%d" % w],
                        pass_fds=[w], stdout=DEVNULL)
            rc = p.wait(timeout=10)
        finally:
            os.close(w)
        return (rc, os.read(r, 100))
    finally:
        os.close(r)


EMFILE_CALLS = {
    "popen-3-pipes": _popen3,
    "popen-stdout": _popen_stdout_only,
    "popen-merged": _popen_merged,
    "popen-no-pipes": _popen_nopipes,
    "popen-vfork-path": _popen_vfork_path,
    "popen-pass_fds": _popen_pass_fds,
    "run-capture-input": lambda m: m.run(["cat"], input=b"hello",
                                         capture_output=True).stdout,
    "run-capture-timeout": lambda m: m.run(["cat"], input=b"hello",
                                           capture_output=True,
                                           timeout=10).stdout,
    "run-no-pipes-timeout": lambda m: m.run(["true"], timeout=10).returncode,
    "run-popen-path": lambda m: m.run(["cat"], input=b"hello",
                                      capture_output=True,
                                      close_fds=True).stdout,
    "check_output": lambda m: m.check_output(["echo", "hello"]),
    "check_output-text": lambda m: m.check_output(["echo", "hello"],
                                                  text=True),
    "call": lambda m: m.call(["true"]),
    "getoutput": lambda m: m.getoutput("echo hello"),
    "spawnv": lambda m: (os if m is subprocess else m).spawnv(
        os.P_WAIT, "/bin/true", ["true"]),
    "spawnvp-nowait": lambda m: os.waitpid((os if m is subprocess else m)
                                           .spawnvp(os.P_NOWAIT, "true",
                                                    ["true"]), 0)[1],
    "system": lambda m: (os if m is subprocess else m).system("true"),
    "popen-os": lambda m: _os_popen(m),
}


def _os_popen(m):
    with (os if m is subprocess else m).popen("echo hello") as f:
        return f.read()


@pytest.mark.parametrize("call", sorted(EMFILE_CALLS))
def test_fd_exhaustion_clean_emfile_and_recovery(call):
    """With 0..11 fds left: either it works (same result as with plenty of
    fds) or it raises OSError(EMFILE); never anything else, never a leak;
    and it works again once fds are free."""
    f = EMFILE_CALLS[call]
    want = outcome(f, fastspawn)
    assert want[0] != "raised", want
    assert want == outcome(f, subprocess)
    base = open_fds()
    seen = []
    for free in range(12):
        with fds_exhausted(free):
            got = outcome(f, fastspawn)
        seen.append(got)
        if got[0] == "raised":
            # EMFILE, from the library or from subprocess's own code it
            # runs (which names os.devnull when opening that fails).
            assert got[1] == "OSError" and got[3] == errno.EMFILE, got
            assert got[4] in (None, os.devnull), got
        else:
            assert got == want, (free, got)
        leaked = open_fds() - base
        assert not leaked, (free, leaked)
        assert not children(), (free, children())
    # Recovery: the same call under the same pressure works once fds are
    # freed (the last rounds had enough), and with no limit at all.
    assert seen[-1] == want
    assert outcome(f, fastspawn) == want


@pytest.mark.parametrize("call", ["popen-3-pipes", "run-capture-input",
                                  "check_output", "popen-vfork-path"])
def test_fd_exhaustion_really_injects_the_fault(call):
    # With no fd at all, anything that needs a pipe must fail, cleanly.
    with fds_exhausted(0):
        got = outcome(EMFILE_CALLS[call], fastspawn)
    assert got[1:4] == ("OSError", "[Errno 24] Too many open files",
                        errno.EMFILE)


@pytest.mark.parametrize("how", ["wait", "wait-timeout", "communicate",
                                 "communicate-timeout", "poll-loop",
                                 "send_signal", "kill-wait-timeout"])
def test_running_child_needs_no_new_fd(how):
    """Once started, a child can be waited for, talked to and signalled
    with no fd to spare (subprocess needs none either)."""
    cmd = ["sh", "-c", "sleep 0.3; cat; echo err >&2"]
    p = fastspawn.Popen(cmd, stdin=PIPE, stdout=PIPE, stderr=PIPE)
    try:
        with fds_exhausted(0):
            if how == "wait":
                p.stdin.close()
                res = p.wait()
            elif how == "wait-timeout":
                p.stdin.close()
                res = p.wait(timeout=10)
            elif how == "communicate":
                res = p.communicate(b"in")
            elif how == "communicate-timeout":
                res = p.communicate(b"in", timeout=10)
            elif how == "poll-loop":
                p.stdin.close()
                while p.poll() is None:
                    time.sleep(0.01)
                res = p.returncode
            elif how == "send_signal":
                p.send_signal(signal.SIGTERM)
                res = p.wait(timeout=10)
            else:
                p.kill()
                res = p.wait(timeout=10)
    finally:
        p.kill()
        p.wait()
        for f in (p.stdin, p.stdout, p.stderr):
            f.close()
    want = {"wait": 0, "wait-timeout": 0, "poll-loop": 0,
            "communicate": (b"in", b"err\n"),
            "communicate-timeout": (b"in", b"err\n"),
            "send_signal": -signal.SIGTERM,
            "kill-wait-timeout": -signal.SIGKILL}[how]
    assert res == want


def test_fd_exhaustion_from_threads():
    """Several threads spawning while fds run out: every call either works
    or raises EMFILE; nothing leaks."""
    base = open_fds()
    results = []

    def worker(i):
        for _ in range(20):
            try:
                r = fastspawn.run(["echo", str(i)], capture_output=True,
                                  timeout=10)
                results.append(("ok", r.stdout == b"%d\n" % i))
            except OSError as e:
                results.append(("err", e.errno))

    with fds_exhausted(4):
        threads = [threading.Thread(target=worker, args=(i,))
                   for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads)
    assert set(results) <= {("ok", True), ("err", errno.EMFILE)}, set(results)
    assert open_fds() == base


# ---------------------------------------------------------------------------
# RLIMIT_NPROC (a separate interpreter, switched to an unprivileged uid)

_NPROC_BODY = r"""
import errno, os, resource, subprocess
uid = %(uid)d
os.setgroups([])
os.setgid(uid)
os.setuid(uid)
soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
# This process is the only one of that uid: a limit of 1 refuses any child.
resource.setrlimit(resource.RLIMIT_NPROC, (1, hard))
fds = open_fds()
calls = {
    "run": lambda m: m.run(["true"]),
    "run-capture": lambda m: m.run(["echo", "x"], capture_output=True,
                                   input=b"x", timeout=10),
    "run-popen-path": lambda m: m.run(["true"], close_fds=True),
    "popen-pipes": lambda m: m.Popen(["true"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE),
    "popen-umask": lambda m: m.Popen(["true"], umask=0o22),
    "popen-cwd": lambda m: m.Popen(["true"], cwd="/"),
    "popen-preexec": lambda m: m.Popen(["true"], preexec_fn=lambda: None),
    "popen-session": lambda m: m.Popen(["true"], start_new_session=True),
    "check_output": lambda m: m.check_output(["echo", "x"]),
    "call-search": lambda m: m.call(["true"]),
}
for name, f in calls.items():
    RESULT[name] = (outcome(f, subprocess), outcome(f, fastspawn))
    assert open_fds() == fds, (name, open_fds() - fds)
    assert not children(), (name, children())
RESULT["spawnv"] = (outcome(os.spawnv, os.P_WAIT, "/bin/true", ["true"]),
                    outcome(fastspawn.spawnv, os.P_WAIT, "/bin/true",
                            ["true"]))
RESULT["system"] = outcome(fastspawn.system, "true")
assert open_fds() == fds
# Recovery: the soft limit back up (an unprivileged process may raise it
# up to the hard limit).
resource.setrlimit(resource.RLIMIT_NPROC, (soft, hard))
RESULT["after"] = outcome(fastspawn.run, ["echo", "back"],
                          capture_output=True)
assert open_fds() == fds
assert not children()
"""


@root_only
def test_nproc_exhausted_like_subprocess(backend):
    res = run_scenario("c" if backend.__name__.endswith("_spawn_c") else "py",
                       _NPROC_BODY % {"uid": private_uid()})
    eagain = ("raised", "BlockingIOError",
              "[Errno 11] Resource temporarily unavailable", errno.EAGAIN,
              None)
    for name in ("run", "run-capture", "run-popen-path", "popen-pipes",
                 "popen-umask", "popen-cwd", "popen-preexec", "popen-session",
                 "check_output", "call-search"):
        want, got = res[name]
        assert want == eagain, (name, want)
        assert got == want, name
    want, got = res["spawnv"]
    assert want == eagain and got == eagain
    # os.system() reports a failed fork as status 127 << 8; fastspawn's
    # system raises instead (README: exec failures raise).
    assert res["system"] == eagain
    assert res["after"] == ("completed", 0, b"back\n", b"")


# ---------------------------------------------------------------------------
# memory exhaustion while capturing

_NOMEM_BODY = r"""
import resource, subprocess
fds = open_fds()
# ~160 MiB of address space above what the interpreter uses now: the
# capture of 1 GiB cannot fit.
with open("/proc/self/status") as f:
    vm = [l for l in f if l.startswith("VmSize:")][0]
size = int(vm.split()[1]) * 1024 + 160 * 1024 * 1024
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
resource.setrlimit(resource.RLIMIT_AS, (size, hard))
cmd = ["head", "-c", str(1 << 30), "/dev/zero"]
RESULT["run"] = outcome(fastspawn.run, cmd, capture_output=True)[:2]
RESULT["run-timeout"] = outcome(fastspawn.run, cmd, capture_output=True,
                                timeout=60)[:2]
RESULT["check_output"] = outcome(fastspawn.check_output, cmd)[:2]
p = fastspawn.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
RESULT["communicate"] = outcome(p.communicate)[:2]
p.kill()
RESULT["wait"] = p.wait()
p.stdout.close()
p.stderr.close()
resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
RESULT["after"] = outcome(fastspawn.run, ["echo", "back"],
                          capture_output=True)
assert open_fds() == fds, open_fds() - fds
assert not children(), children()
"""


def test_memory_exhaustion_while_capturing(backend):
    if sys.implementation.name == "pypy":
        pytest.skip("PyPy's GC aborts the process (\"out of memory: couldn't "
                    "allocate a few KB more\") instead of raising MemoryError "
                    "when RLIMIT_AS stops an allocation; its own "
                    "subprocess.run() dies the same way here")
    res = run_scenario("c" if backend.__name__.endswith("_spawn_c") else "py",
                       _NOMEM_BODY, timeout=120)
    for name in ("run", "run-timeout", "check_output", "communicate"):
        assert res[name] == ("raised", "MemoryError"), name
    assert res["wait"] == -signal.SIGKILL
    assert res["after"] == ("completed", 0, b"back\n", b"")


# An output buffer that cannot grow (RLIMIT_AS stops _PyBytes_Resize, which
# then frees the buffer): MemoryError, and the loop stays usable -- once the
# limit is lifted, going on reads the rest of the stream into a new buffer
# (the C backend loses what the freed buffer held; the pure one what its
# readall() had read). What comes out is always a tail of the stream: never
# memory that was freed or never written.
# Under ASan (scripts/sanitize.sh), whose shadow memory rules RLIMIT_AS
# out, ASan's own allocator refuses every block over 24 MiB instead, for
# good: each buffer that reaches 16 MiB fails to grow and is lost.
_GROW_FAIL_BODY = r"""
import resource
from fastspawn import _constants as K
impl = _backend.impl
ASAN = "libasan" in open("/proc/self/maps").read()
BLOCKS = 10240                      # 40 MiB of 4 KiB blocks
WRITER = ("import os\n"
          "for i in range(%d):\n"
          "    os.write(1, b'%%015d\\n' %% i * 256)\n" % BLOCKS)

def tail_of_stream(out):
    # Block i is b"%015d\n" % i, 256 times: ``out`` must be the stream's
    # last len(out) bytes exactly. Where the lost part ends depends on how
    # the backend reads (the C loop loses whole buffers; the pure one's
    # FileIO.readall() whatever it had read): anywhere, even mid-block.
    # Compared a block at a time: under ASan no block over 24 MiB can be
    # had, so the whole stream is never made.
    if not out:
        return "nothing"
    start = BLOCKS * 4096 - len(out)
    if start < 0:
        return "longer than the stream: %d bytes" % len(out)
    view = memoryview(out)
    i, off = divmod(start, 4096)
    pos = 0
    while pos < len(out):
        block = b"%015d\n" % i * 256
        if view[pos:pos + 4096 - off] != block[off:]:
            return "not a tail: block %d differs (%d bytes from %r)" % (
                i, len(out), out[:16])
        pos += 4096 - off
        i += 1
        off = 0
    return "ok"

def start():
    res = impl.spawn(sys.executable, [sys.executable, b"-c", WRITER.encode()],
                     None, K.STDIO_INHERIT, K.STDIO_PIPE, K.STDIO_INHERIT, (),
                     None, K.CLOSE_FDS | K.WANT_PIDFD, -1, -1, -1, -1, None)
    assert res[6] == K.STEP_OK, res
    return res[0], res[1], res[3]

def limit_memory():
    # ~24 MiB of address space above what the interpreter uses now: the
    # output buffer's growth from 16 to 32 MiB cannot fit.
    if ASAN:
        return
    with open("/proc/self/status") as f:
        vm = [l for l in f if l.startswith("VmSize:")][0]
    size = int(vm.split()[1]) * 1024 + 24 * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (size, hard))

soft, hard = resource.getrlimit(resource.RLIMIT_AS)
sys.executable = os.fsencode(sys.executable)
fds = open_fds()

# run_many()'s RunLoop
pid, pidfd, r = start()
loop = impl.RunLoop(1)
loop.add(0, pid, pidfd, r, -1, None)
errors = 0
limit_memory()
while True:
    try:
        ev, slot = loop.run(None)
    except MemoryError:
        errors += 1
        assert errors < 5, "MemoryError again and again"
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        continue
    if ev == impl.LOOP_EXITED:
        break
resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
out, err = loop.take(0)
loop.close()
RESULT["loop"] = (errors, tail_of_stream(out), err)
out = None
assert os.waitstatus_to_exitcode(loop.reaped.pop(pid)) == 0  # reaped there
if pidfd >= 0:
    os.close(pidfd)

# communicate()'s Communicator
pid, pidfd, r = start()
com = impl.Communicator(-1, r, -1, None)
streams = [-1, r, -1]
errors = 0
limit_memory()
while True:
    try:
        done = com.run(None, streams)
    except MemoryError:
        errors += 1
        assert errors < 5, "MemoryError again and again"
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        continue
    if done:
        break
resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
out, err = com.output()
RESULT["communicator"] = (errors, tail_of_stream(out), err, streams)
out = com = None
os.waitpid(pid, 0)
if pidfd >= 0:
    os.close(pidfd)
assert open_fds() == fds, open_fds() - fds
assert not children(), children()
"""


def _under_asan():
    with open("/proc/self/maps") as f:
        return "libasan" in f.read()


def test_output_buffer_that_cannot_grow(backend, monkeypatch):
    if sys.implementation.name == "pypy":
        pytest.skip("PyPy's GC aborts the process instead of raising "
                    "MemoryError when RLIMIT_AS stops an allocation")
    failures = 1
    if _under_asan():
        monkeypatch.setenv("ASAN_OPTIONS", os.environ.get(
            "ASAN_OPTIONS", "") + ":allocator_may_return_null=1"
            ":max_allocation_size_mb=24")
        failures = 2        # at 16 and at 32 MiB
    res = run_scenario("c" if backend.__name__.endswith("_spawn_c") else "py",
                       _GROW_FAIL_BODY, timeout=120)
    assert res["loop"] == (failures, "ok", None)
    assert res["communicator"] == (failures, "ok", None, (-1, -1, -1))


class _Stop(Exception):
    alive = []

    def __init__(self):
        super().__init__()
        _Stop.alive.append(weakref.ref(self))


def _raise_stop(signum, frame):
    raise _Stop()


@pytest.mark.parametrize("how", ["run-capture", "run-capture-timeout",
                                 "run-no-pipes"])
def test_exception_ending_a_run_is_in_no_cycle(backend, how):
    # The exception that ends a run (from a signal handler here; a
    # MemoryError of the capture in test_memory_exhaustion_while_capturing)
    # is handed up in a result tuple: no frame may keep that tuple, or the
    # exception's traceback makes a cycle that keeps every frame's locals
    # (the output buffers) until the cyclic GC runs.
    cmd = ["sleep", "5"]
    call = {
        "run-capture": lambda: fastspawn.run(cmd, capture_output=True),
        "run-capture-timeout": lambda: fastspawn.run(
            cmd, capture_output=True, timeout=60),
        "run-no-pipes": lambda: fastspawn.run(cmd),
    }[how]
    _Stop.alive.clear()
    old = signal.signal(signal.SIGALRM, _raise_stop)
    gc.disable()
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        try:
            call()
        except _Stop:
            pass
        else:
            raise AssertionError("not interrupted")
        assert len(_Stop.alive) == 1
        assert _Stop.alive[0]() is None, gc.get_referrers(_Stop.alive[0]())
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
        gc.enable()


# ---------------------------------------------------------------------------
# children killed by signals

KILLERS = [signal.SIGKILL, signal.SIGTERM, signal.SIGSEGV, signal.SIGABRT,
           signal.SIGPIPE, signal.SIGUSR1]


@pytest.mark.parametrize("sig", KILLERS, ids=lambda s: s.name)
def test_child_killed_by_signal_like_subprocess(sig):
    cmd = ["sh", "-c", "kill -%d $$" % sig]
    calls = {
        "run": lambda m: m.run(cmd, capture_output=True),
        "run-timeout": lambda m: m.run(cmd, timeout=10),
        "run-popen": lambda m: m.run(cmd, close_fds=True),
        "call": lambda m: m.call(cmd),
        "check_call": lambda m: m.check_call(cmd),
        "check_output": lambda m: m.check_output(cmd),
        "getstatusoutput": lambda m: m.getstatusoutput(cmd[2]),
        "popen-wait": lambda m: m.Popen(cmd).wait(),
        "popen-wait-timeout": lambda m: m.Popen(cmd).wait(timeout=10),
        "popen-communicate": lambda m: _comm(m, cmd),
    }
    for name, f in calls.items():
        got = outcome(f, fastspawn)
        assert got == outcome(f, subprocess), name
        if name in ("run", "popen-wait"):
            assert got[1] == -sig
    # The os-style functions keep the parent's dispositions, as os does
    # (SIGPIPE stays ignored: that child survives its own kill).
    rc = fastspawn.spawnv(os.P_WAIT, "/bin/sh", cmd)
    assert rc == os.spawnv(os.P_WAIT, "/bin/sh", cmd)
    assert rc == (0 if sig == signal.SIGPIPE else -sig)
    assert fastspawn.system(cmd[2]) == os.system(cmd[2])


def _comm(m, cmd):
    p = m.Popen(cmd, stdin=PIPE, stdout=PIPE, stderr=PIPE)
    return p.communicate(b"x" * 100000), p.returncode


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM],
                         ids=lambda s: s.name)
@pytest.mark.parametrize("child", ["blocked-writer", "reader"])
@pytest.mark.parametrize("timeout", [None, 30])
def test_child_killed_while_communicating(sig, child, timeout):
    """Killed from another thread in the middle of an exchange -- ours
    blocked writing 16 MiB it never reads, or reading what it keeps
    writing: the exchange ends at once, the returncode says how."""
    if child == "blocked-writer":
        cmd, data = ["sh", "-c", "exec sleep 60"], b"y" * (16 << 20)
    else:
        cmd, data = ["sh", "-c", "while :; do echo y; done"], None
    p = fastspawn.Popen(cmd, stdin=PIPE, stdout=PIPE, stderr=PIPE)
    t = threading.Timer(0.15, p.send_signal, (sig,))
    t.start()
    t0 = time.monotonic()
    try:
        out, err = p.communicate(data, timeout=timeout)
    finally:
        t.join()
    assert time.monotonic() - t0 < 5
    assert p.returncode == -sig
    assert out == b"y\n" * (len(out) // 2)
    assert (len(out) > 0) == (child == "reader")


# ---------------------------------------------------------------------------
# the child closes stdin early

EARLY_CLOSERS = {
    "exits-at-once": ["true"],
    "reads-one-byte": ["head", "-c", "1"],
    "closes-stdin": ["sh", "-c", "exec 0<&-; sleep 0.05; echo done"],
    "closes-then-errs": ["sh", "-c", "exec 0<&-; echo e >&2; exit 3"],
}


@pytest.mark.parametrize("size", [1, 65536, 65537, 4 << 20])
@pytest.mark.parametrize("child", sorted(EARLY_CLOSERS))
def test_child_closes_stdin_early_like_subprocess(child, size):
    """Writes in communicate() that hit a closed pipe do not raise
    BrokenPipeError (as in subprocess)."""
    cmd = EARLY_CLOSERS[child]
    data = b"z" * size
    calls = {
        "communicate": lambda m: _comm_kw(m, cmd, data),
        "communicate-timeout": lambda m: _comm_kw(m, cmd, data, timeout=30),
        "run": lambda m: m.run(cmd, input=data, capture_output=True),
        "run-stdin-only": lambda m: m.run(cmd, input=data, stdout=DEVNULL,
                                          stderr=DEVNULL),
        "run-timeout": lambda m: m.run(cmd, input=data, capture_output=True,
                                       timeout=30),
        "run-popen": lambda m: m.run(cmd, input=data, capture_output=True,
                                     close_fds=True),
        "check_output": lambda m: outcome(m.check_output, cmd, input=data,
                                          stderr=DEVNULL),
    }
    for name, f in calls.items():
        got = outcome(f, fastspawn)
        assert got == outcome(f, subprocess), name
        assert "BrokenPipeError" not in str(got)


def _comm_kw(m, cmd, data, timeout=None):
    p = m.Popen(cmd, stdin=PIPE, stdout=PIPE, stderr=PIPE)
    return p.communicate(data, timeout=timeout), p.returncode


# ---------------------------------------------------------------------------
# signals at the parent while it waits: EINTR retried, handlers run


@pytest.fixture
def alarm_storm():
    """SIGALRM every 5 ms with a counting handler; restored afterwards."""
    hits = []
    old = signal.signal(signal.SIGALRM, lambda s, f: hits.append(s))
    signal.setitimer(signal.ITIMER_REAL, 0.005, 0.005)
    try:
        yield hits
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)


SLOW = ["sh", "-c", "sleep 0.15; cat; echo out; echo err >&2"]
STORM_CALLS = {
    "run": lambda m: m.run(SLOW, input=b"in" * 100000, capture_output=True),
    "run-timeout": lambda m: m.run(SLOW, input=b"in", capture_output=True,
                                   timeout=30),
    "run-no-pipes-timeout": lambda m: m.run(["sleep", "0.15"],
                                            timeout=30).returncode,
    # the C backend's spawn_wait(): wait4 in C, EINTR back to the handlers
    "run-no-pipes": lambda m: m.run(["sleep", "0.15"]).returncode,
    "run-popen": lambda m: m.run(SLOW, input=b"in", capture_output=True,
                                 close_fds=True),
    "check_output": lambda m: m.check_output(SLOW, input=b"in"),
    "call": lambda m: m.call(["sleep", "0.15"]),
    "wait": lambda m: m.Popen(["sleep", "0.15"]).wait(),
    "wait-timeout": lambda m: m.Popen(["sleep", "0.15"]).wait(timeout=30),
    "communicate": lambda m: _comm_kw(m, SLOW, b"in" * 100000),
    "communicate-timeout": lambda m: _comm_kw(m, SLOW, b"in", timeout=30),
    "spawnv": lambda m: (os if m is subprocess else m).spawnv(
        os.P_WAIT, "/bin/sleep", ["sleep", "0.15"]),
    "system": lambda m: (os if m is subprocess else m).system("sleep 0.15"),
}


@pytest.mark.parametrize("call", sorted(STORM_CALLS))
def test_signal_storm_during_wait_like_subprocess(call, alarm_storm):
    f = STORM_CALLS[call]
    got = outcome(f, fastspawn)
    n = len(alarm_storm)
    assert got == outcome(f, subprocess)
    assert got[0] != "raised", got
    # The handler really ran while fastspawn waited (> 0.15 s at 5 ms).
    assert n >= 10, n


class _Boom(Exception):
    pass


LONG = ["sh", "-c", "sleep 5; cat"]
LONG_CALLS = {
    "run": lambda m: m.run(LONG, input=b"x", capture_output=True),
    "run-timeout": lambda m: m.run(LONG, input=b"x", capture_output=True,
                                   timeout=30),
    "run-popen": lambda m: m.run(LONG, input=b"x", capture_output=True,
                                 close_fds=True),
    "check_output": lambda m: m.check_output(LONG, input=b"x"),
    "call": lambda m: m.call(LONG),
    "run-no-pipes": lambda m: m.run(["sleep", "5"]),
}


@pytest.mark.parametrize("call", ["run", "run-timeout", "run-popen",
                                  "run-no-pipes",
                                  "check_output", "call", "communicate",
                                  "communicate-timeout", "wait",
                                  "wait-timeout"])
def test_handler_exception_during_wait_propagates(call):
    """An exception raised by a signal handler while fastspawn waits (GIL
    released, in C for the compiled backend) comes out promptly; the
    child is reaped (run & co.) or still under the caller's control."""
    def boom(s, f):
        raise _Boom()
    old = signal.signal(signal.SIGALRM, boom)
    signal.setitimer(signal.ITIMER_REAL, 0.2)
    t0 = time.monotonic()
    try:
        with pytest.raises(_Boom):
            if call in ("communicate", "communicate-timeout", "wait",
                        "wait-timeout"):
                _popen_boom(call)
            else:
                LONG_CALLS[call](fastspawn)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)
    assert time.monotonic() - t0 < 5
    gc.collect()
    # run()/check_output() reap what they started; call() leaves the killed
    # child to subprocess's _cleanup(), which the next Popen runs.
    fastspawn.run(["true"])
    for pid, state in children():
        raise AssertionError("child %d left in state %s" % (pid, state))


def _popen_boom(call):
    p = fastspawn.Popen(["sleep", "5"], stdin=PIPE, stdout=PIPE,
                        stderr=PIPE)
    try:
        if call == "communicate":
            p.communicate(b"x")
        elif call == "communicate-timeout":
            p.communicate(b"x", timeout=30)
        elif call == "wait":
            p.wait()
        else:
            p.wait(timeout=30)
    finally:
        # The child is still the caller's: kill and reap it.
        assert p.poll() is None
        p.kill()
        p.communicate()
        assert p.returncode == -signal.SIGKILL


# ---------------------------------------------------------------------------
# KeyboardInterrupt (SIGINT sent to this process from a thread)


@pytest.fixture
def sigint_soon():
    old = signal.signal(signal.SIGINT, signal.default_int_handler)
    timers = []

    def arm(delay=0.15):
        t = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
        timers.append(t)
        t.start()
    try:
        yield arm
    finally:
        for t in timers:
            t.cancel()
            t.join()
        signal.signal(signal.SIGINT, old)


INTERRUPTIBLE = {
    "run": lambda m: m.run(["sleep", "10"]),
    "run-capture": lambda m: m.run(["sleep", "10"], capture_output=True,
                                   input=b"x"),
    "run-timeout": lambda m: m.run(["sleep", "10"], timeout=30),
    "run-capture-timeout": lambda m: m.run(["sleep", "10"],
                                           capture_output=True, timeout=30),
    "run-popen": lambda m: m.run(["sleep", "10"], capture_output=True,
                                 close_fds=True),
    "check_output": lambda m: m.check_output(["sleep", "10"]),
    "check_output-timeout": lambda m: m.check_output(["sleep", "10"],
                                                     timeout=30),
    "call": lambda m: m.call(["sleep", "10"]),
}


@pytest.mark.parametrize("call", sorted(INTERRUPTIBLE))
def test_keyboard_interrupt_in_run_leaves_no_zombie(call, sigint_soon):
    sigint_soon()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        INTERRUPTIBLE[call](fastspawn)
    elapsed = time.monotonic() - t0
    # subprocess waits up to 0.25 s for the child to die of the same ^C.
    assert elapsed < 2, elapsed
    # fastspawn reaps what it started before the interrupt propagates, on
    # the direct run() path and through Popen (run-popen, call) alike;
    # subprocess leaves a zombie there until a later spawn's _cleanup().
    assert children() == []


@pytest.mark.parametrize("how", ["wait", "wait-timeout", "communicate",
                                 "communicate-timeout"])
def test_keyboard_interrupt_in_popen_wait(how, sigint_soon):
    """As with subprocess, an interrupted wait()/communicate() waits
    briefly, re-raises and leaves the child to the caller, who can still
    kill and reap it: no zombie."""
    p = fastspawn.Popen(["sleep", "10"], stdin=PIPE, stdout=PIPE)
    sigint_soon()
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        if how == "wait":
            p.wait()
        elif how == "wait-timeout":
            p.wait(timeout=30)
        elif how == "communicate":
            p.communicate(b"x")
        else:
            p.communicate(b"x", timeout=30)
    assert time.monotonic() - t0 < 2
    assert p.poll() is None          # still running, the caller's
    p.kill()
    p.communicate()
    assert p.returncode == -signal.SIGKILL
    assert children() == []


@pytest.mark.parametrize("how", ["spawnv", "system"])
def test_keyboard_interrupt_in_os_functions(how, sigint_soon):
    if how == "system":
        # system() ignores SIGINT while it waits (system(3)): the shell
        # gets none either (the signal goes to this process only), so the
        # command just finishes.
        sigint_soon(0.2)
        assert fastspawn.system("sleep 0.5") == 0
        return
    sigint_soon()
    with pytest.raises(KeyboardInterrupt):
        fastspawn.spawnv(os.P_WAIT, "/bin/sleep", ["sleep", "10"])
    # os.spawnv(P_WAIT) leaves the child running on KeyboardInterrupt;
    # so does fastspawn: clean it up here.
    kids = children()
    assert len(kids) == 1
    os.kill(kids[0][0], signal.SIGKILL)
    os.waitpid(kids[0][0], 0)


# ---------------------------------------------------------------------------
# a grandchild that keeps stdout/stderr open past the timeout

GRANDCHILD = ["sh", "-c", "echo $$; sleep 60 & echo started"]


def _killpg_from(output):
    """Kill the session the shell started (its pid is the first line)."""
    if output:
        pgid = int(output.split()[0])
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass


GC_CALLS = {
    "run": lambda m: m.run(GRANDCHILD, capture_output=True, timeout=1,
                           start_new_session=True),
    "run-stdout-only": lambda m: m.run(GRANDCHILD, stdout=PIPE, timeout=1,
                                       start_new_session=True),
    "run-text": lambda m: m.run(GRANDCHILD, capture_output=True, timeout=1,
                                text=True, start_new_session=True),
    "check_output": lambda m: m.check_output(GRANDCHILD, timeout=1,
                                             start_new_session=True),
    "communicate": lambda m: _gc_communicate(m),
}


def _gc_communicate(m):
    p = m.Popen(GRANDCHILD, stdout=PIPE, stderr=PIPE,
                start_new_session=True)
    try:
        return p.communicate(timeout=1)
    except subprocess.TimeoutExpired as e:
        e.popen = p
        raise


@pytest.mark.parametrize("call", sorted(GC_CALLS))
@pytest.mark.parametrize("impl", ["fastspawn", "subprocess"])
def test_timeout_with_grandchild_holding_pipes(call, impl, backend):
    """timeout=1 returns (raises TimeoutExpired) within timeout + 1 s, never
    waiting for the grandchild. subprocess behaves the same way (checked
    here too): run() kills the shell, which has already exited, and waits
    for it, not for EOF on the pipes; communicate(timeout) raises and
    leaves the Popen to the caller."""
    if impl == "subprocess" and backend.__name__.endswith("_spawn_py"):
        pytest.skip("subprocess's own behaviour: checked once (c run)")
    m = fastspawn if impl == "fastspawn" else subprocess
    t0 = time.monotonic()
    try:
        GC_CALLS[call](m)
    except subprocess.TimeoutExpired as e:
        elapsed = time.monotonic() - t0
        out = e.output
        popen = getattr(e, "popen", None)
    else:
        raise AssertionError("no TimeoutExpired")
    try:
        assert 0.9 <= elapsed < 2.0, elapsed
        if isinstance(out, str):
            out = out.encode()
        assert out is not None and out.endswith(b"started\n"), out
    finally:
        _killpg_from(out)
        if popen is not None:
            # The shell is gone; with the grandchild killed, communicate()
            # now ends (EOF) and the Popen reaps it.
            o, _ = popen.communicate(timeout=10)
            assert popen.returncode == 0


def test_timeout_with_grandchild_direct_run_path():
    """The direct run() path (no start_new_session): the grandchild is
    found through the pid the shell prints and killed afterwards."""
    cmd = ["sh", "-c", "sleep 60 & echo $!; echo started"]
    for m in (fastspawn, subprocess):
        t0 = time.monotonic()
        with pytest.raises(subprocess.TimeoutExpired) as info:
            m.run(cmd, capture_output=True, timeout=1)
        elapsed = time.monotonic() - t0
        out = info.value.output
        try:
            os.kill(int(out.split()[0]), signal.SIGKILL)
        except (ProcessLookupError, ValueError, IndexError):
            pass
        assert 0.9 <= elapsed < 2.0, (m.__name__, elapsed)
        assert out.endswith(b"started\n")

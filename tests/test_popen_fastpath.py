"""``fastspawn.Popen``'s fast construction path against subprocess.

Common requests skip subprocess's ``__init__`` (see _popen.Popen.__init__).
For each call below, every attribute a stdlib ``Popen`` has after
``__init__`` must be there on fastspawn's, with the same value (streams:
same type, mode, buffering, encoding, errors, line buffering), and the
object must behave the same afterwards. Calls the fast path does not take
must still go through subprocess's ``__init__``. Both backends (the
autouse ``backend`` fixture).
"""
import io
import os
import subprocess
import sys
import warnings

import pytest

import fastspawn
from fastspawn import _popen

PIPE = subprocess.PIPE
STDOUT = subprocess.STDOUT
DEVNULL = subprocess.DEVNULL

# What fastspawn adds to a Popen (documented: rusage, duration) and its
# private state: everything else must be subprocess's.
OWN = {"rusage", "duration"}


def own(name):
    return name.startswith("_fs_") or name in OWN


def sh(cmd):
    return ["sh", "-c", cmd]


def _stream(f):
    """What describes a stream object, without its fd number."""
    if f is None:
        return None
    d = {"type": type(f).__name__, "mode": getattr(f, "mode", None),
         "closed": f.closed}
    if isinstance(f, io.TextIOWrapper):
        d.update(encoding=f.encoding, errors=f.errors,
                 line_buffering=f.line_buffering,
                 write_through=f.write_through, buffer=_stream(f.buffer))
    elif isinstance(f, (io.BufferedReader, io.BufferedWriter)):
        d["raw"] = type(f.raw).__name__
    return d


# Values that differ between any two children by nature.
VOLATILE = {"pid", "_waitpid_lock", "_devnull"}


def snapshot(p):
    out = {}
    for name, value in vars(p).items():
        if own(name) or name in VOLATILE:
            continue
        if name in ("stdin", "stdout", "stderr"):
            value = _stream(value)
        out[name] = value
    return out


CALLS = [
    ("argv", lambda t: ((["true"],), {})),
    ("shell string", lambda t: (("exit 0",), {"shell": True})),
    ("out pipe", lambda t: ((sh("echo hi"),), {"stdout": PIPE})),
    ("in+out+err pipes", lambda t: ((["cat"],), {
        "stdin": PIPE, "stdout": PIPE, "stderr": PIPE})),
    ("err to out", lambda t: ((sh("echo e >&2"),), {
        "stdout": PIPE, "stderr": STDOUT})),
    ("err to inherited out", lambda t: ((["true"],), {"stderr": STDOUT})),
    ("devnull all", lambda t: ((["true"],), {
        "stdin": DEVNULL, "stdout": DEVNULL, "stderr": DEVNULL})),
    ("fd and file", lambda t: ((["true"],), {
        "stdout": t["file"], "stderr": t["file"].fileno()})),
    ("text", lambda t: ((["cat"],), {
        "stdin": PIPE, "stdout": PIPE, "text": True})),
    ("universal_newlines", lambda t: ((["cat"],), {
        "stdin": PIPE, "stdout": PIPE, "universal_newlines": True})),
    ("encoding+errors, line buffered", lambda t: ((["cat"],), {
        "stdin": PIPE, "stdout": PIPE, "stderr": PIPE,
        "encoding": "latin-1", "errors": "replace", "bufsize": 1})),
    ("unbuffered", lambda t: ((["cat"],), {
        "stdin": PIPE, "stdout": PIPE, "bufsize": 0})),
    ("cwd env session", lambda t: ((["true"],), {
        "cwd": "/", "env": {"A": "1"}, "start_new_session": True,
        "close_fds": False, "restore_signals": False})),
    ("pass_fds", lambda t: ((["true"],), {"pass_fds": (t["file"].fileno(),)})),
    ("umask", lambda t: ((["true"],), {"umask": 0o22})),
    ("executable", lambda t: ((["ignored-name", "-c", "exit 0"],), {
        "executable": "/bin/sh"})),
]
if "process_group" in _popen._KWONLY:
    CALLS.append(("process_group", lambda t: ((["true"],), {
        "process_group": 0})))
if "pipesize" in _popen._KWONLY:
    CALLS.append(("pipesize default", lambda t: ((["true"],), {
        "pipesize": -1, "stdout": PIPE})))


@pytest.fixture
def targets(tmp_path):
    f = open(tmp_path / "out", "wb")
    yield {"file": f}
    f.close()


@pytest.fixture
def init_calls(monkeypatch):
    """Counts the calls that take subprocess's own __init__."""
    calls = []
    real = _popen._INIT

    def spy(self, *a, **k):
        calls.append(a[:1])
        return real(self, *a, **k)
    monkeypatch.setattr(_popen, "_INIT", spy)
    return calls


def _finish(p):
    p.communicate()


@pytest.mark.parametrize("label,make", CALLS, ids=[c[0] for c in CALLS])
def test_fast_path_attributes_match_subprocess(label, make, targets,
                                               init_calls):
    args, kwargs = make(targets)
    ref = subprocess.Popen(*args, **kwargs)
    try:
        want = snapshot(ref)
        want_names = set(vars(ref))
    finally:
        _finish(ref)
    got_p = fastspawn.Popen(*args, **kwargs)
    try:
        got = snapshot(got_p)
        got_names = {n for n in vars(got_p) if not own(n)}
    finally:
        _finish(got_p)
    assert init_calls == [], "the fast path was not taken"
    assert got == want
    # The names include those whose values are not compared.
    assert got_names == want_names
    assert got_p.returncode == ref.returncode


def test_fast_path_behaves_after_init(init_calls):
    with fastspawn.Popen(["cat"], stdin=PIPE, stdout=PIPE, stderr=PIPE,
                         text=True) as p:
        out, err = p.communicate("a\r\nb\n")
    assert (out, err, p.returncode) == ("a\nb\n", "", 0)
    assert init_calls == []
    p = fastspawn.Popen(sh("exit 3"))
    assert p.wait() == 3 and p.poll() == 3
    assert p.rusage is not None and p.duration >= 0


SLOW = [
    ("preexec_fn", ((["true"],), {"preexec_fn": lambda: None})),
    ("user", ((["true"],), {"user": os.getuid()})),
    ("group", ((["true"],), {"group": os.getgid()})),
    ("extra_groups", ((["true"],), {"extra_groups": []})),
    ("bufsize None", ((["true"],), {"bufsize": None})),
    ("pass_fds without close_fds", ((["true"],), {
        "pass_fds": (0,), "close_fds": False})),
]
if "pipesize" in _popen._KWONLY:
    SLOW.append(("pipesize", ((["true"],), {
        "stdout": PIPE, "pipesize": 65536 * 2})))


@pytest.mark.parametrize("label,call", SLOW, ids=[c[0] for c in SLOW])
def test_other_requests_take_subprocess_init(label, call, init_calls):
    args, kwargs = call
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = subprocess.Popen(*args, **kwargs)
        want_names = set(vars(ref))
        _finish(ref)
        p = fastspawn.Popen(*args, **kwargs)
    got_names = {n for n in vars(p) if not own(n)}
    _finish(p)
    assert len(init_calls) == 1
    assert got_names == want_names
    assert p.returncode == ref.returncode == 0


def test_subclass_overriding_a_bypassed_method_gets_it_called():
    seen = []

    class Mine(fastspawn.Popen):
        def _get_handles(self, stdin, stdout, stderr):
            seen.append((stdin, stdout, stderr))
            return super()._get_handles(stdin, stdout, stderr)

    class Plain(fastspawn.Popen):
        pass

    assert Mine._fs_fast_class is False and Plain._fs_fast_class is True
    with Mine(["true"], stdout=DEVNULL) as p:
        pass
    assert seen == [(None, DEVNULL, None)] and p.returncode == 0


# Errors on the fast path: same exception, same message, nothing left open
# (the autouse leak check), no child left behind.
ERRORS = [
    ("missing program", ((["/nonexistent/prog"],), {})),
    ("missing on PATH", ((["no-such-program-fastspawn"],), {
        "stdout": PIPE, "stderr": PIPE})),
    ("bad cwd", ((["true"],), {"cwd": "/nonexistent", "stdin": PIPE})),
    ("bad encoding", ((["true"],), {"stdout": PIPE, "encoding": "nope"})),
    ("text conflict", ((["true"],), {"text": True,
                                     "universal_newlines": False})),
    ("bad fileno", ((["true"],), {"stdin": PIPE, "stdout": object()})),
    ("bad fd", ((["true"],), {"stdout": 987654})),
    ("nul in argv", ((["tr\0ue"],), {"stdout": PIPE})),
    ("bad env key", ((["true"],), {"env": {"A=B": "1"}})),
    ("unknown keyword", ((["true"],), {"no_such_option": 1})),
]


def _error(call):
    args, kwargs = call
    try:
        p = subprocess.Popen(*args, **kwargs)
    except Exception as e:
        return type(e), str(e)
    _finish(p)
    return None


@pytest.mark.parametrize("label,call", ERRORS, ids=[c[0] for c in ERRORS])
def test_fast_path_errors_match_subprocess(label, call):
    want = _error(call)
    assert want is not None, "the stdlib accepted it: not an error case"
    args, kwargs = call
    with pytest.raises(want[0]) as info:
        fastspawn.Popen(*args, **kwargs)
    assert type(info.value) is want[0]
    assert str(info.value) == want[1]


@pytest.mark.skipif(sys.platform != "linux", reason="counts /proc fds")
def test_fast_path_error_after_pipes_closes_them():
    before = set(os.listdir("/proc/self/fd"))
    for _ in range(20):
        with pytest.raises(FileNotFoundError):
            fastspawn.Popen(["/nonexistent/prog"], stdin=PIPE, stdout=PIPE,
                            stderr=DEVNULL)
    assert set(os.listdir("/proc/self/fd")) <= before

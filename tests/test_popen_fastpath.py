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
from fsfault import open_fds

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
    """subprocess's exception for ``call`` (type, message), or None."""
    args, kwargs = call
    before = open_fds()
    try:
        p = subprocess.Popen(*args, **kwargs)
    except Exception as e:
        # Before 3.10 (no _on_error_fd_closer) subprocess leaves the pipes
        # it made open when a later stream fails; fastspawn closes them
        # (the leak check holds it to that), so close subprocess's here.
        for fd in open_fds() - before:
            os.close(fd)
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


# ---- communicate() of a lone output pipe --------------------------------

LONE = [
    ("stdout", {"stdout": PIPE}, "printf 'a\\nb\\n'; head -c 300000 /dev/zero"),
    ("stderr", {"stderr": PIPE}, "printf 'e\\n' >&2"),
    ("empty", {"stdout": PIPE}, "true"),
    ("unbuffered", {"stdout": PIPE, "bufsize": 0}, "echo hi"),
    ("small buffer", {"stdout": PIPE, "bufsize": 16}, "head -c 5000 /dev/zero"),
    ("text", {"stdout": PIPE, "text": True}, "printf 'x\\r\\ny\\n'"),
    ("stdout with inherited stderr", {"stdout": PIPE, "stderr": DEVNULL},
     "echo out"),
]


@pytest.mark.parametrize("label,kw,cmd", LONE, ids=[c[0] for c in LONE])
@pytest.mark.parametrize("read_first", [False, True],
                         ids=["fresh", "after-readline"])
def test_lone_pipe_communicate_matches_subprocess(label, kw, cmd,
                                                  read_first):
    """Same result as subprocess, including what an earlier readline()
    left in the file object's buffer."""
    def session(mod):
        p = mod.Popen(sh(cmd), **kw)
        first = None
        if read_first:
            f = p.stdout if p.stdout is not None else p.stderr
            first = f.readline()
        out = p.communicate()
        again = None
        try:
            p.communicate()
        except Exception as e:      # both: reading a closed file
            again = type(e)
        return first, out, p.returncode, again, (
            p.stdout is None or p.stdout.closed,
            p.stderr is None or p.stderr.closed)
    assert session(fastspawn) == session(subprocess)


def test_lone_pipe_goes_through_the_backend_loop(backend, monkeypatch):
    """On a backend whose loop beats the file object's read() (the C one),
    a lone pipe is read by Communicator; elsewhere by the file object."""
    made = []
    real = backend.Communicator

    def spy(*a):
        made.append(a[:3])
        return real(*a)
    monkeypatch.setattr(backend, "Communicator", spy)
    p = fastspawn.Popen(sh("head -c 100000 /dev/zero"), stdout=PIPE)
    out, err = p.communicate()
    assert (len(out), err, p.returncode) == (100000, None, 0)
    if backend.LONE_PIPE_LOOP:
        assert made == [(-1, made[0][1], -1)] and made[0][1] >= 0
    else:
        assert made == []


def test_communicator_seed(backend):
    r, w = os.pipe()
    com = backend.Communicator(-1, r, -1, None)
    os.write(w, b"tail")
    os.close(w)
    com.seed(0, b"head-")
    with pytest.raises(ValueError):
        com.seed(1, b"x")               # stderr is not read
    assert com.run(None, [-1, r, -1])
    assert com.output() == (b"head-tail", None)
    com = backend.Communicator(-1, -1, -1, None)
    with pytest.raises(ValueError):
        com.seed(0, b"x")


def test_communicator_seed_larger_than_a_first_buffer(backend):
    r, w = os.pipe()
    com = backend.Communicator(-1, r, -1, None)
    head = bytes(range(256)) * 400            # 100 KiB
    com.seed(0, head)
    with pytest.raises(ValueError):
        com.seed(0, b"again")
    os.write(w, b"!" * 1000)
    os.close(w)
    assert com.run(None, [-1, r, -1])
    out, _ = com.output()
    assert out == head + b"!" * 1000


def test_lone_pipe_left_non_blocking_by_the_caller():
    """subprocess's read() of a non-blocking lone pipe returns what is
    there (here: nothing, None); fastspawn does the same."""
    def session(mod):
        p = mod.Popen(sh("sleep 0.3; echo late"), stdout=PIPE)
        os.set_blocking(p.stdout.fileno(), False)
        out = p.communicate()
        return out, p.returncode
    assert session(fastspawn) == session(subprocess)


def test_loop_waits_in_poll_on_a_non_blocking_lone_fd(backend):
    """The communicate loop's lone reader (no deadline) reads without
    poll(); on a caller's non-blocking fd that found nothing it must then
    sleep in poll(), not spin: a 0.4 s wait costs next to no CPU."""
    import resource
    r, w = os.pipe()
    os.set_blocking(r, False)
    p = fastspawn.Popen(sh("sleep 0.4; echo x"), stdout=w)
    os.close(w)
    try:
        com = backend.Communicator(-1, r, -1, None)
        before = resource.getrusage(resource.RUSAGE_SELF)
        assert com.run(None, [-1, r, -1])
        after = resource.getrusage(resource.RUSAGE_SELF)
        assert com.output() == (b"x\n", None)
    finally:
        p.wait()
    cpu = ((after.ru_utime - before.ru_utime)
           + (after.ru_stime - before.ru_stime))
    assert cpu < 0.2, f"{cpu:.3f} s of CPU while waiting 0.4 s"


def test_line_buffered_binary_warns_from_subprocess_as_subprocess_does():
    """bufsize=1 without text mode: io.open's RuntimeWarning, raised where
    subprocess's own __init__ raises it (warning filters by module)."""
    def warned(mod):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            p = mod.Popen(["true"], stdout=PIPE, bufsize=1)
            p.communicate()
        return [(x.category, str(x.message), os.path.basename(x.filename))
                for x in w]
    assert warned(fastspawn) == warned(subprocess) != []

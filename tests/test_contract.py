"""Both backends against the one description of their interface
(fastspawn._contract): names, signatures, result types and the behaviour
the contract states -- every test runs on both (conftest's ``backend``).
And the constants C and Python share: written once, in the C headers;
_constants.py and _constants.pxi are generated from them and must not
drift."""
import ast
import errno
import os
import pickle
import resource
import shutil
import signal
import subprocess
import sys
import time

import pytest

import fastspawn
from fastspawn import _constants as K
from fastspawn import _contract as C

PKG_DIR = os.path.dirname(os.path.abspath(fastspawn.__file__))
ROOT = os.path.dirname(os.path.dirname(PKG_DIR))
GEN = os.path.join(ROOT, "scripts", "gen_constants.py")
in_tree = pytest.mark.skipif(
    not (os.path.isfile(GEN) and os.path.isdir(os.path.join(ROOT, "csrc"))),
    reason="needs the source tree (csrc/, scripts/)")

SH = b"/bin/sh"


def req(path, argv, stdin=K.STDIO_INHERIT, stdout=K.STDIO_INHERIT,
        stderr=K.STDIO_INHERIT, flags=0):
    """A request tuple in contract order (REQUEST)."""
    fields = dict(path=path, argv=argv, envp=None, stdin=stdin, stdout=stdout,
                  stderr=stderr, pass_fds=(), cwd=None, flags=flags,
                  pgroup=-1, umask=-1, uid=-1, gid=-1, groups=None)
    assert set(fields) == set(C.REQUEST)
    return tuple(fields[name] for name in C.REQUEST)


def ok(backend, name, value):
    assert C.check_result(backend, name, value) == []
    return value


# ---------------------------------------------------------------------------
# constants: one source (the headers), generated, checked


@in_tree
def test_constants_are_generated_from_the_headers():
    r = subprocess.run([sys.executable, GEN, "--check"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@in_tree
def test_constants_drift_is_caught(tmp_path):
    """A header value changed without regenerating: --check fails."""
    for d in ("csrc", "scripts", os.path.join("src", "fastspawn")):
        os.makedirs(tmp_path / d)
    shutil.copy(GEN, tmp_path / "scripts")
    for h in ("fs_spawn.h", "fs_loop.h"):
        shutil.copy(os.path.join(ROOT, "csrc", h), tmp_path / "csrc")
    for f in ("_constants.py", "_constants.pxi"):
        shutil.copy(os.path.join(PKG_DIR, f), tmp_path / "src" / "fastspawn")
    gen = str(tmp_path / "scripts" / "gen_constants.py")
    assert subprocess.run([sys.executable, gen, "--check"],
                          capture_output=True).returncode == 0
    loop_h = tmp_path / "csrc" / "fs_loop.h"
    text = loop_h.read_text()
    assert "#define FS_LOOP_NOTIFY   7" in text
    loop_h.write_text(text.replace("#define FS_LOOP_NOTIFY   7",
                                   "#define FS_LOOP_NOTIFY   8"))
    r = subprocess.run([sys.executable, gen, "--check"], capture_output=True,
                       text=True)
    assert r.returncode == 1
    assert "+LOOP_NOTIFY = 8" in r.stdout and "_constants.py" in r.stdout


def test_constants_module_lists_what_it_defines():
    values = {n for n in vars(K) if n.isupper()}
    assert set(K.__all__) == values
    assert all(type(getattr(K, n)) is int for n in K.__all__)


@pytest.mark.c_extension
def test_c_module_refuses_stale_constants():
    """The compiled values are compared with _constants.py at import."""
    # The package without its __init__ (which would import _spawn_c
    # first), a stale _constants, then the C module.
    code = ("import importlib, importlib.util, sys, types\n"
            "sys.path[:0] = %r\n"
            "spec = importlib.util.find_spec('fastspawn')\n"
            "pkg = types.ModuleType('fastspawn')\n"
            "pkg.__path__ = list(spec.submodule_search_locations)\n"
            "sys.modules['fastspawn'] = pkg\n"
            "import fastspawn._constants as k\n"
            "k.LOOP_IDLE = 99\n"
            "try:\n"
            "    import fastspawn._spawn_c\n"
            "except ImportError as e:\n"
            "    print('refused:', e)\n" % ([p for p in sys.path if p],))
    env = dict(os.environ)
    env.pop("FASTSPAWN_NO_EXTENSIONS", None)
    r = subprocess.run([sys.executable, "-I", "-c", code], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("refused:") and "disagree" in r.stdout


# ---------------------------------------------------------------------------
# names and signatures


def test_backend_matches_the_contract(backend):
    assert C.check_backend(backend) == []


def test_check_backend_reports_a_difference(backend, monkeypatch):
    """The checker itself finds what it is for."""
    monkeypatch.setitem(C.FUNCTIONS, "spawn_method",
                        C.Signature(C.REQUEST[:-1], int))
    problems = C.check_backend(backend)
    assert len(problems) == 1 and "spawn_method takes" in problems[0]


def _stub_params(args):
    names = [a.arg for a in args.posonlyargs + args.args]
    return tuple(n for n in names if n != "self")


def test_stub_matches_the_contract():
    """_spawn_c.pyi (what mypy and stubtest see) says what the contract
    says: the same names, functions, methods and parameters."""
    with open(os.path.join(PKG_DIR, "_spawn_c.pyi")) as f:
        tree = ast.parse(f.read())
    funcs, classes, exported = {}, {}, None
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            funcs[node.name] = _stub_params(node.args)
        elif isinstance(node, ast.ClassDef):
            classes[node.name] = {
                n.name: _stub_params(n.args) for n in node.body
                if isinstance(n, ast.FunctionDef)}
        elif (isinstance(node, ast.Assign)
              and getattr(node.targets[0], "id", None) == "__all__"):
            exported = set(ast.literal_eval(node.value))
    assert exported == C.NAMES
    assert funcs == {n: s.params for n, s in C.FUNCTIONS.items()}
    for name, spec in C.CLASSES.items():
        want = {m: s.params for m, s in spec.methods.items()}
        want.update((p, ()) for p in spec.properties)
        if spec.init is not None:
            want["__init__"] = spec.init.params
        assert classes[name] == want, name


def test_constructors_take_the_contract_keywords(backend):
    com = backend.Communicator(stdin_fd=-1, stdout_fd=-1, stderr_fd=-1,
                               input=None)
    assert ok(backend, "Communicator.run", com.run(None, [-1, -1, -1]))
    loop = backend.RunLoop(nslots=1)
    loop.close()
    with pytest.raises(TypeError):
        backend.RunLoop(slots=1)


# ---------------------------------------------------------------------------
# behaviour: spawn, spawn_method


def test_spawn_results(backend):
    res = ok(backend, "spawn", backend.spawn(*req(
        SH, [b"sh", b"-c", b"exit 3"], stdout=K.STDIO_PIPE)))
    r = C.SpawnResult(*res)
    assert r.pid > 0 and r.err_step == K.STEP_OK and r.err_errno == 0
    assert r.stdout_r >= 0 and r.stdin_w == r.stderr_r == -1
    assert not os.get_inheritable(r.stdout_r)
    assert r.method == backend.spawn_method(*req(
        SH, [b"sh", b"-c", b"exit 3"], stdout=K.STDIO_PIPE))
    assert r.method in (K.VIA_POSIX_SPAWN, K.VIA_VFORK, K.VIA_FORK)
    os.close(r.stdout_r)
    assert os.waitstatus_to_exitcode(os.waitpid(r.pid, 0)[1]) == 3

    failed = C.SpawnResult(*ok(backend, "spawn", backend.spawn(*req(
        b"/nonexistent/fastspawn-x", [b"x"], stdout=K.STDIO_PIPE))))
    assert failed.pid == failed.pidfd == failed.stdout_r == -1
    assert (failed.err_step, failed.err_errno) == (K.STEP_EXEC, errno.ENOENT)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


# ---------------------------------------------------------------------------
# behaviour: spawn_wait waits, on both backends


def _no_child_left():
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def _is_raw_rusage(backend, ru):
    assert isinstance(ru, backend.RawRusage)
    value = ru.value()
    assert isinstance(value, resource.struct_rusage)
    assert value.ru_maxrss > 0
    # It pickles as the struct_rusage it stands for.
    assert pickle.loads(pickle.dumps(ru)) == value


@pytest.mark.parametrize("flags", [0, K.FORCE_VFORK], ids=["default",
                                                            "vfork"])
def test_spawn_wait_waits(backend, flags):
    res = ok(backend, "spawn_wait", backend.spawn_wait(*req(
        SH, [b"sh", b"-c", b"exit 7"], flags=flags)))
    r = C.WaitResult(*res)
    assert r.pid > 0 and r.exc is None and r.err_step == K.STEP_OK
    assert r.status is not None, "the backend did not wait"
    assert os.waitstatus_to_exitcode(r.status) == 7
    _is_raw_rusage(backend, r.rusage)
    _no_child_left()                # reaped by spawn_wait itself


def test_spawn_wait_status_lost_when_sigchld_ignored(backend):
    old = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        res = ok(backend, "spawn_wait", backend.spawn_wait(*req(
            SH, [b"sh", b"-c", b"exit 3"])))
    finally:
        signal.signal(signal.SIGCHLD, old)
    r = C.WaitResult(*res)
    assert (r.status, r.rusage, r.exc) == (0, None, None)


def test_spawn_wait_hands_back_a_handlers_exception(backend):
    """A handler raising during the wait: the exception and the running
    child come back (status None), for the caller to settle."""
    def handler(s, f):
        raise KeyError("boom")
    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    try:
        res = ok(backend, "spawn_wait", backend.spawn_wait(*req(
            b"/bin/sleep", [b"sleep", b"5"])))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)
    r = C.WaitResult(*res)
    assert isinstance(r.exc, KeyError)
    assert r.status is None and r.rusage is None and r.pid > 0
    os.kill(r.pid, signal.SIGKILL)
    assert os.waitpid(r.pid, 0)[1] == signal.SIGKILL


# ---------------------------------------------------------------------------
# behaviour: spawn_capture


def test_spawn_capture_results(backend):
    res = ok(backend, "spawn_capture", backend.spawn_capture(*req(
        SH, [b"sh", b"-c", b"cat; echo e >&2; exit 2"], stdin=K.STDIO_PIPE,
        stdout=K.STDIO_PIPE, stderr=K.STDIO_PIPE), b"in"))
    r = C.CaptureResult(*res)
    assert (r.stdout, r.stderr, r.exc, r.fds) == (b"in", b"e\n", None, None)
    assert os.waitstatus_to_exitcode(r.status) == 2
    _is_raw_rusage(backend, r.rusage)     # the same type on both backends
    _no_child_left()


# ---------------------------------------------------------------------------
# behaviour: the loops


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "waitid"])
def test_runloop_reaps_what_it_reports_exited(backend, pidfd):
    """(LOOP_EXITED, slot): the child is reaped, its status in reaped."""
    flags = K.WANT_PIDFD if pidfd else 0
    loop = backend.RunLoop(2)
    started = {}
    try:
        for slot, code in enumerate((4, 5)):
            r = C.SpawnResult(*backend.spawn(*req(
                SH, [b"sh", b"-c", b"echo %d; exit %d" % (code, code)],
                stdout=K.STDIO_PIPE, flags=flags)))
            loop.add(slot, r.pid, r.pidfd, r.stdout_r, -1, None)
            started[slot] = (r.pid, r.pidfd, code)
        for _ in range(2):
            ev, slot = ok(backend, "RunLoop.run", loop.run(None))
            assert ev == K.LOOP_EXITED
            pid, fd, code = started.pop(slot)
            reaped = ok(backend, "RunLoop.reaped", loop.reaped)
            assert os.waitstatus_to_exitcode(reaped.pop(pid)) == code
            with pytest.raises(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            assert ok(backend, "RunLoop.take", loop.take(slot)) == (
                b"%d\n" % code, None)
            if fd >= 0:
                os.close(fd)
        assert loop.reaped == {}
        assert ok(backend, "RunLoop.run", loop.run(None)) == (K.LOOP_IDLE,
                                                              -1)
    finally:
        loop.close()
        for pid, fd, _ in started.values():
            os.waitpid(pid, 0)
            if fd >= 0:
                os.close(fd)


def test_runloop_reaped_status_lost_when_sigchld_ignored(backend):
    old = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    loop = backend.RunLoop(1)
    try:
        r = C.SpawnResult(*backend.spawn(*req(
            SH, [b"sh", b"-c", b"exit 3"], flags=K.WANT_PIDFD)))
        loop.add(0, r.pid, r.pidfd, -1, -1, None)
        assert loop.run(None) == (K.LOOP_EXITED, 0)
        assert loop.reaped == {r.pid: 0}
        if r.pidfd >= 0:
            os.close(r.pidfd)
    finally:
        loop.close()
        signal.signal(signal.SIGCHLD, old)


def test_runloop_children_left_at_close_are_the_callers(backend):
    loop = backend.RunLoop(1)
    r = C.SpawnResult(*backend.spawn(*req(b"/bin/sleep", [b"sleep", b"5"])))
    loop.add(0, r.pid, r.pidfd, -1, -1, time.monotonic())
    assert loop.run(None) == (K.LOOP_EXPIRED, 0)
    loop.close()
    assert loop.reaped == {}
    os.kill(r.pid, signal.SIGKILL)
    assert os.waitpid(r.pid, 0)[1] == signal.SIGKILL


def test_communicator_results(backend):
    r1, w1 = os.pipe()
    os.write(w1, b"out")
    os.close(w1)
    com = backend.Communicator(-1, r1, -1, None)
    assert ok(backend, "Communicator.finished", com.finished) is False
    assert ok(backend, "Communicator.run", com.run(None, [-1, r1, -1]))
    assert ok(backend, "Communicator.finished", com.finished) is True
    assert ok(backend, "Communicator.output", com.output()) == (b"out", None)
    assert ok(backend, "Communicator.input_offset", com.input_offset) == 0


@pytest.mark.skipif(not hasattr(os, "pidfd_open"), reason="no pidfds")
def test_pidfd_wait_results(backend):
    r = C.SpawnResult(*backend.spawn(*req(b"/bin/sleep", [b"sleep", b"5"],
                                          flags=K.WANT_PIDFD)))
    if r.pidfd < 0:
        os.kill(r.pid, signal.SIGKILL)
        os.waitpid(r.pid, 0)
        pytest.skip("no pidfd from this kernel")
    try:
        assert ok(backend, "pidfd_wait",
                  backend.pidfd_wait(r.pidfd, time.monotonic())) is False
        os.kill(r.pid, signal.SIGKILL)
        assert ok(backend, "pidfd_wait",
                  backend.pidfd_wait(r.pidfd, float("nan"))) is True
    finally:
        os.close(r.pidfd)
        os.waitpid(r.pid, 0)

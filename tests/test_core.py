"""Backend-level tests of ``spawn()`` / ``spawn_method()`` (both backends via
the autouse ``backend`` fixture; most scenarios also once with
FORCE_VFORK, which must behave the same way)."""
import errno
import os
import resource
import signal
import subprocess
import sys

import pytest

from fastspawn import _backend
from fastspawn import _constants as K
from fsutil import (
    HAVE_ADDCLOSEFROM, sigign_quirk,
    PY, fd_id, load_probe, make_script, probe_argv, read_all, std_fds,
    wait_exitcode, write_all,
)

SH = b"/bin/sh"
CAT = b"/bin/cat"
ENV = b"/usr/bin/env"


def _req(path, argv, envp=None, stdin=K.STDIO_INHERIT,
         stdout=K.STDIO_INHERIT, stderr=K.STDIO_INHERIT, pass_fds=(),
         cwd=None, flags=0, pgroup=-1, umask=-1, uid=-1, gid=-1,
         groups=None):
    return (path, argv, envp, stdin, stdout, stderr, tuple(pass_fds), cwd,
            flags, pgroup, umask, uid, gid, groups)


def vfork_method(backend):
    """What FORCE_VFORK gives: VIA_VFORK, except for the pure backend where
    the interpreter's fork_exec cannot vfork (CPython < 3.10, PyPy)."""
    if backend is _backend.py_impl:
        from fastspawn import _forkexec
        if not _forkexec.VFORK_CAPABLE:
            return K.VIA_FORK
    return K.VIA_VFORK


def spawn(backend, path, argv, **kw):
    """backend.spawn with defaults; checks the shape of the result and, for
    a running child, that the method is the one spawn_method() predicts."""
    args = _req(path, argv, **kw)
    res = backend.spawn(*args)
    assert isinstance(res, tuple) and len(res) == 8, res
    pid, pidfd, w0, r1, r2, method, step, err = res
    if step == K.STEP_OK:
        assert pid > 0
        assert err == 0
        if kw.get("flags", 0) & K.FORCE_VFORK:
            if (kw.get("uid", -1) >= 0 or kw.get("gid", -1) >= 0
                    or kw.get("groups") is not None):
                # credentials: a real fork is fine (CPython never vforks
                # for set*id, bpo-35823)
                assert method in (K.VIA_VFORK, K.VIA_FORK)
            else:
                assert method == vfork_method(backend)
        assert method == backend.spawn_method(*args)
        # Parent ends of pipes exist exactly where asked, never inheritable.
        for fd, kind in ((w0, kw.get("stdin")), (r1, kw.get("stdout")),
                         (r2, kw.get("stderr"))):
            if kind == K.STDIO_PIPE:
                assert fd >= 0
                assert not os.get_inheritable(fd)
            else:
                assert fd == -1
        if pidfd >= 0:
            assert not os.get_inheritable(pidfd)
    else:
        # A failed child is reaped and nothing is left open.
        assert (pid, pidfd, w0, r1, r2) == (-1, -1, -1, -1, -1), res
    return res


def run_ok(backend, path, argv, **kw):
    """Spawn, collect stdout/stderr pipes if any, wait; returns
    (exitcode, stdout bytes or None, stderr bytes or None, result)."""
    res = spawn(backend, path, argv, **kw)
    assert res[6] == K.STEP_OK, res
    out = read_all(res[3]) if res[3] >= 0 else None
    err = read_all(res[4]) if res[4] >= 0 else None
    if res[2] >= 0:
        os.close(res[2])
    if res[1] >= 0:
        os.close(res[1])
    return wait_exitcode(res[0]), out, err, res


def probe(backend, tmp_path, extra_argv=(), name="probe.json", **kw):
    out = tmp_path / name
    code, _, _, res = run_ok(backend, os.fsencode(PY),
                             probe_argv(out, *extra_argv), **kw)
    assert code == 0
    info = load_probe(out)
    info["result"] = res
    return info


def sh(script, *args):
    return [b"sh", b"-c", script.encode() if isinstance(script, str)
            else script, b"sh"] + list(args)


@pytest.fixture(params=[0, K.FORCE_VFORK, K.PREFER_POSIX_SPAWN],
                ids=["auto", "vfork", "posix"])
def vflags(request, backend):
    """Extra flags: 0 (the backend chooses), FORCE_VFORK, or
    PREFER_POSIX_SPAWN (posix_spawn wherever it can express the request)."""
    if (backend is _backend.py_impl
            and request.node.get_closest_marker("dispositions")
            and getattr(backend, "_GLIBC", None) is not None
            and backend.spawn_method(*_req(b"/bin/true", [b"true"],
                                           flags=request.param))
            == K.VIA_POSIX_SPAWN):
        pytest.skip("os.posix_spawn cannot reset glibc's internal signals: "
                    "the pure backend uses it on glibc only when asked or "
                    "where the interpreter cannot vfork (CPython < 3.10), "
                    "with that documented quirk")
    return request.param


def status_field(text, name):
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1], 16)
    raise AssertionError("%s not in status" % name)


def sigbit(sig):
    return 1 << (int(sig) - 1)


# ---------------------------------------------------------------------------
# module shape


def test_interface(backend):
    assert callable(backend.spawn)
    assert callable(backend.spawn_method)
    assert isinstance(backend.FEATURES, int)


@pytest.mark.c_extension
def test_c_features_linux(backend):
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux-only expectations")
    f = backend.FEATURES
    assert f & (1 << K.VIA_POSIX_SPAWN)
    assert f & (1 << K.VIA_VFORK)
    assert f & K.FEAT_PIDFD
    # FEAT_ADDCLOSEFROM: what this glibc has (the build's headers are the
    # running libc's here).
    assert bool(f & K.FEAT_ADDCLOSEFROM) == HAVE_ADDCLOSEFROM


# ---------------------------------------------------------------------------
# exit status, argv, envp


@pytest.mark.parametrize("code", [0, 1, 3, 255])
def test_exit_codes(backend, vflags, code):
    rc, _, _, _ = run_ok(backend, SH, sh("exit %d" % code), flags=vflags)
    assert rc == code


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_by_signal(backend, vflags, sig):
    rc, _, _, _ = run_ok(backend, SH, sh("kill -%d $$" % sig), flags=vflags)
    assert rc == -sig


def test_argv_roundtrip(backend, vflags):
    args = [b"plain", b"with space", b"'quoted'", b'"dq"', b"",
            "\u00e9t\u00e9 \u2603".encode(), b"\xff\xfe raw", b"a\nb",
            b"$HOME", b"*"]
    rc, out, _, _ = run_ok(backend, SH, sh('printf "%s\\0" "$@"', *args),
                           stdout=K.STDIO_PIPE, flags=vflags)
    assert rc == 0
    assert out.split(b"\0")[:-1] == args


def test_argv0_is_passed_not_path(backend, vflags):
    rc, out, _, _ = run_ok(backend, SH, [b"my-name", b"-c", b"echo $0"],
                           stdout=K.STDIO_PIPE, flags=vflags)
    assert (rc, out) == (0, b"my-name\n")


def test_envp_exact(backend, vflags):
    envp = [b"A=1", b"B=x y", b"C=", b"D=\xff\xfe", b"E=a=b", b"F=line1\nline2"]
    rc, out, _, _ = run_ok(backend, ENV, [b"env", b"-0"], envp=envp,
                           stdout=K.STDIO_PIPE, flags=vflags)
    assert rc == 0
    assert sorted(out.split(b"\0")[:-1]) == sorted(envp)


def test_envp_empty(backend, vflags):
    rc, out, _, _ = run_ok(backend, ENV, [b"env", b"-0"], envp=[],
                           stdout=K.STDIO_PIPE, flags=vflags)
    assert (rc, out) == (0, b"")


def test_envp_none_inherits(backend, vflags, monkeypatch):
    monkeypatch.setenv("FASTSPAWN_TEST_MARK", "inherited value")
    rc, out, _, _ = run_ok(backend, ENV, [b"env", b"-0"], envp=None,
                           stdout=K.STDIO_PIPE, flags=vflags)
    assert rc == 0
    # The reference is the C-level environ, which os.environ may lag
    # behind (e.g. readline sets LINES/COLUMNS): what subprocess passes.
    expected = subprocess.run([ENV, b"-0"], stdout=subprocess.PIPE,
                              check=True).stdout
    assert sorted(out.split(b"\0")[:-1]) == sorted(expected.split(b"\0")[:-1])
    assert b"FASTSPAWN_TEST_MARK=inherited value" in out.split(b"\0")


def test_envp_none_is_the_c_environ(backend, vflags):
    """envp=None passes the process environment (environ), like execv()
    and subprocess do, including variables set from C (not os.environ)."""
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    name = b"FASTSPAWN_C_LEVEL_ONLY"
    assert name not in os.environb
    assert libc.setenv(name, b"from C", 1) == 0
    try:
        rc, out, _, _ = run_ok(backend, ENV, [b"env", b"-0"], envp=None,
                               stdout=K.STDIO_PIPE, flags=vflags)
    finally:
        libc.unsetenv(name)
    assert rc == 0
    assert name + b"=from C" in out.split(b"\0")


# ---------------------------------------------------------------------------
# stdio: pipes, /dev/null, merged stderr


def test_stdout_pipe(backend, vflags):
    rc, out, err, res = run_ok(backend, SH, sh("printf hello"),
                               stdout=K.STDIO_PIPE, flags=vflags)
    assert (rc, out, err) == (0, b"hello", None)
    assert res[2] == -1 and res[4] == -1


def test_stderr_pipe(backend, vflags):
    rc, out, err, _ = run_ok(backend, SH, sh("printf oops >&2"),
                             stderr=K.STDIO_PIPE, flags=vflags)
    assert (rc, out, err) == (0, None, b"oops")


def test_stdin_pipe(backend, vflags):
    res = spawn(backend, CAT, [b"cat"], stdin=K.STDIO_PIPE,
                stdout=K.STDIO_PIPE, flags=vflags)
    data = b"line one\nline two\n" * 1000
    write_all(res[2], data)
    os.close(res[2])
    assert read_all(res[3]) == data
    assert wait_exitcode(res[0]) == 0


def test_three_pipes(backend, vflags):
    res = spawn(backend, SH, sh("cat; printf E >&2"), stdin=K.STDIO_PIPE,
                stdout=K.STDIO_PIPE, stderr=K.STDIO_PIPE, flags=vflags)
    write_all(res[2], b"in")
    os.close(res[2])
    assert read_all(res[3]) == b"in"
    assert read_all(res[4]) == b"E"
    assert wait_exitcode(res[0]) == 0


def test_pipe_eof_when_parent_closes(backend, vflags):
    """The child must not hold the write end of its own stdin pipe (or cat
    would never see EOF and this test would hang)."""
    res = spawn(backend, CAT, [b"cat"], stdin=K.STDIO_PIPE,
                stdout=K.STDIO_PIPE, flags=vflags)
    os.close(res[2])
    assert read_all(res[3]) == b""
    assert wait_exitcode(res[0]) == 0


def test_devnull_stdin(backend, vflags):
    rc, out, _, _ = run_ok(backend, CAT, [b"cat"], stdin=K.STDIO_DEVNULL,
                           stdout=K.STDIO_PIPE, flags=vflags)
    assert (rc, out) == (0, b"")


@pytest.mark.parametrize("which", ["stdin", "stdout", "stderr"])
def test_devnull_each(backend, vflags, which, tmp_path):
    info = probe(backend, tmp_path, flags=vflags, **{which: K.STDIO_DEVNULL})
    fd = ["stdin", "stdout", "stderr"].index(which)
    assert info["ids"][fd] == fd_id_of_path("/dev/null")


def fd_id_of_path(path):
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


def test_stderr_to_stdout_pipe(backend, vflags):
    rc, out, err, res = run_ok(backend, SH,
                               sh("printf out; printf err >&2; printf out2"),
                               stdout=K.STDIO_PIPE, stderr=K.STDIO_STDOUT,
                               flags=vflags)
    assert (rc, out, err) == (0, b"outerrout2", None)
    assert res[4] == -1


def test_stderr_to_stdout_file(backend, vflags, tmp_path):
    with open(tmp_path / "f", "wb") as f:
        rc, _, _, _ = run_ok(backend, SH, sh("printf out; printf err >&2"),
                             stdout=f.fileno(), stderr=K.STDIO_STDOUT,
                             flags=vflags)
    assert rc == 0
    assert (tmp_path / "f").read_bytes() == b"outerr"


def test_stderr_to_stdout_devnull(backend, vflags, tmp_path):
    info = probe(backend, tmp_path, stdout=K.STDIO_DEVNULL,
                 stderr=K.STDIO_STDOUT, flags=vflags)
    assert info["ids"][1] == info["ids"][2] == fd_id_of_path("/dev/null")


# ---------------------------------------------------------------------------
# stdio: given fds, including fds 0-2 in other slots


def test_given_fds(backend, vflags, tmp_path):
    (tmp_path / "in").write_bytes(b"from file")
    with open(tmp_path / "in", "rb") as fi, \
            open(tmp_path / "out", "wb") as fo, \
            open(tmp_path / "err", "wb") as fe:
        # Given fds are not inheritable: the child must still get them.
        assert not os.get_inheritable(fi.fileno())
        rc, _, _, _ = run_ok(backend, SH, sh("cat; printf E >&2"),
                             stdin=fi.fileno(), stdout=fo.fileno(),
                             stderr=fe.fileno(), flags=vflags)
    assert rc == 0
    assert (tmp_path / "out").read_bytes() == b"from file"
    assert (tmp_path / "err").read_bytes() == b"E"


def test_given_fd_also_in_child_only_at_target(backend, vflags, tmp_path):
    """A given (non-inheritable) fd >= 3 appears in the child only as the
    standard fd, not under its own number."""
    with open(tmp_path / "out", "wb") as fo:
        info = probe(backend, tmp_path, stdout=fo.fileno(), flags=vflags)
        assert fo.fileno() not in info["fds"]
        assert info["ids"][1] == fd_id(fo.fileno())


def _files(tmp_path, *names):
    return [open(tmp_path / n, "w+b") for n in names]


def test_swap_stdout_stderr(backend, vflags, tmp_path):
    fa, fb = _files(tmp_path, "a", "b")
    try:
        with std_fds(fd1=fa.fileno(), fd2=fb.fileno()):
            res = backend.spawn(*_req(SH, sh("printf out; printf err >&2"),
                                      stdout=2, stderr=1, flags=vflags))
            rc = wait_exitcode(res[0]) if res[6] == K.STEP_OK else res
    finally:
        fa.close()
        fb.close()
    assert rc == 0
    assert (tmp_path / "a").read_bytes() == b"err"
    assert (tmp_path / "b").read_bytes() == b"out"


def test_fd0_as_stdout(backend, vflags, tmp_path):
    (fc,) = _files(tmp_path, "c")
    try:
        with std_fds(fd0=fc.fileno()):
            res = backend.spawn(*_req(SH, sh("printf out"), stdout=0,
                                      flags=vflags))
            rc = wait_exitcode(res[0]) if res[6] == K.STEP_OK else res
    finally:
        fc.close()
    assert rc == 0
    assert (tmp_path / "c").read_bytes() == b"out"


def test_stdin_pipe_and_fd0_as_stdout(backend, vflags, tmp_path):
    """stdin becomes a pipe while the parent's fd 0 must become stdout: the
    parent fd 0 has to be moved out of the way before the pipe lands on 0."""
    (fc,) = _files(tmp_path, "c")
    try:
        with std_fds(fd0=fc.fileno()):
            res = backend.spawn(*_req(CAT, [b"cat"], stdin=K.STDIO_PIPE,
                                      stdout=0, flags=vflags))
    finally:
        fc.close()
    assert res[6] == K.STEP_OK, res
    write_all(res[2], b"piped")
    os.close(res[2])
    assert wait_exitcode(res[0]) == 0
    assert (tmp_path / "c").read_bytes() == b"piped"


def test_rotate_std_fds(backend, vflags, tmp_path):
    """stdin=2, stdout=0, stderr=1: every source sits on another slot."""
    fx, fy, fz = _files(tmp_path, "x", "y", "z")
    fz.write(b"input")
    fz.flush()
    fz.seek(0)
    try:
        with std_fds(fd0=fx.fileno(), fd1=fy.fileno(), fd2=fz.fileno()):
            res = backend.spawn(*_req(SH, sh("cat; printf err >&2"),
                                      stdin=2, stdout=0, stderr=1,
                                      flags=vflags))
            rc = wait_exitcode(res[0]) if res[6] == K.STEP_OK else res
    finally:
        fx.close()
        fy.close()
        fz.close()
    assert rc == 0
    assert (tmp_path / "x").read_bytes() == b"input"
    assert (tmp_path / "y").read_bytes() == b"err"


def test_stderr_stdout_merge_with_fd0_as_stdout(backend, vflags, tmp_path):
    (fc,) = _files(tmp_path, "c")
    try:
        with std_fds(fd0=fc.fileno()):
            res = backend.spawn(*_req(SH, sh("printf out; printf err >&2"),
                                      stdin=K.STDIO_DEVNULL, stdout=0,
                                      stderr=K.STDIO_STDOUT, flags=vflags))
            rc = wait_exitcode(res[0]) if res[6] == K.STEP_OK else res
    finally:
        fc.close()
    assert rc == 0
    assert (tmp_path / "c").read_bytes() == b"outerr"


def test_stdout_pipe_stderr_to_parent_fd1(backend, vflags, tmp_path):
    (fa,) = _files(tmp_path, "a")
    try:
        with std_fds(fd1=fa.fileno()):
            res = backend.spawn(*_req(SH, sh("printf out; printf err >&2"),
                                      stdout=K.STDIO_PIPE, stderr=1,
                                      flags=vflags))
    finally:
        fa.close()
    assert res[6] == K.STEP_OK, res
    assert read_all(res[3]) == b"out"
    assert wait_exitcode(res[0]) == 0
    assert (tmp_path / "a").read_bytes() == b"err"


def test_std_fd_given_as_itself_non_inheritable(backend, vflags, tmp_path):
    """stdout=1 where the parent's fd 1 is close-on-exec: the child must
    still get it (its CLOEXEC flag cleared in the child only)."""
    (fa,) = _files(tmp_path, "a")
    try:
        with std_fds(fd1=fa.fileno()):
            os.set_inheritable(1, False)
            res = backend.spawn(*_req(SH, sh("printf out"), stdout=1,
                                      flags=vflags))
            rc = wait_exitcode(res[0]) if res[6] == K.STEP_OK else res
            still_cloexec = not os.get_inheritable(1)
    finally:
        fa.close()
    assert rc == 0
    assert (tmp_path / "a").read_bytes() == b"out"
    assert still_cloexec, "the parent's fd flags must not change"


def test_parent_std_fds_closed(backend, vflags):
    """The parent has fds 0-2 closed, so the new pipes take those numbers
    (cf. CPython's test_close_fds_0_1_2): the child still gets the right
    pipe end on each standard fd."""
    import fcntl
    # PyPy 3.9's fcntl does not name F_DUPFD_CLOEXEC: the library's value.
    from fastspawn._forkexec import F_DUPFD_CLOEXEC
    saved = [fcntl.fcntl(i, F_DUPFD_CLOEXEC, 10) for i in range(3)]
    res = None
    try:
        for i in range(3):
            os.close(i)
        res = backend.spawn(*_req(SH, sh("cat; printf E >&2"),
                                  flags=vflags, **_three_pipes()))
        ends = list(res[2:5])
        for k, fd in enumerate(ends):          # move our ends off 0-2
            if 0 <= fd < 3:
                ends[k] = fcntl.fcntl(fd, F_DUPFD_CLOEXEC, 10)
                os.close(fd)
    finally:
        for i in range(3):
            os.dup2(saved[i], i, inheritable=True)
            os.close(saved[i])
    assert res[6] == K.STEP_OK, res
    write_all(ends[0], b"through fd 0")
    os.close(ends[0])
    assert read_all(ends[1]) == b"through fd 0"
    assert read_all(ends[2]) == b"E"
    assert wait_exitcode(res[0]) == 0


# ---------------------------------------------------------------------------
# inherited fds, pass_fds, CLOSE_FDS


def test_close_fds_keeps_only_std_and_pass_fds(backend, vflags, tmp_path):
    inh = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(inh, True)
    r, w = os.pipe()
    try:
        assert inh < w
        info = probe(backend, tmp_path, pass_fds=(w,),
                     flags=vflags | K.CLOSE_FDS)
    finally:
        os.close(inh)
        os.close(r)
        os.close(w)
    assert info["fds"] == [0, 1, 2, w]


def test_close_fds_without_pass_fds(backend, vflags, tmp_path):
    inh = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(inh, True)
    try:
        info = probe(backend, tmp_path, flags=vflags | K.CLOSE_FDS)
    finally:
        os.close(inh)
    assert info["fds"] == [0, 1, 2]


def test_no_close_fds_inherits_inheritable_only(backend, vflags, tmp_path):
    inh = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(inh, True)
    private = os.open(os.devnull, os.O_RDONLY)
    try:
        info = probe(backend, tmp_path, flags=vflags)
    finally:
        os.close(inh)
        os.close(private)
    assert inh in info["fds"]
    assert private not in info["fds"]


def test_pass_fd_is_usable(backend, vflags):
    r, w = os.pipe()
    try:
        code = "import os,sys; os.write(int(sys.argv[1]), b'via pass_fd')"
        rc, _, _, _ = run_ok(backend, os.fsencode(PY),
                             [b"python", b"-S", b"-c", code.encode(),
                              str(w).encode()],
                             pass_fds=(w,), flags=vflags | K.CLOSE_FDS)
        os.close(w)
        w = -1
        assert rc == 0
        assert read_all(r) == b"via pass_fd"
        r = -1
    finally:
        for fd in (r, w):
            if fd >= 0:
                os.close(fd)
    # The parent's copy keeps its close-on-exec flag (checked before close).


def test_pass_fds_keep_parent_flags(backend, vflags):
    r, w = os.pipe()
    try:
        rc, _, _, _ = run_ok(backend, b"/bin/true", [b"true"], pass_fds=(w,),
                             flags=vflags | K.CLOSE_FDS)
        assert rc == 0
        assert not os.get_inheritable(w)
    finally:
        os.close(r)
        os.close(w)


def _free_fd_numbers(count, start=100):
    used = set(int(x) for x in os.listdir("/proc/self/fd"))
    out = []
    fd = start
    while len(out) < count:
        if fd not in used:
            out.append(fd)
        fd += 7
    return out


def test_pass_fds_far_apart(backend, vflags, tmp_path):
    """pass_fds with large gaps full of inheritable fds that must close."""
    lo, mid, hi, top = _free_fd_numbers(4, start=120)
    base = os.open(os.devnull, os.O_RDONLY)
    made = []
    try:
        for fd, inheritable in ((lo, False), (mid, True), (hi, False),
                                (top, True)):
            os.dup2(base, fd, inheritable=inheritable)
            made.append(fd)
        info = probe(backend, tmp_path, pass_fds=(lo, hi),
                     flags=vflags | K.CLOSE_FDS)
    finally:
        for fd in made + [base]:
            os.close(fd)
    assert info["fds"] == [0, 1, 2, lo, hi]


def test_pass_fds_many(backend, vflags, tmp_path):
    base = os.open(os.devnull, os.O_RDONLY)
    fds = [os.dup(base) for _ in range(40)]
    try:
        passed = tuple(sorted(fds[::2]))
        for fd in fds[1::2]:
            os.set_inheritable(fd, True)
        info = probe(backend, tmp_path, pass_fds=passed,
                     flags=vflags | K.CLOSE_FDS)
    finally:
        for fd in fds + [base]:
            os.close(fd)
    assert info["fds"] == [0, 1, 2] + list(passed)


# ---------------------------------------------------------------------------
# cwd


def test_cwd(backend, vflags, tmp_path):
    d = tmp_path / "work dir"
    d.mkdir()
    info = probe(backend, tmp_path, cwd=os.fsencode(d), flags=vflags)
    assert info["cwd"] == os.path.realpath(d)


def test_cwd_relative_to_parent(backend, vflags, tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    info = probe(backend, tmp_path, cwd=b"sub", flags=vflags)
    assert info["cwd"] == os.path.realpath(tmp_path / "sub")


def test_cwd_relative_program_is_found_in_cwd(backend, vflags, tmp_path,
                                               monkeypatch):
    """Like subprocess: a relative program path is looked up in the child's
    new cwd."""
    d = tmp_path / "d"
    d.mkdir()
    make_script(d / "prog", "printf ran-in-cwd")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    rc, out, _, _ = run_ok(backend, b"./prog", [b"prog"], cwd=os.fsencode(d),
                           stdout=K.STDIO_PIPE, flags=vflags)
    assert (rc, out) == (0, b"ran-in-cwd")


def _three_pipes():
    return dict(stdin=K.STDIO_PIPE, stdout=K.STDIO_PIPE, stderr=K.STDIO_PIPE)


def test_cwd_missing(backend, vflags, tmp_path):
    res = spawn(backend, b"/bin/true", [b"true"],
                cwd=os.fsencode(tmp_path / "nope"), flags=vflags,
                **_three_pipes())
    assert res[6:] == (K.STEP_CHDIR, errno.ENOENT)


def test_cwd_is_a_file(backend, vflags, tmp_path):
    (tmp_path / "file").write_text("x")
    res = spawn(backend, b"/bin/true", [b"true"],
                cwd=os.fsencode(tmp_path / "file"), flags=vflags,
                **_three_pipes())
    assert res[6:] == (K.STEP_CHDIR, errno.ENOTDIR)


def test_cwd_missing_beats_missing_program(backend, vflags, tmp_path):
    res = spawn(backend, b"/no/such/program", [b"x"],
                cwd=os.fsencode(tmp_path / "nope"), flags=vflags)
    assert res[6:] == (K.STEP_CHDIR, errno.ENOENT)


def test_cwd_ok_program_missing(backend, vflags, tmp_path):
    res = spawn(backend, b"/no/such/program", [b"x"],
                cwd=os.fsencode(tmp_path), flags=vflags)
    assert res[6:] == (K.STEP_EXEC, errno.ENOENT)


# ---------------------------------------------------------------------------
# exec failures


def _bad_program(tmp_path, kind):
    p = tmp_path / kind
    if kind == "missing":
        pass
    elif kind == "not-executable":
        make_script(p, "exit 0", mode=0o644)
    elif kind == "directory":
        p.mkdir()
    elif kind == "garbage":
        p.write_bytes(b"\x7fELF\x00garbage" * 10)
        p.chmod(0o755)
    elif kind == "empty":
        p.write_bytes(b"")
        p.chmod(0o755)
    elif kind == "bad-interpreter":
        p.write_bytes(b"#!/no/such/interpreter\n")
        p.chmod(0o755)
    elif kind == "through-a-file":
        (tmp_path / "plain").write_text("x")
        p = tmp_path / "plain" / "prog"
    return os.fsencode(p)


@pytest.mark.parametrize("kind,err", [
    ("missing", errno.ENOENT),
    ("not-executable", errno.EACCES),
    ("directory", errno.EACCES),
    ("garbage", errno.ENOEXEC),
    ("empty", errno.ENOEXEC),
    ("bad-interpreter", errno.ENOENT),
    ("through-a-file", errno.ENOTDIR),
])
def test_exec_errors(backend, vflags, tmp_path, kind, err):
    path = _bad_program(tmp_path, kind)
    res = spawn(backend, path, [b"prog"], flags=vflags, **_three_pipes())
    assert res[6:] == (K.STEP_EXEC, err)


@pytest.mark.parametrize("extra", [
    dict(flags=K.CLOSE_FDS),
    dict(flags=K.SETSID),
    dict(pgroup=0),
    dict(umask=0o22),
    dict(flags=K.WANT_PIDFD),
    dict(flags=K.RESTORE_SIGNALS),
], ids=["close_fds", "setsid", "pgroup", "umask", "pidfd", "restore"])
def test_exec_error_with_options(backend, vflags, extra):
    extra = dict(extra)
    extra["flags"] = extra.get("flags", 0) | vflags
    res = spawn(backend, b"/no/such/program", [b"x"], **_three_pipes(),
                **extra)
    assert res[6:] == (K.STEP_EXEC, errno.ENOENT)


def test_exec_error_does_not_leave_zombie(backend, vflags):
    for _ in range(3):
        res = spawn(backend, b"/no/such/program", [b"x"], flags=vflags)
        assert res[6] == K.STEP_EXEC
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


# ---------------------------------------------------------------------------
# invalid fds


def _closed_fd():
    """An fd number that is not open and that the pipes a spawn creates
    will not take (they get the lowest free numbers)."""
    used = set(int(x) for x in os.listdir("/proc/self/fd"))
    fd = max(used) + 64
    assert fd < resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return fd


@pytest.mark.parametrize("slot", ["stdin", "stdout", "stderr"])
def test_invalid_std_fd(backend, vflags, slot):
    bad = _closed_fd()
    kw = _three_pipes()
    kw[slot] = bad
    res = spawn(backend, b"/bin/true", [b"true"], flags=vflags, **kw)
    assert res[6:] == (K.STEP_OTHER, errno.EBADF)


def test_invalid_pass_fd(backend, vflags):
    bad = _closed_fd()
    res = spawn(backend, b"/bin/true", [b"true"], pass_fds=(bad,),
                flags=vflags | K.CLOSE_FDS, **_three_pipes())
    assert res[6:] == (K.STEP_OTHER, errno.EBADF)


# ---------------------------------------------------------------------------
# umask, session, process group


@pytest.mark.parametrize("mask", [0, 0o027, 0o777])
def test_umask(backend, vflags, tmp_path, mask):
    info = probe(backend, tmp_path, umask=mask, flags=vflags)
    assert info["umask"] == mask


def test_umask_inherited_by_default(backend, vflags, tmp_path):
    old = os.umask(0o037)
    try:
        info = probe(backend, tmp_path, flags=vflags)
    finally:
        os.umask(old)
    assert info["umask"] == 0o037


def test_umask_via_shell(backend, vflags):
    rc, out, _, _ = run_ok(backend, SH, sh("umask"), umask=0o027,
                           stdout=K.STDIO_PIPE, flags=vflags)
    assert (rc, out.strip()) == (0, b"0027")


def test_setsid(backend, vflags, tmp_path):
    info = probe(backend, tmp_path, flags=vflags | K.SETSID)
    assert info["sid"] == info["pid"]
    assert info["pgid"] == info["pid"]


def test_no_setsid(backend, vflags, tmp_path):
    info = probe(backend, tmp_path, flags=vflags)
    assert info["sid"] == os.getsid(0)
    assert info["pgid"] == os.getpgid(0)


def test_pgroup_zero(backend, vflags, tmp_path):
    info = probe(backend, tmp_path, pgroup=0, flags=vflags)
    assert info["pgid"] == info["pid"]
    assert info["sid"] == os.getsid(0)


def test_pgroup_join(backend, vflags, tmp_path):
    leader = spawn(backend, CAT, [b"cat"], stdin=K.STDIO_PIPE, pgroup=0,
                   flags=vflags)
    try:
        info = probe(backend, tmp_path, pgroup=leader[0], flags=vflags)
    finally:
        os.close(leader[2])
        assert wait_exitcode(leader[0]) == 0
    assert info["pgid"] == leader[0]


def test_pgroup_nonexistent(backend, vflags):
    # A pid that just exited (and was reaped) names no process group.
    gone = spawn(backend, b"/bin/true", [b"true"])[0]
    assert wait_exitcode(gone) == 0
    res = spawn(backend, b"/bin/true", [b"true"], pgroup=gone, flags=vflags,
                **_three_pipes())
    assert res[6:] == (K.STEP_OTHER, errno.EPERM)


# ---------------------------------------------------------------------------
# signals


def _child_status(backend, flags):
    rc, out, _, _ = run_ok(backend, CAT, [b"cat", b"/proc/self/status"],
                           stdout=K.STDIO_PIPE, flags=flags)
    assert rc == 0
    return out.decode()


def _own_sigign():
    with open("/proc/self/status") as f:
        return status_field(f.read(), "SigIgn")


def test_sigpipe_ignored_is_inherited_without_restore(backend, vflags):
    assert _own_sigign() & sigbit(signal.SIGPIPE), \
        "precondition: Python ignores SIGPIPE"
    ign = status_field(_child_status(backend, vflags), "SigIgn")
    assert ign & sigbit(signal.SIGPIPE)


def test_restore_signals(backend, vflags):
    ign = status_field(_child_status(backend, vflags | K.RESTORE_SIGNALS),
                       "SigIgn")
    assert not ign & sigbit(signal.SIGPIPE)
    assert not ign & sigbit(signal.SIGXFSZ)


@pytest.mark.dispositions
def test_ignored_signals_exactly_inherited(backend, vflags):
    """The child ignores exactly what the parent ignores: nothing more (no
    libc-internal signal left SIG_IGN), nothing less."""
    ign = status_field(_child_status(backend, vflags), "SigIgn")
    assert ign == _own_sigign(), "child %#x != parent %#x" % (
        ign, _own_sigign())


@pytest.mark.dispositions
def test_ignored_signals_exactly_restored(backend, vflags):
    ign = status_field(_child_status(backend, vflags | K.RESTORE_SIGNALS),
                       "SigIgn")
    expected = _own_sigign() & ~(sigbit(signal.SIGPIPE)
                                 | sigbit(signal.SIGXFSZ))
    assert ign == expected, "child %#x != %#x" % (ign, expected)


def test_ignored_signals_same_for_every_method(backend):
    """FORCE_VFORK and the automatic choice give the same dispositions."""
    for flags in (0, K.RESTORE_SIGNALS):
        auto = status_field(_child_status(backend, flags), "SigIgn")
        vfork = status_field(_child_status(backend, flags | K.FORCE_VFORK),
                             "SigIgn")
        quirk = sigign_quirk(backend)
        assert auto & ~quirk == vfork, "flags %#x: %#x != %#x" % (
            flags, auto, vfork)


@pytest.mark.dispositions
def test_restore_signals_keeps_other_ignored(backend, vflags):
    old = signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    try:
        ign = status_field(
            _child_status(backend, vflags | K.RESTORE_SIGNALS), "SigIgn")
    finally:
        signal.signal(signal.SIGUSR1, old)
    assert ign & sigbit(signal.SIGUSR1)
    assert not ign & sigbit(signal.SIGPIPE)


def test_handled_signals_are_default_in_child(backend, vflags):
    old = signal.signal(signal.SIGUSR2, lambda *a: None)
    try:
        text = _child_status(backend, vflags)
    finally:
        signal.signal(signal.SIGUSR2, old)
    assert not status_field(text, "SigIgn") & sigbit(signal.SIGUSR2)
    assert not status_field(text, "SigCgt") & sigbit(signal.SIGUSR2)


def test_signal_mask_is_inherited(backend, vflags):
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    try:
        blk = status_field(_child_status(backend, vflags), "SigBlk")
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
    assert blk == sigbit(signal.SIGUSR1)


def test_signal_mask_empty(backend, vflags):
    assert signal.pthread_sigmask(signal.SIG_BLOCK, set()) == set()
    blk = status_field(_child_status(backend, vflags), "SigBlk")
    assert blk == 0


# ---------------------------------------------------------------------------
# pidfd


def test_want_pidfd(backend, vflags):
    if not sys.platform.startswith("linux"):
        pytest.skip("pidfd is Linux-only")
    # The pure backend opens its pidfd with os.pidfd_open, which e.g.
    # PyPy 3.9 lacks; FEATURES says so, and WANT_PIDFD then gives -1 with
    # the child started all the same.
    has_pidfd = bool(backend.FEATURES & K.FEAT_PIDFD)
    if backend is _backend.py_impl:
        assert has_pidfd == hasattr(os, "pidfd_open")
    res = spawn(backend, CAT, [b"cat"], stdin=K.STDIO_PIPE,
                flags=vflags | K.WANT_PIDFD)
    pid, pidfd = res[0], res[1]
    try:
        assert res[6] == K.STEP_OK, res
        if not has_pidfd:
            assert pidfd == -1
            return
        assert pidfd >= 0
        with open("/proc/self/fdinfo/%d" % pidfd) as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        assert int(fields["Pid"]) == pid
    finally:
        if pidfd >= 0:
            os.close(pidfd)
        os.close(res[2])
        assert wait_exitcode(pid) == 0


def test_no_pidfd_unless_asked(backend, vflags):
    res = spawn(backend, b"/bin/true", [b"true"], flags=vflags)
    assert res[1] == -1
    assert wait_exitcode(res[0]) == 0


# ---------------------------------------------------------------------------
# method choice


def test_force_vfork_method(backend):
    res = spawn(backend, b"/bin/true", [b"true"], flags=K.FORCE_VFORK)
    assert res[5] == vfork_method(backend)
    assert wait_exitcode(res[0]) == 0
    assert backend.spawn_method(*_req(
        b"/bin/true", [b"true"], flags=K.FORCE_VFORK)) == vfork_method(backend)


def test_spawn_method_is_valid(backend):
    m = backend.spawn_method(*_req(b"/bin/true", [b"true"]))
    assert m in (K.VIA_POSIX_SPAWN, K.VIA_VFORK, K.VIA_FORK)
    assert backend.FEATURES & (1 << m)


def test_spawn_method_does_not_spawn(backend):
    for _ in range(3):
        backend.spawn_method(*_req(b"/bin/true", [b"true"],
                                   stdout=K.STDIO_PIPE))
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


@pytest.mark.c_extension
def test_c_spawn_method_linux_default_is_vfork(backend):
    """On Linux the vfork path is measured cheaper for the parent than
    glibc's posix_spawn (see fs_spawn_method), so it is the default."""
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux expectations")
    for kw in (dict(), dict(stdout=K.STDIO_PIPE), dict(cwd=b"/"),
               dict(flags=K.CLOSE_FDS | K.RESTORE_SIGNALS)):
        assert backend.spawn_method(
            *_req(b"/bin/true", [b"true"], **kw)) == K.VIA_VFORK


@pytest.mark.c_extension
def test_c_spawn_method_path_search_prefers_posix_when_asked(backend):
    """Several candidates (a PATH search) can still go through posix_spawn
    when it is preferred: one posix_spawn per existing candidate."""
    if not sys.platform.startswith("linux"):
        pytest.skip("Linux expectations")
    paths = (b"/nonexistent/true", b"/bin/true")
    args = list(_req(b"/bin/true", [b"true"], flags=K.PREFER_POSIX_SPAWN))
    args[0] = paths
    assert backend.spawn_method(*args) == K.VIA_POSIX_SPAWN
    res = backend.spawn(*args)
    assert res[5] == K.VIA_POSIX_SPAWN and res[6] == K.STEP_OK
    assert os.waitpid(res[0], 0)[1] == 0


# What posix_spawn can express (asked for with PREFER_POSIX_SPAWN).
@pytest.mark.c_extension
@pytest.mark.parametrize("kw,expected", [
    (dict(), K.VIA_POSIX_SPAWN),
    (dict(stdout=K.STDIO_PIPE, stderr=K.STDIO_STDOUT), K.VIA_POSIX_SPAWN),
    (dict(flags=K.RESTORE_SIGNALS | K.SETSID), K.VIA_POSIX_SPAWN),
    (dict(pgroup=0), K.VIA_POSIX_SPAWN),
    (dict(cwd=b"/"), K.VIA_POSIX_SPAWN),
    # closing fds needs addclosefrom_np (glibc 2.34) in posix_spawn
    (dict(flags=K.CLOSE_FDS),
     K.VIA_POSIX_SPAWN if HAVE_ADDCLOSEFROM else K.VIA_VFORK),
    (dict(flags=K.FORCE_VFORK), K.VIA_VFORK),
    (dict(umask=0o22), K.VIA_VFORK),
    (dict(uid=os.getuid()), "not-posix"),
    (dict(gid=os.getgid()), "not-posix"),
    (dict(groups=()), "not-posix"),
    (dict(pgroup=1), K.VIA_VFORK),
], ids=["plain", "pipes", "restore-setsid", "pgroup0", "cwd", "close_fds",
        "force", "umask", "uid", "gid", "groups", "pgroup-join"])
def test_c_spawn_method_linux(backend, kw, expected):
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc/Linux expectations")
    kw["flags"] = kw.get("flags", 0) | K.PREFER_POSIX_SPAWN
    method = backend.spawn_method(*_req(b"/bin/true", [b"true"], **kw))
    if expected == "not-posix":
        assert method in (K.VIA_VFORK, K.VIA_FORK)
    else:
        assert method == expected


@pytest.mark.c_extension
def test_c_spawn_method_pass_fds_gaps(backend):
    if not sys.platform.startswith("linux"):
        pytest.skip("glibc/Linux expectations")
    posix = K.PREFER_POSIX_SPAWN
    near = backend.spawn_method(*_req(b"/bin/true", [b"true"],
                                      pass_fds=(5, 9),
                                      flags=K.CLOSE_FDS | posix))
    far = backend.spawn_method(*_req(b"/bin/true", [b"true"],
                                     pass_fds=(500,),
                                     flags=K.CLOSE_FDS | posix))
    far_no_close = backend.spawn_method(*_req(b"/bin/true", [b"true"],
                                              pass_fds=(500,), flags=posix))
    # Closing the gaps in posix_spawn takes addclosefrom_np (glibc 2.34)
    # past the last fd; without it every close_fds request is vfork's.
    assert near == (K.VIA_POSIX_SPAWN if HAVE_ADDCLOSEFROM else K.VIA_VFORK)
    assert far == K.VIA_VFORK
    assert far_no_close == K.VIA_POSIX_SPAWN


# ---------------------------------------------------------------------------
# uid/gid/groups (as ourselves: the only ids an unprivileged run may use)


def test_same_ids(backend, vflags, tmp_path):
    code = ("import os,sys; open(sys.argv[1],'w').write(repr((os.getuid(),"
            "os.geteuid(),os.getgid(),os.getegid(),sorted(os.getgroups()))))")
    out = tmp_path / "ids"
    groups = tuple(os.getgroups()) if os.getuid() == 0 else None
    rc, _, _, _ = run_ok(backend, os.fsencode(PY),
                         [b"python", b"-S", b"-c", code.encode(),
                          os.fsencode(out)],
                         uid=os.getuid(), gid=os.getgid(), groups=groups,
                         flags=vflags)
    assert rc == 0
    assert out.read_text() == repr((os.getuid(), os.getuid(), os.getgid(),
                                    os.getgid(), sorted(os.getgroups())))


# ---------------------------------------------------------------------------
# parent-side failure: EMFILE


def _limit_for_free_slots(free):
    """A soft RLIMIT_NOFILE that leaves exactly ``free`` fd numbers."""
    used = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            os.fstat(int(name))
        except OSError:
            continue        # listdir's own fd, closed again by now
        used.add(int(name))
    limit = 0
    avail = 0
    while avail < free:
        if limit not in used:
            avail += 1
        limit += 1
    return limit            # [0, limit) holds exactly `free` unused numbers


def test_emfile(backend, vflags):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    req = _req(SH, sh("cat; printf x >&2"), flags=vflags, **_three_pipes())
    limit = _limit_for_free_slots(2)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        with pytest.raises(OSError) as exc:
            backend.spawn(*req)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert exc.value.errno == errno.EMFILE
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)
    # ...and it works again afterwards.
    res = spawn(backend, *req[:2], flags=vflags, **_three_pipes())
    write_all(res[2], b"again")
    os.close(res[2])
    assert read_all(res[3]) == b"again"
    assert read_all(res[4]) == b"x"
    assert wait_exitcode(res[0]) == 0


# ---------------------------------------------------------------------------
# argument checking at the backend boundary


@pytest.mark.c_extension
def test_argv_items_must_be_bytes(backend):
    # The compiled binding type-checks what the launch layer hands it.
    with pytest.raises(TypeError):
        backend.spawn(*_req(b"/bin/true", ["true"]))
    with pytest.raises(TypeError):
        backend.spawn(*_req(b"/bin/true", [b"true"], envp=["A=1"]))
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


# ---------------------------------------------------------------------------
# spawn_wait(): spawn without pipes, and the wait in the same call


def _finish_wait(backend, res):
    """The (status, struct_rusage) of a spawn_wait() result: both backends
    wait (see _contract.WaitResult)."""
    pid, status, ru, step, err, exc = res
    assert step == K.STEP_OK and err == 0 and exc is None, res
    assert pid > 0
    assert status is not None and isinstance(ru, backend.RawRusage), res
    return status, ru.value()


# FEAT_CLONE_WAIT: spawn_wait()'s child is a clone(CLONE_VM) beside the
# waiting thread instead of a vfork child.
FEAT_CLONE_WAIT = K.FEAT_CLONE_WAIT


@pytest.fixture(params=[0, K.FORCE_VFORK], ids=["default", "vfork"])
def wait_flags(request):
    """The waiting spawns (spawn_wait, spawn_capture) both ways: the
    default (on the C backend under Linux, the clone child) and FORCE_VFORK
    (fs_spawn()'s vfork child)."""
    return request.param


def test_spawn_wait_clone_child_is_available(backend):
    """The waiting spawn's clone child is what Linux gets (not under
    Valgrind or ASan, see fs_spawn.c): a build that silently lost it would
    pass every other test on the vfork path."""
    if backend is not _backend.c_impl or not sys.platform.startswith("linux"):
        assert not backend.FEATURES & FEAT_CLONE_WAIT
        return
    preload = os.environ.get("LD_PRELOAD", "")
    if "vgpreload" in preload or "libasan" in preload:
        # Valgrind would abort on it; an ASan build leaves it out.
        assert not backend.FEATURES & FEAT_CLONE_WAIT
    else:
        assert backend.FEATURES & FEAT_CLONE_WAIT


@pytest.mark.parametrize("flags", [0, K.CLOSE_FDS | K.RESTORE_SIGNALS,
                                   K.CLOSE_FDS | K.FORCE_VFORK,
                                   K.CLOSE_FDS | K.PREFER_POSIX_SPAWN])
def test_spawn_wait_status_and_rusage(backend, flags):
    res = backend.spawn_wait(*_req(SH, [b"sh", b"-c", b"exit 7"],
                                   flags=flags))
    status, ru = _finish_wait(backend, res)
    assert os.waitstatus_to_exitcode(status) == 7
    assert isinstance(ru, resource.struct_rusage)
    assert ru.ru_maxrss > 0
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_spawn_wait_reports_signal_death(backend, wait_flags):
    res = backend.spawn_wait(*_req(SH, [b"sh", b"-c", b"kill -TERM $$"],
                                   flags=wait_flags))
    status, _ = _finish_wait(backend, res)
    assert os.waitstatus_to_exitcode(status) == -signal.SIGTERM


def test_spawn_wait_child_failure_like_spawn(backend, wait_flags, tmp_path):
    missing = b"/nonexistent/fastspawn-missing"
    res = backend.spawn_wait(*_req(missing, [b"x"], flags=wait_flags))
    assert res[0] == -1 and res[1] is None and res[5] is None
    assert (res[3], res[4]) == (K.STEP_EXEC, errno.ENOENT)
    res = backend.spawn_wait(*_req(b"/bin/true", [b"true"],
                                   cwd=b"/nonexistent-dir", flags=wait_flags))
    assert (res[3], res[4]) == (K.STEP_CHDIR, errno.ENOENT)
    # os.execvp's rule over candidates: EACCES (a non-executable file)
    # wins over a later ENOENT; a bad stdio fd fails before any child.
    plain = tmp_path / "plain"
    plain.write_bytes(b"#!/bin/sh\n")
    res = backend.spawn_wait(*_req((bytes(plain), missing), [b"x"],
                                   flags=wait_flags))
    assert (res[3], res[4]) == (K.STEP_EXEC, errno.EACCES)
    res = backend.spawn_wait(*_req(b"/bin/true", [b"true"], stdin=999,
                                   flags=wait_flags))
    assert (res[0], res[3], res[4]) == (-1, K.STEP_OTHER, errno.EBADF)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_spawn_wait_path_candidates_and_stdio_codes(backend, tmp_path,
                                                   wait_flags):
    out = tmp_path / "out"
    with open(out, "wb") as f:
        res = backend.spawn_wait(*_req(
            (b"/nonexistent/echo", b"/bin/echo"), [b"echo", b"hi"],
            stdin=K.STDIO_DEVNULL, stdout=f.fileno(),
            stderr=K.STDIO_STDOUT, flags=wait_flags))
        status, _ = _finish_wait(backend, res)
    assert status == 0
    assert out.read_bytes() == b"hi\n"


@pytest.mark.parametrize("kw", [dict(stdin=K.STDIO_PIPE),
                                dict(stdout=K.STDIO_PIPE),
                                dict(stderr=K.STDIO_PIPE),
                                dict(flags=K.WANT_PIDFD)])
def test_spawn_wait_refuses_pipes_and_pidfd(backend, kw):
    with pytest.raises(OSError) as exc:
        backend.spawn_wait(*_req(b"/bin/true", [b"true"], **kw))
    assert exc.value.errno == errno.EINVAL
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_spawn_wait_sigchld_ignored_status_lost(backend, wait_flags):
    old = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        res = backend.spawn_wait(*_req(SH, [b"sh", b"-c", b"exit 3"],
                                       flags=wait_flags))
        pid, status, ru, step, err, exc = res
        assert step == K.STEP_OK and exc is None
        assert (status, ru) == (0, None)    # lost: 0, like subprocess
    finally:
        signal.signal(signal.SIGCHLD, old)


def test_spawn_wait_handlers_run_and_raise(backend, wait_flags):
    """A handler that returns lets the wait go on; one that raises ends it
    with the exception handed back (the child still runs, the caller's)."""
    hits = []

    def handler(s, f):
        hits.append(s)
        if len(hits) >= 3:
            raise KeyError("boom")
    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)
    try:
        try:
            res = backend.spawn_wait(*_req(b"/bin/sleep", [b"sleep", b"5"],
                                           flags=wait_flags))
        except KeyError:
            raise AssertionError(
                "spawn_wait raised the handler's error") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)
    pid, status, ru, step, err, exc = res
    assert status is None and ru is None and step == K.STEP_OK
    assert isinstance(exc, KeyError) and len(hits) >= 3
    os.kill(pid, signal.SIGKILL)
    assert os.waitpid(pid, 0)[1] == signal.SIGKILL


def test_spawn_wait_threads_at_once(backend, wait_flags):
    """Threads waiting-spawning at once, successes and failures mixed: each
    child reports into its own caller (the clone children write their
    failures, and errno, beside a running parent thread)."""
    import threading
    missing = b"/nonexistent/fastspawn-missing"
    errors = []

    def worker(k):
        try:
            for i in range(40):
                kind = (i + k) % 3
                if kind == 0:
                    res = backend.spawn_wait(*_req(
                        SH, [b"sh", b"-c", b"exit %d" % (i % 7)],
                        flags=wait_flags | K.CLOSE_FDS))
                    status, _ = _finish_wait(backend, res)
                    assert os.waitstatus_to_exitcode(status) == i % 7
                elif kind == 1:
                    res = backend.spawn_wait(*_req(
                        (missing, b"/bin/true"), [b"true"], flags=wait_flags))
                    status, _ = _finish_wait(backend, res)
                    assert status == 0
                else:
                    res = backend.spawn_wait(*_req(missing, [b"x"],
                                                   flags=wait_flags))
                    assert res[:5] == (-1, None, None, K.STEP_EXEC,
                                       errno.ENOENT), res
        except BaseException as e:  # reported by the main thread
            errors.append(e)
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_spawn_wait_errno_under_signal_storm(backend, wait_flags, tmp_path):
    """The child's error report survives signals hitting the waiting
    thread: the clone child shares that thread's TLS, so it must not use
    errno (which the parent's wait4, futex and signal handlers write). A
    child that had to was seen to report EINTR for EACCES in ~1 of 6
    spawns here (3000 candidates make its window long)."""
    plain = tmp_path / "plain"
    plain.write_bytes(b"")
    cands = [bytes(tmp_path / ("none%d" % i) / "x") for i in range(3000)]
    cands.append(bytes(plain))
    hits = []
    old = signal.signal(signal.SIGALRM, lambda s, f: hits.append(s))
    signal.setitimer(signal.ITIMER_REAL, 0.0002, 0.0002)
    try:
        got = [backend.spawn_wait(*_req(cands, [b"x"], flags=wait_flags))[3:5]
               for _ in range(60)]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)
    assert hits, "no signal arrived: the test proved nothing"
    assert set(got) == {(K.STEP_EXEC, errno.EACCES)}


@pytest.mark.skipif(not os.path.exists("/proc/self/maps"),
                    reason="needs /proc/self/maps")
def test_spawn_wait_child_stacks_go_with_their_threads(backend):
    """The clone child's stack is kept per thread and unmapped when the
    thread ends: 200 short-lived threads leave no trail of mappings."""
    import threading

    def maps():
        with open("/proc/self/maps") as f:
            return sum(1 for _ in f)

    def one():
        status, _ = _finish_wait(backend, backend.spawn_wait(
            *_req(b"/bin/true", [b"true"])))
        assert status == 0
    one()
    before = maps()
    for _ in range(200):
        t = threading.Thread(target=one)
        t.start()
        t.join()
    # Each stack is two mappings (its guard page and the rest); glibc's
    # cache of thread stacks may add a few.
    assert maps() - before < 40


# ---------------------------------------------------------------------------
# spawn_capture(): spawn, communicate and wait in one call


def _capture(backend, argv, input=None, **kw):
    kw.setdefault("stdout", K.STDIO_PIPE)
    kw.setdefault("stderr", K.STDIO_PIPE)
    return backend.spawn_capture(*_req(argv[0], argv, **kw), input)


@pytest.mark.parametrize("size", [0, 1, 255, 256, 257, 32768, 32769,
                                  3 * 65536 + 7])
def test_spawn_capture_outputs_and_input(backend, size, wait_flags):
    data = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    res = _capture(backend, [SH, b"-c", b"cat; printf e >&2; exit 5"],
                   input=data, stdin=K.STDIO_PIPE, flags=wait_flags)
    pid, status, ru, out, err, step, errn, exc, fds = res
    assert (step, errn, exc, fds) == (K.STEP_OK, 0, None, None)
    assert out == data and err == b"e"
    assert os.waitstatus_to_exitcode(status) == 5
    assert isinstance(ru, backend.RawRusage)
    assert ru.value().ru_maxrss > 0
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_spawn_capture_stdout_only_and_merged(backend, wait_flags):
    res = _capture(backend, [SH, b"-c", b"echo o; echo e >&2"],
                   stderr=K.STDIO_STDOUT, flags=wait_flags)
    assert res[3:5] == (b"o\ne\n", None)
    res = _capture(backend, [SH, b"-c", b"echo o"], stderr=K.STDIO_INHERIT,
                   flags=wait_flags)
    assert res[3:5] == (b"o\n", None)


def test_spawn_capture_child_failure(backend, wait_flags):
    res = _capture(backend, [b"/nonexistent/fastspawn-x"], flags=wait_flags)
    assert res[0] == -1 and (res[5], res[6]) == (K.STEP_EXEC, errno.ENOENT)
    assert res[7] is None and res[8] is None
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_spawn_capture_bad_input_fails_before_the_child(backend):
    """A bad input (not bytes-like) for a piped stdin raises before any
    child exists (taking its buffer may run Python code, which must not
    run beside a clone child): nothing to settle, nothing left open."""
    with pytest.raises(TypeError) as exc:
        _capture(backend, [CAT], input=12345, stdin=K.STDIO_PIPE)
    if sys.implementation.name == "cpython":    # memoryview()'s words
        assert "bytes-like object is required" in str(exc.value)
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_spawn_capture_error_after_start_hands_back_child_and_fds(backend):
    """Something raising once the child runs (here a signal handler, while
    the child still reads its stdin): the error, the pid and the open fds
    come back for the caller to settle."""
    def handler(s, f):
        raise KeyError("boom")
    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    try:
        res = backend.spawn_capture(*_req(
            SH, [b"sh", b"-c", b"sleep 5; cat"], stdin=K.STDIO_PIPE,
            stdout=K.STDIO_PIPE), b"x" * (1 << 20))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)
    pid, status, ru, out, err, step, errn, exc, fds = res
    assert step == K.STEP_OK and status is None
    assert isinstance(exc, KeyError)
    assert len(fds) == 3 and fds[0] >= 0 and fds[1] >= 0 and fds[2] == -1
    os.kill(pid, signal.SIGKILL)
    assert os.waitpid(pid, 0)[1] == signal.SIGKILL
    for fd in fds:
        if fd >= 0:
            os.close(fd)


def test_spawn_capture_refuses_pidfd(backend):
    with pytest.raises(OSError) as exc:
        _capture(backend, [b"/bin/true"], flags=K.WANT_PIDFD)
    assert exc.value.errno == errno.EINVAL
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_spawn_capture_handler_exception(backend):
    def handler(s, f):
        raise KeyError("boom")
    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.1)
    try:
        res = _capture(backend, [SH, b"-c", b"echo early; sleep 5"])
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0, 0)
        signal.signal(signal.SIGALRM, old)
    pid, status, ru, out, err, step, errn, exc, fds = res
    assert isinstance(exc, KeyError) and status is None
    os.kill(pid, signal.SIGKILL)
    assert os.waitpid(pid, 0)[1] == signal.SIGKILL
    for fd in fds:
        if fd >= 0:
            os.close(fd)


def test_communicator_closes_fds_given_as_list(backend):
    """run(deadline, fds): each finished stream's fd is closed by the loop
    and its slot set to -1; nothing is called back."""
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    r0, w0 = os.pipe()
    os.write(w1, b"out")
    os.close(w1)
    os.close(w2)
    os.close(r0)                 # stdin's reader gone: EPIPE ends stream 0
    fds = [w0, r1, r2]
    com = backend.Communicator(w0, r1, r2, b"input")
    assert com.run(None, fds) is True
    assert fds == [-1, -1, -1]
    assert com.output() == (b"out", b"")
    for fd in (w0, r1, r2):
        with pytest.raises(OSError):
            os.fstat(fd)
    with pytest.raises(ValueError):
        backend.Communicator(-1, -1, -1, None).run(None, [1, 2])


_PIPE_SIZE_PROBE = r"""
import fcntl, os, sys, time
F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)
chunk = b"x" * 65536
for _ in range(128):                 # 8 MiB through a 64 KiB pipe
    os.write(1, chunk)
os.write(2, b"%d" % fcntl.fcntl(1, F_GETPIPE_SZ))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="F_SETPIPE_SZ is Linux's")
def test_run_enlarges_a_pipe_that_carries_a_lot(backend):
    """run()'s own pipes grow to 1 MiB once one delivers a full 64 KiB
    read; Popen's (whose size the caller may have chosen) never do."""
    import fastspawn
    r = fastspawn.run([PY, "-c", _PIPE_SIZE_PROBE], capture_output=True)
    assert len(r.stdout) == 8 << 20
    assert int(r.stderr) == 1 << 20
    p = fastspawn.Popen([PY, "-c", _PIPE_SIZE_PROBE], stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE)
    out, err = p.communicate()
    assert len(out) == 8 << 20 and int(err) < 1 << 20


_LONE_PIPE_SIZE_PROBE = _PIPE_SIZE_PROBE.replace(
    "os.write(2, ", "open(sys.argv[1], 'wb').write(")


@pytest.mark.skipif(not sys.platform.startswith("linux"),
                    reason="F_SETPIPE_SZ is Linux's")
@pytest.mark.parametrize("call", ["run", "check_output"])
def test_run_enlarges_a_lone_pipe_that_carries_a_lot(backend, tmp_path,
                                                     call):
    """The same with stdout the only pipe (read to EOF in one go)."""
    import fastspawn
    report = tmp_path / "size"
    argv = [PY, "-c", _LONE_PIPE_SIZE_PROBE, str(report)]
    if call == "run":
        out = fastspawn.run(argv, stdout=subprocess.PIPE).stdout
    else:
        out = fastspawn.check_output(argv)
    assert out == b"x" * (8 << 20)
    assert int(report.read_bytes()) == 1 << 20


def _writer(fd, pieces, pause=0.0):
    """A thread writing ``pieces`` to ``fd`` (pausing in between), then
    closing it; join() it."""
    import threading
    import time

    def run():
        try:
            for p in pieces:
                write_all(fd, p)
                if pause:
                    time.sleep(pause)
        finally:
            os.close(fd)
    t = threading.Thread(target=run)
    t.start()
    return t


def _pieces():
    # Sizes around the pipe's and the loops' buffer sizes; distinct bytes,
    # so a misplaced chunk shows.
    sizes = [1, 255, 256, 4096, 65535, 65536, 65537, 1 << 18, 3 << 20, 7]
    return [bytes([i + 1]) * n for i, n in enumerate(sizes)]


@pytest.mark.parametrize("stream", [1, 2])
def test_communicator_lone_stream(backend, stream):
    """One stream, no deadline, the loop's own fds: all of it, in order,
    the fd closed and its slot -1; the other stream's result is None."""
    r, w = os.pipe()
    t = _writer(w, _pieces(), pause=0.002)
    fds = [-1, -1, -1]
    fds[stream] = r
    com = backend.Communicator(-1, fds[1], fds[2], None)
    try:
        assert com.run(None, fds) is True
    finally:
        t.join()
    assert fds == [-1, -1, -1]
    with pytest.raises(OSError):
        os.fstat(r)
    want = b"".join(_pieces())
    assert com.output() == ((want, None) if stream == 1 else (None, want))


@pytest.mark.parametrize("blocking", [True, False], ids=["blocking",
                                                         "nonblocking"])
def test_communicator_lone_stream_callers_fd(backend, blocking):
    """The caller's fd (on_close a callable, as Popen.communicate() passes):
    a non-blocking one is read as well as a blocking one."""
    r, w = os.pipe()
    os.set_blocking(r, blocking)
    t = _writer(w, _pieces(), pause=0.002)
    closed = []
    com = backend.Communicator(-1, r, -1, None)
    try:
        assert com.run(None, closed.append) is True
    finally:
        t.join()
        os.close(r)
    assert closed == [1]
    assert com.output() == (b"".join(_pieces()), None)


def test_communicator_lone_stream_after_a_timeout(backend):
    """run() with a deadline gives up with part of the output; run(None)
    then reads the rest: the whole output, once, in order."""
    import time
    r, w = os.pipe()
    write_all(w, b"a" * 60000)       # there before the deadline
    t = _writer(w, [b"b" * (2 << 20), b"c" * 5], pause=0.3)
    fds = [-1, r, -1]
    com = backend.Communicator(-1, r, -1, None)
    try:
        assert com.run(time.monotonic() + 0.1, fds) is False
        partial = com.output()[0]
        assert partial.startswith(b"a" * 60000)
        assert com.run(None, fds) is True
    finally:
        t.join()
    assert fds == [-1, -1, -1]
    assert com.output() == (b"a" * 60000 + b"b" * (2 << 20) + b"c" * 5,
                            None)

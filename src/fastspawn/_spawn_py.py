"""The pure-Python fastspawn backend: the same interface and behaviour as
the compiled ``_spawn_c`` (see _contract and csrc/fs_spawn.c), used when
the extension is not built or ``FASTSPAWN_NO_EXTENSIONS`` is set.

It never calls ``os.fork()``, so a large parent spawns as cheaply as a small
one. A request goes to

* ``os.posix_spawn`` when its attributes and file actions can say it all
  (VIA_POSIX_SPAWN);
* otherwise to ``_forkexec.fork_exec``, the interpreter's own
  ``_posixsubprocess`` child, which vfork()s on Linux from CPython 3.10
  (VIA_VFORK). It fork()s (VIA_FORK) only where CPython itself does: for
  uid/gid/groups changes, before 3.10 or off Linux, and on 3.9/3.10 for a
  process group that posix_spawn cannot set.

What posix_spawn cannot express here: cwd, umask, uid, gid, groups,
joining another process group (pgroup > 0: fork_exec reports the EPERM of
setpgid() as that step, as fs_spawn.c's vfork child does), an empty argv or
an environment entry without ``KEY=``, FORCE_VFORK, and CLOSE_FDS when more
than 32 separate fds would have to be closed.

``envp=None`` passes the C-level ``environ``, as execv() and the C backend
do (not os.environ, which can lag behind it).
"""
import os
import signal
import sys
import typing
from errno import EAGAIN, EBADF, EINVAL, EPERM
from fcntl import fcntl

try:
    from fcntl import F_DUPFD_CLOEXEC
except ImportError:  # PyPy 3.9's fcntl lacks it: the Linux/macOS value
    F_DUPFD_CLOEXEC = 67 if sys.platform == "darwin" else 1030

from . import _compat, _forkexec
from ._constants import (
    CLOSE_FDS, FEAT_ADDCLOSEFROM, FEAT_PIDFD, FORCE_VFORK,
    PREFER_POSIX_SPAWN, RESTORE_SIGNALS, SETSID,
    STDIO_DEVNULL, STDIO_PIPE, STDIO_STDOUT, STEP_EXEC, STEP_OK, STEP_OTHER, VIA_FORK,
    VIA_POSIX_SPAWN, VIA_VFORK, WANT_PIDFD,
)

from ._comm_py import (
    LOOP_EXITED, LOOP_EXPIRED, LOOP_IDLE, LOOP_NOTIFY, LOOP_WAKE,
    Communicator, RunLoop, pidfd_wait, reap,
)

__all__ = ["FEATURES", "spawn", "spawn_wait", "spawn_capture",
           "spawn_method", "RawRusage", "wait4", "LONE_PIPE_LOOP",
           "Communicator", "pidfd_wait", "RunLoop", "LOOP_EXITED", "LOOP_EXPIRED",
           "LOOP_WAKE", "LOOP_IDLE", "LOOP_NOTIFY"]

# ---- what this interpreter / libc offers (decided once, at import) --------

_posix_spawn = getattr(os, "posix_spawn", None)


def _glibc_version():
    try:
        name, _, ver = os.confstr("CS_GNU_LIBC_VERSION").partition(" ")
        if name != "glibc":
            return None
        return tuple(int(x) for x in ver.split(".")[:2])
    except (AttributeError, ValueError, OSError, TypeError):
        return None


_GLIBC = _glibc_version()

# posix_spawn_file_actions_adddup2(fd, fd) clears FD_CLOEXEC from glibc
# 2.29 on (BZ #23640). Elsewhere a non-inheritable fd that must stay where
# it is (pass_fds, or a stdio fd on its own slot) is dup2()ed back into
# place from a CLOEXEC copy made in the parent.
_DUP2_SAME_CLEARS = _GLIBC is not None and _GLIBC >= (2, 29)

# POSIX_SPAWN_SETSID: glibc >= 2.26; assumed elsewhere until os.posix_spawn
# says NotImplementedError (then SETSID goes to fork_exec from then on).
_setsid_ok = _GLIBC is None or _GLIBC >= (2, 26)

# CLOSE_FDS: with POSIX_SPAWN_CLOSEFROM (CPython >= 3.13 on glibc >= 2.34)
# we close as fs_spawn.c does: each fd between the pass_fds, then
# closefrom() past the last. Without it we list the fds that are open and
# inheritable (only those survive exec) and close each. Either way more
# than _MAX_CLOSES separate closes go to fork_exec (close_range() there).
_CLOSEFROM = getattr(os, "POSIX_SPAWN_CLOSEFROM", None)

# glibc's posix_spawn child sets its internal signals (SIGCANCEL=32,
# SIGSETXID=33) to SIG_IGN, which exec keeps: every child would start with
# them ignored, unlike a subprocess/os.spawnv child. fs_spawn.c undoes it
# through the SETSIGDEF set; os.posix_spawn(setsigdef=...) refuses those
# signals, so on glibc the pure backend uses the interpreter's vfork-based
# fork_exec instead (still no fork() of the parent), unless the caller asks
# for posix_spawn (PREFER_POSIX_SPAWN, as the C backend honours it) and
# accepts that quirk. Before CPython 3.10 fork_exec really forks: there
# the flat cost of posix_spawn wins.
_SPAWN_IGNORES_INTERNAL_SIGNALS = (_GLIBC is not None
                                   and _forkexec.VFORK_CAPABLE)
if sys.platform.startswith("linux"):
    _FD_DIR = "/proc/self/fd"
elif sys.platform == "darwin":
    _FD_DIR = "/dev/fd"
else:
    _FD_DIR = None   # e.g. FreeBSD's /dev/fd lists only 0-2 without fdescfs
_MAX_CLOSES = 32

_OPEN = getattr(os, "POSIX_SPAWN_OPEN", None)
_DUP2 = getattr(os, "POSIX_SPAWN_DUP2", None)
_CLOSE = getattr(os, "POSIX_SPAWN_CLOSE", None)
_DEVNULL_ACTIONS = tuple((_OPEN, i, os.devnull, os.O_RDWR, 0)
                         for i in range(3))
_SAME_SLOT_ACTIONS = tuple((_DUP2, i, i) for i in range(3))
_STDOUT_TO_STDERR = (_DUP2, 1, 2)
_CLOSEFROM_3 = (_CLOSEFROM, 3)

_SIGDEF = tuple(getattr(signal, name) for name in ("SIGPIPE", "SIGXFSZ",
                                                   "SIGXFZ")
                if hasattr(signal, name))

_bpartition = bytes.partition
_get_inheritable = os.get_inheritable
_pipe = os.pipe
_close = os.close
_listdir = os.listdir
_pidfd_open = getattr(os, "pidfd_open", None)
_fork_exec = _forkexec.fork_exec
_fork_exec_method = _forkexec.fork_exec_method

_NO_ATTRS = {}

_EBADF_RESULT = (-1, -1, -1, -1, -1, 0, STEP_OTHER, EBADF)

# fs_features()'s bits (fs_spawn.c). VIA_FORK is always there: CPython's fork_exec fork()s for uid/gid/groups.
FEATURES = (
    ((1 << VIA_POSIX_SPAWN)
     if _posix_spawn is not None and not _SPAWN_IGNORES_INTERNAL_SIGNALS
     else 0)
    | ((1 << VIA_VFORK) if _forkexec.VFORK_CAPABLE else 0)
    | (1 << VIA_FORK)
    | (FEAT_ADDCLOSEFROM if _CLOSEFROM is not None else 0)
    | (FEAT_PIDFD if _pidfd_open is not None else 0)
)


_close_all = _forkexec._close_all


# ---- planning --------------------------------------------------------------

def _static_fits(argv, flags, cwd, pgroup, umask, uid, gid, groups):
    """Whether posix_spawn can express the request, fds and env aside."""
    return not (
        _posix_spawn is None
        or (_SPAWN_IGNORES_INTERNAL_SIGNALS
            and not flags & PREFER_POSIX_SPAWN)
        or flags & FORCE_VFORK
        or cwd is not None
        or umask >= 0 or uid >= 0 or gid >= 0 or groups is not None
        or pgroup > 0
        or not argv or not argv[0]    # os.posix_spawn refuses an empty argv[0]
        or (flags & SETSID and not _setsid_ok)
    )


def _env_map(envp):
    """os.posix_spawn's env mapping for a b"KEY=VALUE" list; None if an
    entry has no ``KEY=`` (only execve() can pass that through). A repeated
    key keeps its first value, the one getenv() finds."""
    env = {}
    for item in envp:
        key, sep, value = _bpartition(item, b"=")   # TypeError if not bytes
        if not sep or not key:
            return None
        if key not in env:
            env[key] = value
    return env


# envp None means the C-level ``environ`` -- what execv() and the C backend
# pass -- which os.environ can lag behind (C code calling setenv(), e.g.
# readline setting LINES/COLUMNS). os.posix_spawn takes env=None for it from
# 3.13 on; before, environ is read through ctypes (loaded on first use).
# Where that is impossible, such requests go to fork_exec (execv()).
_ENV_NONE_IS_ENVIRON = _compat.POSIX_SPAWN_ENV_NONE
_environ_ptr = None     # ctypes view of environ; False: unavailable


def _load_environ_ptr():
    try:
        import ctypes
        char_pp = ctypes.POINTER(ctypes.c_char_p)
        libc = ctypes.CDLL(None)
        if sys.platform == "darwin":
            # Shared libraries cannot see environ on macOS: ask for &environ.
            get = libc._NSGetEnviron
            get.restype = ctypes.POINTER(char_pp)
            ptr = get().contents        # shares environ's storage
        else:
            ptr = char_pp.in_dll(libc, "environ")
        ptr[0]                          # readable (raises if not)
        return ptr
    except Exception:
        return False


def _c_environ():
    """The C environ as os.posix_spawn's env mapping (see _env_map); None
    if it cannot be read or expressed (fork_exec passes it through)."""
    global _environ_ptr
    ptr = _environ_ptr
    if ptr is None:
        ptr = _environ_ptr = _load_environ_ptr()
    if ptr is False:
        return None
    env = {}
    i = 0
    while True:
        item = ptr[i]
        if item is None:
            return env
        key, sep, value = item.partition(b"=")
        if not sep or not key:
            return None
        if key not in env:
            env[key] = value
        i += 1


_NO_ENV = object()


def _spawn_env(envp):
    """os.posix_spawn's env argument for ``envp``; _NO_ENV when only
    execve() can pass it."""
    if envp is None:
        if _ENV_NONE_IS_ENVIRON:
            return None
        env = _c_environ()
    else:
        env = _env_map(envp)
    return _NO_ENV if env is None else env


def _close_actions(pass_fds):
    """File actions that close what CLOSE_FDS closes (every fd >= 3 but
    pass_fds), or None when that takes more than _MAX_CLOSES closes."""
    if _CLOSEFROM is not None:
        if not pass_fds:
            return [_CLOSEFROM_3]
        acts = []
        prev = 2
        for fd in sorted(pass_fds):
            if fd > prev + 1:
                if len(acts) + fd - prev - 1 > _MAX_CLOSES:
                    return None
                acts.extend([(_CLOSE, f) for f in range(prev + 1, fd)])
            if fd > prev:
                prev = fd
        acts.append((_CLOSEFROM, prev + 1))
        return acts
    if _FD_DIR is None:
        return None
    try:
        names = _listdir(_FD_DIR)
    except OSError:
        return None
    acts = []
    for name in names:
        fd = int(name)
        if fd < 3 or fd in pass_fds:
            continue
        try:
            if not _get_inheritable(fd):
                continue        # closes at exec anyway
        except OSError:
            continue            # the fd of the listing itself, now closed
        acts.append((_CLOSE, fd))
        if len(acts) > _MAX_CLOSES:
            return None
    return acts


# ---- the interface ------------------------------------------------------------

@typing.final
class RawRusage:
    """The interface's RawRusage (see _contract): here it only wraps the
    struct_rusage os.wait4() made."""
    __slots__ = ("_value",)

    def __init__(self, value):
        self._value = value

    def value(self):
        return self._value

    def __reduce__(self):
        return self._value.__reduce__()


def _reaped(pid):
    """reap(pid) as the interface returns it: (status, RawRusage or
    None)."""
    status, rusage = reap(pid)
    return status, None if rusage is None else RawRusage(rusage)


# Popen.communicate() of a lone pipe: the file object's read() (in C) beats
# this backend's selector loop, and needs the same memory.
LONE_PIPE_LOOP = False


def wait4(pid, options):
    """The interface's wait4 (see _spawn_c.pyi): os.wait4 with the rusage
    wrapped as a RawRusage."""
    got, status, ru = os.wait4(pid, options)
    if got == 0:
        return (0, 0, None)
    return (got, status, RawRusage(ru))


def spawn_wait(path, argv, envp, stdin, stdout, stderr, pass_fds, cwd,
               flags, pgroup, umask, uid, gid, groups):
    """:func:`spawn` without pipes, and the wait; see _contract.WaitResult.
    os.wait4() runs signal handlers while it waits: one that raises ends
    the wait with the child handed back, as in the C backend."""
    if (STDIO_PIPE in (stdin, stdout, stderr)) or flags & WANT_PIDFD:
        raise OSError(EINVAL, os.strerror(EINVAL))
    res = spawn(path, argv, envp, stdin, stdout, stderr, pass_fds, cwd,
                flags, pgroup, umask, uid, gid, groups)
    if res[6] != STEP_OK:
        return (-1, None, None, res[6], res[7], None)
    try:
        status, rusage = _reaped(res[0])
    except BaseException as exc:
        # The caller decides the child's fate and re-raises.
        return (res[0], None, None, STEP_OK, 0, exc)
    return (res[0], status, rusage, STEP_OK, 0, None)


def spawn_capture(path, argv, envp, stdin, stdout, stderr, pass_fds, cwd,
                  flags, pgroup, umask, uid, gid, groups, input):
    """spawn(), communicate(input) and the wait, in one call; see
    _contract.CaptureResult."""
    if flags & WANT_PIDFD:
        raise OSError(EINVAL, os.strerror(EINVAL))
    if stdin == STDIO_PIPE and input is not None:
        memoryview(input)   # a bad input fails before the child, as in C
    res = spawn(path, argv, envp, stdin, stdout, stderr, pass_fds, cwd,
                flags, pgroup, umask, uid, gid, groups)
    if res[6] != STEP_OK:
        return (-1, None, None, None, None, res[6], res[7], None, None)
    pid = res[0]
    fds = [res[2], res[3], res[4]]
    try:
        com = Communicator(fds[0], fds[1], fds[2], input)
        com.run(None, fds)
        out, err = com.output()
        status, rusage = _reaped(pid)
    except BaseException as exc:
        return (pid, None, None, None, None, STEP_OK, 0, exc, fds)
    return (pid, status, rusage, out, err, STEP_OK, 0, None, None)


def spawn_method(path, argv, envp, stdin, stdout, stderr, pass_fds, cwd,
                 flags, pgroup, umask, uid, gid, groups):
    """The VIA_* mechanism :func:`spawn` would use for this request."""
    if type(path) is not bytes and len(path) != 1:
        return _fork_exec_method(None, pgroup, uid, gid, groups)
    if (_static_fits(argv, flags, cwd, pgroup, umask, uid, gid, groups)
            and _spawn_env(envp) is not _NO_ENV
            and (not flags & CLOSE_FDS
                 or _close_actions(pass_fds) is not None)):
        return VIA_POSIX_SPAWN
    return _fork_exec_method(None, pgroup, uid, gid, groups)


def spawn(path, argv, envp, stdin, stdout, stderr, pass_fds, cwd, flags,
          pgroup, umask, uid, gid, groups):
    """Start ``path`` (never searched) once.

    Returns ``(pid, pidfd, stdin_w, stdout_r, stderr_r, method, err_step,
    err_errno)``; see _contract.SpawnResult. ``err_step != STEP_OK``: the child
    failed at that step (nothing is left open, no child is left). Failures
    of the parent itself raise, leaving nothing open.
    """
    global _setsid_ok
    if type(path) is not bytes:
        # The candidates of a PATH search: tried in the child with
        # os.execvp's rule, which os.posix_spawn cannot do for several.
        paths = tuple(path)
        if len(paths) != 1:
            return _fork_exec(paths, argv, envp, stdin, stdout, stderr,
                              pass_fds, cwd, flags, pgroup, umask, uid, gid,
                              groups, None)
        path = paths[0]
    if not _static_fits(argv, flags, cwd, pgroup, umask, uid, gid, groups):
        return _fork_exec(path, argv, envp, stdin, stdout, stderr, pass_fds,
                          cwd, flags, pgroup, umask, uid, gid, groups, None)
    env = _spawn_env(envp)
    if env is _NO_ENV:
        return _fork_exec(path, argv, envp, stdin, stdout, stderr, pass_fds,
                          cwd, flags, pgroup, umask, uid, gid, groups, None)

    # Given fds must be open: EBADF without starting a child (fs_spawn.c).
    inh = [True, True, True]
    if stdin >= 0:
        try:
            inh[0] = _get_inheritable(stdin)
        except OSError:
            return _EBADF_RESULT
    if stdout >= 0:
        try:
            inh[1] = _get_inheritable(stdout)
        except OSError:
            return _EBADF_RESULT
    if stderr >= 0:
        try:
            inh[2] = _get_inheritable(stderr)
        except OSError:
            return _EBADF_RESULT
    pass_inh = None
    if pass_fds:
        pass_inh = []
        for fd in pass_fds:
            try:
                pass_inh.append(_get_inheritable(fd))
            except OSError:
                return _EBADF_RESULT

    closes = None
    if flags & CLOSE_FDS:
        closes = _close_actions(pass_fds)
        if closes is None:
            return _fork_exec(path, argv, envp, stdin, stdout, stderr,
                              pass_fds, cwd, flags, pgroup, umask, uid, gid,
                              groups, None)

    if not isinstance(argv, (list, tuple)):
        argv = list(argv)

    owned = []              # child-side fds; closed once the child runs
    ends = [-1, -1, -1]     # parent ends: returned on success only
    src = [stdin, stdout, stderr]
    ok = retry = False
    try:
        if stdin == STDIO_PIPE:
            r, w = _pipe()
            owned.append(r)
            ends[0] = w
            src[0] = r
            inh[0] = False
        if stdout == STDIO_PIPE:
            r, w = _pipe()
            owned.append(w)
            ends[1] = r
            src[1] = w
            inh[1] = False
        if stderr == STDIO_PIPE:
            r, w = _pipe()
            owned.append(w)
            ends[2] = r
            src[2] = w
            inh[2] = False

        actions = []
        for i in (0, 1, 2):
            s = src[i]
            if s >= 0:
                if s < 3 and s != i:
                    # Another slot's number: the dup2()s before would
                    # clobber it. Move it out of the way first.
                    s = fcntl(s, F_DUPFD_CLOEXEC, 3)
                    owned.append(s)
                    src[i] = s
        for i in (0, 1, 2):
            s = src[i]
            if s == i:
                if _DUP2_SAME_CLEARS:
                    actions.append(_SAME_SLOT_ACTIONS[i])
                elif not inh[i]:
                    s = fcntl(s, F_DUPFD_CLOEXEC, 3)
                    owned.append(s)
                    actions.append((_DUP2, s, i))
            elif s >= 0:
                actions.append((_DUP2, s, i))
            elif s == STDIO_DEVNULL:
                actions.append(_DEVNULL_ACTIONS[i])
            elif s == STDIO_STDOUT and i == 2:
                actions.append(_STDOUT_TO_STDERR)
        if pass_fds:
            for fd, fd_inh in zip(pass_fds, pass_inh):
                if _DUP2_SAME_CLEARS:
                    actions.append((_DUP2, fd, fd))
                elif not fd_inh:
                    copy = fcntl(fd, F_DUPFD_CLOEXEC, 3)
                    owned.append(copy)
                    actions.append((_DUP2, copy, fd))
        if closes:
            actions.extend(closes)

        if flags & (SETSID | RESTORE_SIGNALS) or pgroup == 0:
            attrs = {}
            if pgroup == 0:
                attrs["setpgroup"] = 0
            if flags & SETSID:
                attrs["setsid"] = True
            if flags & RESTORE_SIGNALS:
                attrs["setsigdef"] = _SIGDEF
        else:
            attrs = _NO_ATTRS
        try:
            pid = _posix_spawn(path, argv, env, file_actions=actions or None,
                               **attrs)
        except OSError as e:
            if e.errno == EAGAIN:
                # The clone() failed (RLIMIT_NPROC...): the parent's
                # failure, raised as subprocess raises fork()'s (see
                # spawn_posix() in fs_spawn.c).
                raise OSError(EAGAIN, os.strerror(EAGAIN)) from None
            if e.errno != EPERM:
                # posix_spawn reports the exec (or a file action) failing
                # in the child as its return value: the exec step, as
                # fs_spawn.c says.
                return (-1, -1, -1, -1, -1, VIA_POSIX_SPAWN, STEP_EXEC,
                        e.errno)
            # Ambiguous: glibc 2.31 (bullseye) returns a failed clone() as
            # EPERM (its -1 taken for -errno), e.g. under RLIMIT_NPROC.
            # fork_exec says which step failed, and how.
            retry = True
        except NotImplementedError:
            if not flags & SETSID:
                raise
            # This build's posix_spawn has no setsid: fork_exec from now on.
            _setsid_ok = False
            retry = True
        else:
            pidfd = -1
            if flags & WANT_PIDFD and _pidfd_open is not None:
                try:
                    pidfd = _pidfd_open(pid)
                except OSError:
                    pass
            ok = True
            return (pid, pidfd, ends[0], ends[1], ends[2], VIA_POSIX_SPAWN,
                    STEP_OK, 0)
    finally:
        _close_all(owned)
        if not ok:
            _close_all(ends)
    if retry:
        return _fork_exec(path, argv, envp, stdin, stdout, stderr, pass_fds,
                          cwd, flags, pgroup, umask, uid, gid, groups, None)

"""An adapter over the interpreter's own ``_posixsubprocess.fork_exec``.

It takes the arguments of a backend's ``spawn()`` (see _spawn_c.pyi) plus a
``preexec_fn`` and returns the same SpawnResult tuple. It serves:

* the launch layer, whenever Python code must run in the child
  (``preexec_fn``), with either backend;
* the pure backend (_spawn_py), for requests ``os.posix_spawn`` cannot
  express (cwd, umask, uid/gid/groups, joining a process group...).

``_posixsubprocess.fork_exec`` uses vfork() on Linux from CPython 3.10 on
when no ``preexec_fn`` is given and no uid/gid/groups change is asked for;
otherwise it fork()s. Its error reporting is subprocess's: the child writes
``b"ExcName:hexerrno:msg"`` to a CLOEXEC pipe, which we translate to the
STEP_* of fs_spawn.h.

Its positional signature changed across versions. What CPython's
Lib/subprocess.py ``Popen._execute_child`` passes (checked in the 3.9.18,
3.10.13, 3.11.7, 3.12.1 and 3.13.0 sources and ``fork_exec.__doc__`` /
``__text_signature__``; 3.14 from CPython PR #121383 and the clinic header
Modules/clinic/_posixsubprocess.c.h after it):

* 3.9, 3.10 (21 args): args, executable_list, close_fds, pass_fds, cwd,
  env, p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite,
  errpipe_read, errpipe_write, restore_signals, call_setsid, gid,
  groups_list, uid, child_umask, preexec_fn.
  (``child_umask`` arrived in 3.9; there is no process-group argument.)
* 3.11, 3.12, 3.13 (23 args): as above with ``pgid_to_set`` after
  ``call_setsid`` and ``allow_vfork`` (subprocess._USE_VFORK, gh-91401)
  after ``preexec_fn``.
* 3.14+ (22 args): ``allow_vfork`` removed again with the
  ``subprocess._USE_VFORK`` escape hatch (gh-121381 / PR #121383).

Where the interpreter exposes ``fork_exec.__text_signature__`` (3.12+) it
decides whether ``allow_vfork`` is there, so a build that differs from the
table above still gets the right call.
"""
import os
import sys
from errno import EACCES, EBADF, EIO, ENOTDIR
from fcntl import fcntl
from stat import S_ISDIR

try:
    from fcntl import F_DUPFD_CLOEXEC
except ImportError:  # PyPy 3.9's fcntl lacks it: the Linux/macOS value
    F_DUPFD_CLOEXEC = 67 if sys.platform == "darwin" else 1030

from _posixsubprocess import fork_exec as _fork_exec

from ._constants import (
    CLOSE_FDS, RESTORE_SIGNALS, SETSID, STDIO_DEVNULL, STDIO_PIPE,
    STDIO_STDOUT, STEP_CHDIR, STEP_EXEC, STEP_OK, STEP_OTHER, STEP_PREEXEC,
    VIA_FORK, VIA_VFORK, WANT_PIDFD,
)

__all__ = ["fork_exec", "fork_exec_method", "probe_int_error", "VFORK_CAPABLE"]

# ---- what this interpreter's fork_exec is (decided once, at import) -------

_VERSION = sys.version_info[:2]

# Modules/_posixsubprocess.c defines VFORK_USABLE on Linux only, from 3.10
# (bpo-35823); elsewhere, and before, fork_exec always fork()s.
VFORK_CAPABLE = _VERSION >= (3, 10) and sys.platform.startswith("linux")

# pgid_to_set arrived in 3.11 (Popen's process_group, CPython PR #23930).
_HAS_PGID = _VERSION >= (3, 11)

_text_sig = getattr(_fork_exec, "__text_signature__", None) or ""
if "preexec_fn" in _text_sig:
    _HAS_ALLOW_VFORK = "allow_vfork" in _text_sig
else:
    _HAS_ALLOW_VFORK = (3, 11) <= _VERSION < (3, 14)
del _text_sig

# "noexec:chdir" (the child failed in chdir()) is written from 3.13 on
# (absent from the 3.12.1 module, present in 3.13.0); before that a chdir
# failure is a plain "noexec" and we look at the cwd to tell.
_CHDIR_MARKER = b"noexec:chdir"
_NOEXEC = b"noexec"
_WRITES_CHDIR_MARKER = _VERSION >= (3, 13)

if _HAS_PGID and _HAS_ALLOW_VFORK:
    def _call(argv, exe, close_fds, keep, cwd, envp, p2cread, p2cwrite,
              c2pread, c2pwrite, errread, errwrite, epr, epw, restore,
              setsid, pgid, gid, groups, uid, umask, preexec_fn):
        return _fork_exec(argv, exe, close_fds, keep, cwd, envp,
                          p2cread, p2cwrite, c2pread, c2pwrite,
                          errread, errwrite, epr, epw, restore, setsid,
                          pgid, gid, groups, uid, umask, preexec_fn, True)
elif _HAS_PGID:
    def _call(argv, exe, close_fds, keep, cwd, envp, p2cread, p2cwrite,
              c2pread, c2pwrite, errread, errwrite, epr, epw, restore,
              setsid, pgid, gid, groups, uid, umask, preexec_fn):
        return _fork_exec(argv, exe, close_fds, keep, cwd, envp,
                          p2cread, p2cwrite, c2pread, c2pwrite,
                          errread, errwrite, epr, epw, restore, setsid,
                          pgid, gid, groups, uid, umask, preexec_fn)
else:
    def _call(argv, exe, close_fds, keep, cwd, envp, p2cread, p2cwrite,
              c2pread, c2pwrite, errread, errwrite, epr, epw, restore,
              setsid, pgid, gid, groups, uid, umask, preexec_fn):
        # 3.9/3.10: no pgid_to_set. Join/create the group from a preexec_fn
        # (which makes fork_exec fork, not vfork: see fork_exec_method).
        if pgid >= 0:
            preexec_fn = _setpgid_preexec(pgid, preexec_fn, epw)
        return _fork_exec(argv, exe, close_fds, keep, cwd, envp,
                          p2cread, p2cwrite, c2pread, c2pwrite,
                          errread, errwrite, epr, epw, restore, setsid,
                          gid, groups, uid, umask, preexec_fn)


def probe_int_error(value):
    """The TypeError or OverflowError this fork_exec raises for ``value``
    as a C int argument (p2cread), or None if it takes it. Starts nothing:
    bad arguments are refused while they are parsed, and the rest would
    be refused before any fork (errpipe_write -1 with close_fds, the
    fds_to_keep (-1,)) with a ValueError."""
    try:
        _call([b"/"], (b"/",), True, (-1,), None, None, value, -1, -1, -1,
              -1, -1, -1, -1, False, False, -1, None, None, None, -1, None)
    except (OverflowError, TypeError) as e:
        return e
    except ValueError:
        return None
    return None     # pragma: no cover - refused above on every version


def _setpgid_preexec(pgid, user_fn, errpipe_write):
    """A preexec_fn doing setpgid(0, pgid) for interpreters without
    pgid_to_set. A failure is reported as the C child would ("noexec":
    STEP_OTHER with the errno), not as a failing preexec_fn."""
    def preexec():
        try:
            os.setpgid(0, pgid)
        except OSError as e:
            try:
                os.write(errpipe_write, b"OSError:%x:noexec" % (e.errno or 0))
            finally:
                os._exit(255)
        if user_fn is not None:
            user_fn()
    return preexec


def fork_exec_method(preexec_fn, pgroup, uid, gid, groups):
    """The VIA_* that :func:`fork_exec` uses for such a request."""
    if (preexec_fn is not None or not VFORK_CAPABLE
            or uid >= 0 or gid >= 0 or groups is not None
            or (pgroup >= 0 and not _HAS_PGID)):
        return VIA_FORK
    return VIA_VFORK


# ---- helpers ---------------------------------------------------------------

_devnull_path = os.devnull
_O_DEVNULL = os.O_RDWR | os.O_CLOEXEC
_get_inheritable = os.get_inheritable
_close = os.close
_read = os.read
_pipe = os.pipe
_pidfd_open = getattr(os, "pidfd_open", None)

# A given fd that is not open: no child is started, and like fs_spawn.c
# (which fails before choosing a mechanism) the method is 0.
_EBADF_RESULT = (-1, -1, -1, -1, -1, 0, STEP_OTHER, EBADF)


def _cwd_errno(cwd):
    """Why chdir(cwd) would fail for us (0: it would not), as fs_spawn.c's
    diagnose_cwd."""
    try:
        st = os.stat(cwd)
    except OSError as e:
        return e.errno or EIO
    if not S_ISDIR(st.st_mode):
        return ENOTDIR
    if os.access in os.supports_effective_ids:
        ok = os.access(cwd, os.X_OK, effective_ids=True)
    else:
        ok = os.access(cwd, os.X_OK)
    return 0 if ok else EACCES


def _child_failure(data, cwd, has_preexec):
    """(step, errno) from the child's errpipe report (subprocess format)."""
    try:
        name, hex_errno, msg = data.split(b":", 2)
        err = int(hex_errno, 16)
    except ValueError:
        # Truncated or garbled report: like fs_spawn.c's short read.
        return STEP_EXEC, EIO
    if name == b"OSError":
        if msg == _CHDIR_MARKER:
            return STEP_CHDIR, err
        if msg == _NOEXEC:
            if (cwd is not None and not _WRITES_CHDIR_MARKER
                    and _cwd_errno(cwd)):
                return STEP_CHDIR, err
            return STEP_OTHER, err
        return STEP_EXEC, err
    # SubprocessError: "Exception occurred in preexec_fn." (errno 0).
    return (STEP_PREEXEC if has_preexec else STEP_OTHER), 0


def _close_all(fds):
    for fd in fds:
        if fd >= 0:
            try:
                _close(fd)
            except OSError:
                pass


# ---- the entry point ---------------------------------------------------------

def fork_exec(path, argv, envp, stdin, stdout, stderr, pass_fds, cwd, flags,
              pgroup, umask, uid, gid, groups, preexec_fn):
    """Start ``path`` through ``_posixsubprocess.fork_exec``. ``path`` is one
    path (bytes) or the candidates of a PATH search, which CPython's child
    tries in order with os.execvp's rule (as fs_spawn.c's child does).

    Same arguments and result as ``spawn()`` in _spawn_c.pyi, plus
    ``preexec_fn`` (a callable run in the child before exec, or None).
    A child failure returns ``(-1, -1, -1, -1, -1, method, step, errno)``
    with the child reaped and nothing left open; a failure of the parent
    (fork, pipe, bad arguments) raises, also leaving nothing open.
    """
    method = fork_exec_method(preexec_fn, pgroup, uid, gid, groups)
    close_fds = bool(flags & CLOSE_FDS)
    owned = []              # fds of ours the child needs; closed after
    ends = [-1, -1, -1]     # parent ends: returned on success only
    p2cread = p2cwrite = c2pread = c2pwrite = errread = errwrite = -1
    devnull = -1
    ok = False
    try:
        # -- fds given for stdio / pass_fds: must be open (as fs_spawn.c,
        # report EBADF without starting a child).
        for fd in pass_fds:
            try:
                _get_inheritable(fd)
            except OSError:
                return _EBADF_RESULT

        # -- stdin
        if stdin == STDIO_PIPE:
            p2cread, p2cwrite = _pipe()
            owned.append(p2cread)
            ends[0] = p2cwrite
        elif stdin == STDIO_DEVNULL:
            devnull = os.open(_devnull_path, _O_DEVNULL)
            owned.append(devnull)
            p2cread = devnull
        elif stdin >= 0:
            p2cread = _given(stdin, pass_fds, close_fds, owned)
            if p2cread < 0:
                return _EBADF_RESULT
        # -- stdout
        if stdout == STDIO_PIPE:
            c2pread, c2pwrite = _pipe()
            owned.append(c2pwrite)
            ends[1] = c2pread
        elif stdout == STDIO_DEVNULL:
            if devnull < 0:
                devnull = os.open(_devnull_path, _O_DEVNULL)
                owned.append(devnull)
            c2pwrite = devnull
        elif stdout >= 0:
            c2pwrite = _given(stdout, pass_fds, close_fds, owned)
            if c2pwrite < 0:
                return _EBADF_RESULT
        # -- stderr
        if stderr == STDIO_PIPE:
            errread, errwrite = _pipe()
            owned.append(errwrite)
            ends[2] = errread
        elif stderr == STDIO_DEVNULL:
            if devnull < 0:
                devnull = os.open(_devnull_path, _O_DEVNULL)
                owned.append(devnull)
            errwrite = devnull
        elif stderr == STDIO_STDOUT:
            # As subprocess: the child's stdout, whatever it is.
            errwrite = c2pwrite if c2pwrite != -1 else 1
        elif stderr >= 0:
            errwrite = _given(stderr, pass_fds, close_fds, owned)
            if errwrite < 0:
                return _EBADF_RESULT

        # -- the error pipe; its write end must not sit on 0..2, where the
        # child's dup2()s would overwrite it (as subprocess does).
        errpipe_read, errpipe_write = _pipe()
        owned.append(errpipe_read)
        if errpipe_write < 3:
            low = errpipe_write
            try:
                errpipe_write = fcntl(low, F_DUPFD_CLOEXEC, 3)
            finally:
                _close(low)
        owned.append(errpipe_write)
        if pass_fds:
            keep = tuple(sorted({errpipe_write, *pass_fds}))
        else:
            keep = (errpipe_write,)

        pid = _call(argv, (path,) if type(path) is bytes else tuple(path),
                    close_fds, keep, cwd, envp,
                    p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite,
                    errpipe_read, errpipe_write,
                    bool(flags & RESTORE_SIGNALS), bool(flags & SETSID),
                    pgroup, None if gid < 0 else gid,
                    None if groups is None else list(groups),
                    None if uid < 0 else uid, umask, preexec_fn)

        # The child is started: drop our copies of its fds (the write end
        # of the error pipe first, or the read below never sees EOF).
        owned.remove(errpipe_read)
        _close_all(owned)
        owned = [errpipe_read]

        data = b""
        while True:
            part = _read(errpipe_read, 50000)
            if not part:
                break
            data += part
            if len(data) > 50000:
                break

        if data:
            # The child failed before (or at) exec and has exited: reap it.
            try:
                os.waitpid(pid, 0)   # retries EINTR itself (PEP 475)
            except ChildProcessError:
                pass
            step, err = _child_failure(data, cwd, preexec_fn is not None)
            return (-1, -1, -1, -1, -1, method, step, err)

        pidfd = -1
        if flags & WANT_PIDFD and _pidfd_open is not None:
            try:
                pidfd = _pidfd_open(pid)
            except OSError:
                pass
        ok = True
        return (pid, pidfd, ends[0], ends[1], ends[2], method, STEP_OK, 0)
    finally:
        _close_all(owned)
        if not ok:
            _close_all(ends)


def _given(fd, pass_fds, close_fds, owned):
    """The fd to hand fork_exec for a stdio slot given as parent fd ``fd``;
    -1 if ``fd`` is not open.

    The subprocess child closes a source fd > 2 after dup2()ing it, where
    fs_spawn.c leaves it alone: when the child should keep ``fd`` itself
    (it is in pass_fds, or inheritable without CLOSE_FDS) we hand over a
    CLOEXEC copy instead.
    """
    try:
        inheritable = _get_inheritable(fd)
    except OSError:
        return -1
    if fd > 2 and (fd in pass_fds or (inheritable and not close_fds)):
        fd = fcntl(fd, F_DUPFD_CLOEXEC, 3)
        owned.append(fd)
    return fd

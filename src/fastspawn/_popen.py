"""``fastspawn.Popen``: subprocess.Popen on the fastspawn core.

It *is* a ``subprocess.Popen`` (a subclass): context management, repr,
poll and the rest are the running Python's own. ``__init__`` takes a fast
path for the common requests (what subprocess's __init__, _get_handles,
_execute_child and _close_pipe_fds do, in one frame: same attributes, same
errors; tests/test_popen_fastpath.py compares them with subprocess's) and
is subprocess's own __init__ for everything else. Underneath:

- ``_execute_child``: the launch layer (posix_spawn / vfork / fork only for
  preexec_fn) instead of ``_posixsubprocess.fork_exec``; a pidfd is opened
  when first needed (_fs_get_pidfd);
- ``_wait`` with a timeout: one poll() on the pidfd, not sleep-polling;
- ``_communicate``: one loop in C (GIL released) reading into buffers that
  become the results without a final copy;
- ``send_signal``: ``pidfd_send_signal`` where available, so a reaped and
  reused pid is never signalled.
"""
import codecs
import errno
import inspect
import io
import os
import signal
import struct
import subprocess
import sys
import threading
from resource import struct_rusage as _struct_rusage
from time import monotonic as _monotonic

from . import _backend, _compat, _procwait
from ._constants import (
    CLOSE_FDS, RESTORE_SIGNALS, SETSID,
)
from ._encode import encode_argv, fsencode
from ._execpath import candidates as _candidates
from ._launch import start as _start

__all__ = ["Popen"]

_StdPopen = subprocess.Popen
_TimeoutExpired = subprocess.TimeoutExpired

# The positional parameters Popen.__init__ passes to _execute_child differ
# between Python versions (process_group appeared in 3.11): read them once.
_EXEC_PARAMS = tuple(
    inspect.signature(_StdPopen._execute_child).parameters)[1:]

_pidfd_send_signal = getattr(signal, "pidfd_send_signal", None)
_pidfd_open = getattr(os, "pidfd_open", None)
_P_PIDFD = getattr(os, "P_PIDFD", None)
# Popen._fs_pidfd: -1 none opened (yet), >= 0 the fd, _PIDFD_GONE the
# child was reaped (by us: the fd is closed; or by somebody else).
_PIDFD_GONE = -2


def _pidfd_names_our_child(fd):
    """Whether pidfd ``fd`` names a child of ours not reaped yet (exited
    or not). Kernels without waitid(P_PIDFD) (< 5.4) cannot tell: yes."""
    if _P_PIDFD is None:
        return True
    try:
        os.waitid(_P_PIDFD, fd, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return False
    except OSError:
        return True
    return True
_ID_MAX = 2 ** 32 - 1
_LONG_MAX = 2 ** (8 * struct.calcsize("l") - 1) - 1


# PyPy's _posixsubprocess.fork_exec (pypy/module/_posixsubprocess/
# interp_subprocess.py) converts its arguments its own way (see _id_overflow
# and _c_int below). The functions of __pypy__.intop take their arguments
# through the very conversion its int arguments get.
try:
    from __pypy__.intop import int_add as _pypy_int_w  # type: ignore[import-not-found]
except ImportError:
    _pypy_int_w = None

if _pypy_int_w is None:
    def _id_overflow(kind, value):
        """CPython's _Py_Uid/Gid_Converter errors for an id above uid_t's
        range: beyond a C long "greater than maximum", else (sic) "less
        than minimum"."""
        if value > _LONG_MAX:
            return OverflowError(f"{kind} is greater than maximum")
        return OverflowError(f"{kind} is less than minimum")

    def _group_overflow(value):
        """CPython's error for such an id in extra_groups."""
        return ValueError("invalid group id")
else:
    def _id_overflow(kind, value):
        """PyPy's (space.c_uid_t_w: an unsigned C int, read through an
        unsigned long), the same for uid, gid and extra_groups."""
        if value >> 64:
            return OverflowError("int too large to convert to unsigned int")
        return OverflowError("expected an unsigned 32-bit integer")

    def _group_overflow(value):
        return _id_overflow("gid", value)


_UNIX_SHELL = ("/system/bin/sh" if hasattr(sys, "getandroidapilevel")
               else "/bin/sh")


# _posixsubprocess.fork_exec parses its fd, umask and process-group
# arguments as C ints ("i"); these give the same errors for the same values.
_INT_MAX = 2 ** 31 - 1

if _pypy_int_w is None:
    _KEEP_FD_MAX = _INT_MAX     # the highest fd fork_exec keeps open

    # As fork_exec's C int arguments take it, with this interpreter's
    # errors (TypeError for a non-integer, OverflowError out of range).
    _c_int = _compat.c_int
else:
    _KEEP_FD_MAX = 1 << 30      # PyPy's build_fd_sequence refuses more

    def _c_int(value):
        """``value`` as PyPy's fork_exec takes its C int arguments: read
        as a machine integer (__int__, else __index__; "expected integer,
        got float object"; OverflowError beyond 64 bits), then cast to a C
        int, which keeps the low 32 bits (umask=2**40 sets umask 0)."""
        value = _pypy_int_w(value, 0) & 0xFFFFFFFF
        return value - (1 << 32) if value > _INT_MAX else value


def _stdio_fd(fd):
    """A stdio fd from subprocess's _get_handles(): -1 (none) or an fd for
    the child to dup2(). Any other negative value fails that dup2() with
    EBADF in subprocess; it must never reach the backend, which reads -2,
    -3 and -4 as "make a pipe", "/dev/null" and "same as stdout"."""
    fd = _c_int(fd)
    if fd < -1:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))
    return fd


def _close_quietly(fds):
    for fd in fds:
        try:
            _close(fd)
        except OSError:
            pass


def _close_all_raise(fds):
    """Close every fd; then raise the first error, as subprocess's
    _close_pipe_fds (an ExitStack) does."""
    first = None
    for fd in fds:
        try:
            _close(fd)
        except BaseException as e:
            if first is None:
                first = e
    if first is not None:
        raise first


# The stream objects __init__ makes for a binary output pipe.
_LONE_TYPES = (io.BufferedReader, io.FileIO)


def _ignore_close(i):
    """Communicator's on_close when the caller closes the file after."""


def _decode_like_stream(data, encoding, errors):
    """``data`` as subprocess's text-mode pipe (a TextIOWrapper) reads it:
    through the codec's incremental decoder -- which, unlike
    bytes.decode(), insists on a BOM for UTF-16/UTF-32 -- with universal
    newlines."""
    text = codecs.getincrementaldecoder(encoding)(errors).decode(data, True)
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _encode_env(env):
    """subprocess's env rule: '=' is refused anywhere in a key."""
    out = []
    for k, v in env.items():
        k = os.fsencode(k)
        if b"=" in k:
            raise ValueError("illegal environment variable name")
        v = os.fsencode(v)
        if b"\0" in k or b"\0" in v:
            raise ValueError("embedded null byte")
        out.append(k + b"=" + v)
    return out


# ---- the fast construction path: what this Python's Popen.__init__ does --
#
# Popen.__init__ below does what subprocess's __init__, _get_handles,
# _execute_child and _close_pipe_fds do for the common requests, in one
# Python frame and one backend call; anything else is subprocess's own
# __init__ (the slow path), which calls our _execute_child. What differs
# between Python versions is read here, once, from the running stdlib.
_INIT = _StdPopen.__init__
# Keyword-only parameters of this Python's Popen (pipesize: 3.10+,
# process_group: 3.11+) and their defaults.
_KWONLY = {name: prm.default
           for name, prm in inspect.signature(_INIT).parameters.items()
           if prm.kind is prm.KEYWORD_ONLY}
_HAS_PIPESIZE = "pipesize" in _KWONLY
# 3.10+ resolves text mode's default encoding in __init__ (PEP 597) and
# stores it in self.encoding; 3.9 leaves it None for TextIOWrapper.
_RESOLVES_ENCODING = "_text_encoding" in _INIT.__code__.co_names
_text_encoding = getattr(subprocess, "_text_encoding", None)
_sp_cleanup = subprocess._cleanup
_PIPE = subprocess.PIPE
_DEVNULL = subprocess.DEVNULL
_STDOUT = subprocess.STDOUT
_io_open = io.open
_TextIOWrapper = io.TextIOWrapper
_Lock = threading.Lock
_pipe = os.pipe
_close = os.close
# Methods the fast path does the work of: a subclass overriding one of
# them gets subprocess's __init__, which calls it.
_BYPASSED = ("_get_handles", "_execute_child", "_close_pipe_fds",
             "_get_devnull")


def _text_asked(universal_newlines, kw):
    """Whether the call asks for text mode (subprocess's text_mode)."""
    return bool(universal_newlines or kw.get("text") or kw.get("encoding")
                or kw.get("errors"))


def _kw_fast(kw):
    """Whether keyword-only arguments ``kw`` fit the fast path: only those
    this Python's Popen has, with the values the fast path handles (user,
    group and extra_groups unset, no pipesize, umask and process_group
    ints). Anything else (an unknown name included) is for __init__'s slow
    path, which accepts or refuses it as subprocess does."""
    for name, value in kw.items():
        if name not in _KWONLY:
            return False
        if name in ("encoding", "errors", "text"):
            continue
        if name == "umask":
            if type(value) is not int:
                return False
        elif name == "process_group":
            if value is not None and type(value) is not int:
                return False
        elif name == "pipesize":
            if value is not None and value != -1:
                return False
        elif value is not None:      # user, group, extra_groups
            return False
    return True


class Popen(_StdPopen):
    __doc__ = _StdPopen.__doc__

    # Class defaults: __init__ can fail before _execute_child sets them.
    _fs_pidfd = -1
    _fs_lock = None
    _fs_comm = None
    _fs_t0 = None

    # The child's rusage from wait4: a backend RawRusage until asked for.
    _fs_rusage = None

    @property
    def rusage(self):
        """The child's ``resource.struct_rusage`` (from wait4) once
        reaped, else None."""
        ru = self._fs_rusage
        if ru is not None and type(ru) is not _struct_rusage:
            ru = self._fs_rusage = ru.value()
        return ru

    @rusage.setter
    def rusage(self, value):
        self._fs_rusage = value

    #: Seconds from spawn to reap (monotonic clock) once reaped.
    duration = None
    _fs_method = 0

    # ---- starting ----------------------------------------------------------

    if not hasattr(_StdPopen, "_on_error_fd_closer"):
        def _get_handles(self, stdin, stdout, stderr):
            """subprocess's own, a stream at a time, closing what the
            earlier streams opened when a later one fails (EMFILE). This
            interpreter's subprocess (e.g. PyPy 3.9's) predates CPython's
            ``_on_error_fd_closer`` and would leave those fds open."""
            get = super()._get_handles
            made = []
            try:
                p2cread, p2cwrite = get(stdin, None, None)[:2]
                if stdin == subprocess.PIPE:
                    made += (p2cread, p2cwrite)
                if stderr == subprocess.STDOUT:
                    # Together: stderr follows stdout's fd. Only stdout can
                    # open anything in this call, so a failure leaves
                    # nothing of this call's behind.
                    (c2pread, c2pwrite,
                     errread, errwrite) = get(None, stdout, stderr)[2:]
                else:
                    c2pread, c2pwrite = get(None, stdout, None)[2:4]
                    if stdout == subprocess.PIPE:
                        made += (c2pread, c2pwrite)
                    errread, errwrite = get(None, None, stderr)[4:]
            except BaseException:
                if hasattr(self, "_devnull"):
                    made.append(self._devnull)
                    del self._devnull
                _close_quietly(made)
                raise
            return (p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite)

    #: Whether this class may take the fast path (see __init_subclass__).
    _fs_fast_class = True

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._fs_fast_class = all(getattr(cls, name) is getattr(Popen, name)
                                 for name in _BYPASSED)

    def __init__(self, args, bufsize=-1, executable=None,
                 stdin=None, stdout=None, stderr=None,
                 preexec_fn=None, close_fds=True,
                 shell=False, cwd=None, env=None, universal_newlines=None,
                 startupinfo=None, creationflags=0,
                 restore_signals=True, start_new_session=False,
                 pass_fds=(), **kw):
        if (preexec_fn is not None or startupinfo is not None
                or type(creationflags) is not int or creationflags
                or type(bufsize) is not int
                or (kw and not _kw_fast(kw))
                or (pass_fds and not close_fds)
                or stdin == _STDOUT or stdout == _STDOUT
                or not self._fs_fast_class
                or (bufsize == 1 and not _text_asked(universal_newlines,
                                                     kw))):
            # (bufsize=1 in binary mode: io.open's RuntimeWarning then
            # points into subprocess's __init__, as users filter it.)
            # Everything else: subprocess's own __init__ (its checks, its
            # messages, its warnings), which calls our _execute_child.
            _INIT(self, args, bufsize, executable, stdin, stdout, stderr,
                  preexec_fn, close_fds, shell, cwd, env, universal_newlines,
                  startupinfo, creationflags, restore_signals,
                  start_new_session, pass_fds, **kw)
            return
        if kw:
            encoding = kw.get("encoding")
            errors = kw.get("errors")
            text = kw.get("text")
            umask = kw.get("umask", -1)
            process_group = kw.get("process_group")
        else:
            encoding = errors = text = process_group = None
            umask = -1

        # What subprocess's __init__ does, in its order, for these requests.
        _sp_cleanup()
        self._waitpid_lock = _Lock()
        self._input = None
        self._communication_started = False
        self.args = args
        self.stdin = None
        self.stdout = None
        self.stderr = None
        self.pid = None  # type: ignore[assignment]  # subprocess's own None
        self.returncode = None
        self.encoding = encoding
        self.errors = errors
        if _HAS_PIPESIZE:
            self.pipesize = -1
        if (text is not None and universal_newlines is not None
                and bool(universal_newlines) != bool(text)):
            raise subprocess.SubprocessError(
                'Cannot disambiguate when both text and universal_newlines '
                'are supplied but different. Pass one or the other.')
        text_mode = self.text_mode = (encoding or errors or text
                                      or universal_newlines)
        if text_mode and encoding is None and _RESOLVES_ENCODING:
            self.encoding = encoding = _text_encoding()
        self._sigint_wait_secs = 0.25
        self._closed_child_pipe_fds = False
        line_buffering = False
        if text_mode and bufsize == 1:
            line_buffering = True
            bufsize = -1

        # _get_handles, closing what it opened if a later stream fails.
        p2cread = p2cwrite = c2pread = c2pwrite = errread = errwrite = -1
        try:
            if stdin is None:
                pass
            elif stdin == _PIPE:
                p2cread, p2cwrite = _pipe()
            elif stdin == _DEVNULL:
                p2cread = self._get_devnull()
            elif isinstance(stdin, int):
                p2cread = stdin
            else:
                p2cread = stdin.fileno()
            if stdout is None:
                pass
            elif stdout == _PIPE:
                c2pread, c2pwrite = _pipe()
            elif stdout == _DEVNULL:
                c2pwrite = self._get_devnull()
            elif isinstance(stdout, int):
                c2pwrite = stdout
            else:
                c2pwrite = stdout.fileno()
            if stderr is None:
                pass
            elif stderr == _PIPE:
                errread, errwrite = _pipe()
            elif stderr == _STDOUT:
                errwrite = (c2pwrite if c2pwrite != -1
                            else sys.__stdout__.fileno())
            elif stderr == _DEVNULL:
                errwrite = self._get_devnull()
            elif isinstance(stderr, int):
                errwrite = stderr
            else:
                errwrite = stderr.fileno()
        except BaseException:
            made = []
            if stdin == _PIPE:
                made += (p2cread, p2cwrite)
            if stdout == _PIPE:
                made += (c2pread, c2pwrite)
            if hasattr(self, "_devnull"):
                made.append(self._devnull)
                del self._devnull
            _close_quietly(made)
            raise

        try:
            # Wrapped before the child starts, as subprocess does (a bad
            # encoding fails here, with no child).
            if p2cwrite != -1:
                self.stdin = _io_open(p2cwrite, 'wb', bufsize)
                if text_mode:
                    self.stdin = _TextIOWrapper(
                        self.stdin, write_through=True,
                        line_buffering=line_buffering,
                        encoding=encoding, errors=errors)
            if c2pread != -1:
                self.stdout = _io_open(c2pread, 'rb', bufsize)
                if text_mode:
                    self.stdout = _TextIOWrapper(self.stdout,
                                                 encoding=encoding,
                                                 errors=errors)
            if errread != -1:
                self.stderr = _io_open(errread, 'rb', bufsize)
                if text_mode:
                    self.stderr = _TextIOWrapper(self.stderr,
                                                 encoding=encoding,
                                                 errors=errors)
            self._fs_start(args, executable, close_fds, pass_fds, cwd, env,
                           shell, p2cread, c2pwrite, errwrite,
                           restore_signals, None, None, None, umask,
                           start_new_session,
                           -1 if process_group is None else process_group,
                           None)
            # _close_pipe_fds: the child's ends (and /dev/null) are its now.
            devnull_fd = getattr(self, "_devnull", None)
            ends = []
            if p2cread != -1 and p2cwrite != -1 and p2cread != devnull_fd:
                ends.append(p2cread)
            if c2pwrite != -1 and c2pread != -1 and c2pwrite != devnull_fd:
                ends.append(c2pwrite)
            if errwrite != -1 and errread != -1 and errwrite != devnull_fd:
                ends.append(errwrite)
            if devnull_fd is not None:
                ends.append(devnull_fd)
            self._closed_child_pipe_fds = True
            if ends:
                _close_all_raise(ends)
        except BaseException:
            # subprocess's clean-up when the child failed to start.
            for f in filter(None, (self.stdin, self.stdout, self.stderr)):
                try:
                    f.close()
                except OSError:
                    pass
            if not self._closed_child_pipe_fds:
                made = []
                if stdin == _PIPE:
                    made.append(p2cread)
                if stdout == _PIPE:
                    made.append(c2pwrite)
                if stderr == _PIPE:
                    made.append(errwrite)
                if hasattr(self, "_devnull"):
                    made.append(self._devnull)
                _close_quietly(made)
            raise

    __init__.__doc__ = _INIT.__doc__
    __init__.__signature__ = inspect.signature(_INIT)

    def _execute_child(self, *params):
        """Start the child through fastspawn's launch layer (POSIX): what
        subprocess's __init__ calls on the slow path."""
        p = dict(zip(_EXEC_PARAMS, params))
        self._fs_start(p["args"], p["executable"], p["close_fds"],
                       p["pass_fds"], p["cwd"], p["env"], p["shell"],
                       p["p2cread"], p["c2pwrite"], p["errwrite"],
                       p["restore_signals"], p["gid"], p["gids"], p["uid"],
                       p["umask"], p["start_new_session"],
                       p.get("process_group", -1), p["preexec_fn"])
        self._close_pipe_fds(p["p2cread"], p["p2cwrite"], p["c2pread"],
                             p["c2pwrite"], p["errread"], p["errwrite"])

    def _fs_start(self, args, executable, close_fds, pass_fds, cwd, env,
                  shell, p2cread, c2pwrite, errwrite, restore_signals, gid,
                  gids, uid, umask, start_new_session, pgroup, preexec_fn):
        """subprocess's _execute_child up to the child's start, on the
        launch layer; sets pid."""
        # Exactly subprocess's normalisation of args/executable.
        if type(args) is list:
            args = list(args)
        elif isinstance(args, (str, bytes)):
            args = [args]
        elif isinstance(args, os.PathLike):
            if shell:
                raise TypeError("path-like args is not allowed when "
                                "shell is true")
            args = [args]
        else:
            args = list(args)
        if shell:
            args = [_UNIX_SHELL, "-c"] + args
            if executable:
                args[0] = executable
        if executable is None:
            executable = args[0]

        sys.audit("subprocess.Popen", executable, args, cwd, env)

        # Where this subprocess would use os.posix_spawn, its checks and
        # errors are os.posix_spawn's (_compat).
        posix_spawned = (_compat.STDLIB_POSIX_SPAWN
                         and _compat.stdlib_posix_spawns(executable, {
                "preexec_fn": preexec_fn, "close_fds": close_fds,
                "pass_fds": pass_fds, "cwd": cwd, "p2cread": p2cread,
                "c2pwrite": c2pwrite, "errwrite": errwrite,
                "start_new_session": start_new_session,
                "process_group": -1 if pgroup is None else pgroup,
                "gid": gid, "gids": gids, "uid": uid, "umask": umask}))
        if posix_spawned:
            exe, argv, envp = _compat.posix_spawn_args(executable, args, env)
            executable = os.fspath(executable)
        else:
            envp = None if env is None else _encode_env(env)
            argv = encode_argv(args)
            exe = argv[0] if executable is args[0] else fsencode(executable)
        cwd_b = None if cwd is None else fsencode(cwd)

        # -1 (inherit) needs no check; an fd >= 0 goes to the child as is.
        if p2cread != -1:
            p2cread = _stdio_fd(p2cread)
        if c2pwrite != -1:
            c2pwrite = _stdio_fd(c2pwrite)
        if errwrite != -1:
            errwrite = _stdio_fd(errwrite)
        # No pidfd here: it is opened when first needed (_fs_get_pidfd).
        flags = 0
        if close_fds:
            flags |= CLOSE_FDS
        if restore_signals:
            flags |= RESTORE_SIGNALS
        if start_new_session:
            flags |= SETSID
        if pgroup is None:
            pgroup = -1
        elif pgroup != -1:
            pgroup = _c_int(pgroup)
        if umask != -1:
            umask = _c_int(umask)
        # uid_t/gid_t are unsigned 32-bit: ids up to 2**32-1 are valid
        # ((uid_t)-1: "no change"). Beyond that, _posixsubprocess's
        # converters raise (with these very messages); the C request would
        # otherwise truncate, e.g. 2**32 to root.
        if gids is not None:
            for g in gids:
                if g > _ID_MAX:
                    raise _group_overflow(g)
            gids = tuple(gids)
        if gid is None:
            gid = -1
        elif gid > _ID_MAX:
            raise _id_overflow("gid", gid)
        if uid is None:
            uid = -1
        elif uid > _ID_MAX:
            raise _id_overflow("uid", uid)
        if pass_fds:
            # subprocess's set(pass_fds) first: its TypeError for a
            # non-iterable (map()'s differs on PyPy).
            pass_fds = tuple(sorted(set(map(int, set(pass_fds)))))
            if pass_fds[0] < 0 or pass_fds[-1] > _KEEP_FD_MAX:
                raise ValueError("bad value(s) in fds_to_keep")  # fork_exec's
        else:
            pass_fds = ()
        self._fs_lock = _Lock()

        paths = _candidates(exe, env)
        self._fs_t0 = _monotonic()
        # (subprocess's -1 for an fd is STDIO_INHERIT.)
        res = _start(paths, argv, envp, p2cread, c2pwrite, errwrite,
                     pass_fds, cwd_b, flags, pgroup, umask, uid, gid, gids,
                     preexec_fn, executable, cwd, posix_spawned)
        self.pid = res[0]
        self._fs_method = res[5]
        self._child_created = True

    # ---- the pidfd -------------------------------------------------------------
    #
    # Opening a pidfd for every child costs more than all of Popen's Python
    # code (an inode and a file in the kernel's pidfs, ~6 us here: the
    # popen_wait benchmark), and most children never need one. So it is
    # opened the first time a wait with a timeout or a signal needs it, and
    # then checked to still name our unreaped child: a pid that somebody
    # else reaped (os.waitpid(-1), SIGCHLD ignored) fails pidfd_open with
    # ESRCH, or, if already reused by another process, is not our child
    # (waitid on the pidfd: ECHILD). Either way the child is gone and is
    # never signalled. (Only a pid reused by another child of ours in that
    # window would pass, which takes a full wrap of the pid space.)

    def _fs_get_pidfd(self):
        """The child's pidfd (opened now if need be), _PIDFD_GONE if the
        child is known to have been reaped, or -1 where pidfds are missing
        or none could be opened (EMFILE): callers fall back to the pid."""
        with self._fs_lock:
            fd = self._fs_pidfd
            if fd != -1 or _pidfd_open is None or self.returncode is not None:
                return fd
            try:
                fd = _pidfd_open(self.pid)
            except ProcessLookupError:
                fd = _PIDFD_GONE        # reaped by somebody else
            except OSError:
                return -1               # ENOSYS, EMFILE...: try again later
            else:
                if not _pidfd_names_our_child(fd):
                    os.close(fd)
                    fd = _PIDFD_GONE
            self._fs_pidfd = fd
            return fd

    # ---- waiting -------------------------------------------------------------

    def _fs_close_pidfd(self, _close=os.close, _GONE=_PIDFD_GONE):
        # Called from __del__ paths: only local names.
        with self._fs_lock:
            fd = self._fs_pidfd
            self._fs_pidfd = _GONE
        if fd >= 0:
            _close(fd)

    def _handle_exitstatus(self, sts, *args, _now=_monotonic,
                           _WIFEXITED=os.WIFEXITED,
                           _WEXITSTATUS=os.WEXITSTATUS, **kwargs):
        # Called from __del__ paths: only local names. The commonest status
        # (an exit) without subprocess's frame; every other one (signals,
        # stops, what a version does with them) through subprocess's own.
        if _WIFEXITED(sts) and not args and not kwargs:
            self.returncode = _WEXITSTATUS(sts)
        else:
            super()._handle_exitstatus(sts, *args, **kwargs)
        if self._fs_t0 is not None:
            self.duration = _now() - self._fs_t0
        self._fs_close_pidfd()

    # Reaping goes through wait4() so that the child's resource usage is
    # kept; subprocess reaps in _try_wait (wait) and _internal_poll (poll).
    def _try_wait(self, wait_flags):
        try:
            # The backend's wait4 keeps the rusage raw (os.wait4 builds a
            # struct_rusage of 16 objects per call).
            pid, sts, ru = _backend.impl.wait4(self.pid, wait_flags)
        except ChildProcessError:
            # SIGCHLD ignored or reaped elsewhere: the status is lost
            # (subprocess says 0, bpo-15756).
            return (self.pid, 0)
        if pid == self.pid:
            self._fs_rusage = ru
        return (pid, sts)

    def _internal_poll(self, _deadstate=None, _wait4=os.wait4,
                       _poll_kwargs=_compat.poll_kwargs, **kwargs):
        # kwargs: whatever the running stdlib passes (3.13+: _del_safe);
        # _compat decides how its poll takes our waitpid.
        def waitpid(pid, flags):
            got, sts, ru = _wait4(pid, flags)
            if got == pid:
                self.rusage = ru
            return got, sts
        return super()._internal_poll(_deadstate,
                                      **_poll_kwargs(waitpid, kwargs))

    def _wait(self, timeout):
        """wait() with a timeout sleeps until the child exits (pidfd poll,
        or kqueue) instead of sleep-polling waitpid."""
        if timeout is None:
            # subprocess's blocking wait, without its loop's extra frames.
            while self.returncode is None:
                with self._waitpid_lock:
                    if self.returncode is not None:
                        break   # another thread waited
                    pid, sts = self._try_wait(0)
                    # waitpid has been seen to return 0 without WNOHANG
                    # (bpo-14396): subprocess loops, and so do we.
                    if pid == self.pid:
                        self._handle_exitstatus(sts)
            return self.returncode
        if (self.returncode is not None
                or (self._fs_get_pidfd() < 0 and not _procwait.EVENT_DRIVEN)):
            return super()._wait(timeout)
        endtime = _monotonic() + timeout
        exited = False
        while True:
            # Block on the lock only once the child is known to be gone:
            # whoever holds it is then about to set returncode.
            if self._waitpid_lock.acquire(exited):
                try:
                    if self.returncode is not None:
                        break  # another thread waited
                    pid, sts = self._try_wait(os.WNOHANG)
                    if pid == self.pid:
                        self._handle_exitstatus(sts)
                        break
                finally:
                    self._waitpid_lock.release()
            elif self.returncode is not None:
                break
            with self._fs_lock:
                # A copy: a reaper in another thread may close ours.
                fd = -1
                if self._fs_pidfd >= 0:
                    try:
                        fd = os.dup(self._fs_pidfd)
                    except OSError:
                        pass    # out of fds (EMFILE): wait without one
            if fd < 0 and not _procwait.EVENT_DRIVEN:
                # No fd to spare and no kqueue: subprocess's own polling
                # wait for the time left, which needs no fd.
                try:
                    return super()._wait(endtime - _monotonic())
                except _TimeoutExpired:
                    raise _TimeoutExpired(self.args, timeout) from None
            try:
                exited = _procwait.wait_exit(self.pid, fd, endtime)
            finally:
                if fd >= 0:
                    os.close(fd)
            if not exited:
                raise _TimeoutExpired(self.args, timeout)
        return self.returncode

    # ---- communicating -------------------------------------------------------

    def communicate(self, input=None, timeout=None):
        if (timeout is None and self.stdin is None
                and not self._communication_started and not self.text_mode
                and (self.stdout is None) != (self.stderr is None)
                and _backend.impl.LONE_PIPE_LOOP):
            # A lone output pipe: subprocess reads it with the file
            # object's read(), which joins chunks (2x the output at the
            # peak); the C loop reads into one buffer that becomes the
            # result. Text mode keeps subprocess's reader (its decoder and
            # newline state live in the TextIOWrapper).
            k = 0 if self.stdout is not None else 1
            f = self.stdout if k == 0 else self.stderr
            if (f.closed or type(f) not in _LONE_TYPES
                    or not os.get_blocking(f.fileno())):
                # (A non-blocking pipe: subprocess's read() returns what
                # is there, or None.)
                return super().communicate(input, timeout)
            data = self._fs_read_lone(f, k)
            f.close()
            self.wait()
            return (data, None) if k == 0 else (None, data)
        return super().communicate(input, timeout)

    def _fs_read_lone(self, f, k):
        """All of ``f``'s output, starting with what its buffer holds."""
        head = b""
        if type(f) is io.BufferedReader:
            # What the buffer holds (no I/O then), else one read: what the
            # user may have left there by reading part of the stream.
            head = f.peek()
            if not head:
                return b""          # EOF
            head = f.read(len(head))
        fd = f.fileno()
        com = _backend.impl.Communicator(-1, fd if k == 0 else -1,
                                         fd if k == 1 else -1, None)
        com.seed(k, head)
        com.run(None, _ignore_close)
        return com.output()[k]

    def _fs_stream_done(self, i):
        f = (self.stdin, self.stdout, self.stderr)[i]
        try:
            f.close()
        except BrokenPipeError:
            pass  # communicate() must ignore BrokenPipeError

    def _communicate(self, input, endtime, orig_timeout):
        if self.stdin and not self._communication_started:
            try:
                self.stdin.flush()
            except BrokenPipeError:
                pass  # communicate() must ignore BrokenPipeError.
            if not input:
                try:
                    self.stdin.close()
                except BrokenPipeError:
                    pass
        self._save_input(input)
        _compat.check_input(self._input)

        com = self._fs_comm
        if com is None:
            def fd(f):
                return f.fileno() if f is not None and not f.closed else -1
            # One loop per Popen, whichever thread comes first (a second
            # one on the same fds would share them; its run() raises).
            with self._fs_lock:
                com = self._fs_comm
                if com is None:
                    com = self._fs_comm = _backend.impl.Communicator(
                        fd(self.stdin) if self._input else -1,
                        fd(self.stdout), fd(self.stderr), self._input)
        if not com.run(endtime, self._fs_stream_done):
            out, err = com.output()
            raise _TimeoutExpired(self.args, orig_timeout,
                                  output=out, stderr=err)

        self.wait(timeout=self._remaining_time(endtime))

        stdout, stderr = com.output()
        if self.text_mode:
            if stdout is not None:
                stdout = self._fs_decode(
                    stdout, self.stdout.encoding, self.stdout.errors)
            if stderr is not None:
                stderr = self._fs_decode(
                    stderr, self.stderr.encoding, self.stderr.errors)
        return (stdout, stderr)

    def _fs_decode(self, data, encoding, errors):
        return self._translate_newlines(data, encoding, errors)

    # ---- signalling ----------------------------------------------------------

    def send_signal(self, sig):
        """Send a signal to the process (through its pidfd on Linux, so a
        reaped pid that was reused is never signalled)."""
        self.poll()
        if self.returncode is not None:
            return
        if _pidfd_send_signal is not None:
            self._fs_get_pidfd()
            with self._fs_lock:
                if self._fs_pidfd == _PIDFD_GONE:
                    return      # reaped elsewhere: its pid is not ours
                if self._fs_pidfd >= 0:
                    try:
                        _pidfd_send_signal(self._fs_pidfd, sig)
                    except ProcessLookupError:
                        pass
                    return
        try:
            os.kill(self.pid, sig)
        except ProcessLookupError:
            pass

    def __del__(self, *args, **kwargs):
        if not self._child_created or (self.returncode is not None
                                       and self._fs_pidfd < 0):
            # No child, or reaped with nothing open: subprocess's __del__
            # would do nothing (its poll returns the returncode at once).
            return
        if self._fs_pidfd >= 0:
            self._fs_close_pidfd()
        super().__del__(*args, **kwargs)


# What the last _CapturePopen of this thread measured, for the
# CompletedProcess that the stdlib's run() builds right after its with-block.
_last_usage = threading.local()


class _CapturePopen(Popen):
    """The Popen behind run(), check_output() & co. Its streams are never
    handed to the caller, so communicate() can always use the C loop, even
    for a single pipe (subprocess then reads through the file object, which
    costs a second copy of the output)."""

    _fs_lone_pipe = False

    def communicate(self, input=None, timeout=None):
        if (timeout is None and not self._communication_started
                and [self.stdin, self.stdout, self.stderr].count(None) >= 2
                and (self.stdout or self.stderr)):
            self._fs_lone_pipe = True
            try:
                return self._communicate(input, None, None)
            finally:
                self._communication_started = True
        return super().communicate(input, timeout)

    def _fs_decode(self, data, encoding, errors):
        if self._fs_lone_pipe:
            # subprocess reads a lone pipe through its TextIOWrapper.
            return _decode_like_stream(data, encoding, errors)
        return super()._fs_decode(data, encoding, errors)

    def __exit__(self, exc_type, value, traceback):
        try:
            return super().__exit__(exc_type, value, traceback)
        finally:
            if exc_type is KeyboardInterrupt and self.returncode is None:
                # run(), call() & co. have killed the child on their way
                # out; subprocess's __exit__ leaves it a zombie until some
                # later _cleanup(). Reap it now (README: no zombie after an
                # interrupt).
                self.kill()
                self.wait()
            _last_usage.value = (self._fs_rusage, self.duration)

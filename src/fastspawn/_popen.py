"""``fastspawn.Popen``: subprocess.Popen on the fastspawn core.

It *is* a ``subprocess.Popen`` (a subclass), so argument validation, error
messages, stream set-up, context management and ``__del__`` are the running
Python's own. What it replaces is the machinery underneath:

- ``_execute_child``: the launch layer (posix_spawn / vfork / fork only for
  preexec_fn) instead of ``_posixsubprocess.fork_exec``, plus a pidfd;
- ``_wait`` with a timeout: one poll() on the pidfd, not sleep-polling;
- ``_communicate``: one loop in C (GIL released) reading into buffers that
  become the results without a final copy;
- ``send_signal``: ``pidfd_send_signal`` where available, so a reaped and
  reused pid is never signalled.
"""
import codecs
import errno
import inspect
import os
import signal
import struct
import subprocess
import sys
import threading
from time import monotonic as _monotonic

from . import _backend, _compat, _procwait
from ._constants import (
    CLOSE_FDS, RESTORE_SIGNALS, SETSID, STDIO_INHERIT, WANT_PIDFD,
)
from ._encode import encode_argv, fsencode
from ._launch import launch

__all__ = ["Popen"]

_StdPopen = subprocess.Popen
_TimeoutExpired = subprocess.TimeoutExpired

# The positional parameters Popen.__init__ passes to _execute_child differ
# between Python versions (process_group appeared in 3.11): read them once.
_EXEC_PARAMS = tuple(
    inspect.signature(_StdPopen._execute_child).parameters)[1:]

_pidfd_send_signal = getattr(signal, "pidfd_send_signal", None)
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
_WANT_PIDFD = WANT_PIDFD if sys.platform.startswith("linux") else 0


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


class Popen(_StdPopen):
    __doc__ = _StdPopen.__doc__

    # Class defaults: __init__ can fail before _execute_child sets them.
    _fs_pidfd = -1
    _fs_lock = None
    _fs_comm = None
    _fs_t0 = None

    #: The child's ``resource.struct_rusage`` (from wait4) once reaped.
    rusage = None
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
                for fd in made:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
                raise
            return (p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite)

    def _execute_child(self, *params):
        """Start the child through fastspawn's launch layer (POSIX)."""
        p = dict(zip(_EXEC_PARAMS, params))
        args = p["args"]
        executable = p["executable"]
        shell = p["shell"]
        cwd = p["cwd"]
        env = p["env"]

        # Exactly subprocess's normalisation of args/executable.
        if isinstance(args, (str, bytes)):
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

        orig_executable = executable
        # Where this subprocess would use os.posix_spawn, its checks and
        # errors are os.posix_spawn's (_compat).
        posix_spawned = _compat.stdlib_posix_spawns(executable, p)
        if posix_spawned:
            exe, argv, envp = _compat.posix_spawn_args(executable, args, env)
            orig_executable = os.fspath(executable)
        else:
            envp = None if env is None else _encode_env(env)
            argv = encode_argv(args)
            exe = fsencode(executable)
        cwd_b = None if cwd is None else fsencode(cwd)

        p2cread = _stdio_fd(p["p2cread"])
        c2pwrite = _stdio_fd(p["c2pwrite"])
        errwrite = _stdio_fd(p["errwrite"])
        flags = _WANT_PIDFD
        if p["close_fds"]:
            flags |= CLOSE_FDS
        if p["restore_signals"]:
            flags |= RESTORE_SIGNALS
        if p["start_new_session"]:
            flags |= SETSID
        pgroup = p.get("process_group", -1)
        pgroup = -1 if pgroup is None else _c_int(pgroup)
        umask = _c_int(p["umask"])
        gid = p["gid"]
        gids = p["gids"]
        uid = p["uid"]
        # uid_t/gid_t are unsigned 32-bit: ids up to 2**32-1 are valid
        # ((uid_t)-1: "no change"). Beyond that, _posixsubprocess's
        # converters raise (with these very messages); the C request would
        # otherwise truncate, e.g. 2**32 to root.
        if gids is not None:
            for g in gids:
                if g > _ID_MAX:
                    raise _group_overflow(g)
        if gid is not None and gid > _ID_MAX:
            raise _id_overflow("gid", gid)
        if uid is not None and uid > _ID_MAX:
            raise _id_overflow("uid", uid)
        # subprocess's set(pass_fds) first: its TypeError for a non-iterable
        # (map()'s differs on PyPy).
        pass_fds = tuple(sorted(set(map(int, set(p["pass_fds"])))))
        if pass_fds and (pass_fds[0] < 0 or pass_fds[-1] > _KEEP_FD_MAX):
            raise ValueError("bad value(s) in fds_to_keep")   # fork_exec's
        self._fs_lock = threading.Lock()

        self._fs_t0 = _monotonic()
        res = launch(
            exe, argv, envp, search=True, path_env=env,
            stdin=p2cread if p2cread != -1 else STDIO_INHERIT,
            stdout=c2pwrite if c2pwrite != -1 else STDIO_INHERIT,
            stderr=errwrite if errwrite != -1 else STDIO_INHERIT,
            pass_fds=pass_fds, cwd=cwd_b, cwd_for_error=cwd, flags=flags,
            pgroup=pgroup,
            umask=umask,
            uid=-1 if uid is None else uid,
            gid=-1 if gid is None else gid,
            groups=None if gids is None else tuple(gids),
            preexec_fn=p["preexec_fn"], filename=orig_executable,
            name_program=posix_spawned)
        self.pid = res[0]
        self._fs_pidfd = res[1]
        self._fs_method = res[5]
        self._child_created = True
        self._close_pipe_fds(p["p2cread"], p["p2cwrite"], p["c2pread"],
                             p["c2pwrite"], p["errread"], p["errwrite"])

    # ---- waiting -------------------------------------------------------------

    def _fs_close_pidfd(self, _close=os.close):
        # Called from __del__ paths: only local names.
        with self._fs_lock:
            fd = self._fs_pidfd
            self._fs_pidfd = -1
        if fd >= 0:
            _close(fd)

    def _handle_exitstatus(self, sts, *args, _now=_monotonic, **kwargs):
        super()._handle_exitstatus(sts, *args, **kwargs)
        if self._fs_t0 is not None:
            self.duration = _now() - self._fs_t0
        self._fs_close_pidfd()

    # Reaping goes through wait4() so that the child's resource usage is
    # kept; subprocess reaps in _try_wait (wait) and _internal_poll (poll).
    def _try_wait(self, wait_flags, _wait4=os.wait4):
        try:
            pid, sts, ru = _wait4(self.pid, wait_flags)
        except ChildProcessError:
            # SIGCHLD ignored or reaped elsewhere: the status is lost
            # (subprocess says 0, bpo-15756).
            return (self.pid, 0)
        if pid == self.pid:
            self.rusage = ru
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
        if (timeout is None or self.returncode is not None
                or (self._fs_pidfd < 0 and not _procwait.EVENT_DRIVEN)):
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
            with self._fs_lock:
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
            _last_usage.value = (self.rusage, self.duration)

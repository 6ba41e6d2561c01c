"""Detached processes (daemons) managed through pidfiles.

::

    from fastspawn import daemon

    pid = daemon.start(["my-server", "--port", "8080"], "/run/my-server.pid",
                       stdout="/var/log/my-server.log", stderr=daemon.STDOUT)
    daemon.status("/run/my-server.pid")      # the pid while it runs, else None
    daemon.restart(["my-server", "--port", "8081"], "/run/my-server.pid")
    daemon.stop("/run/my-server.pid")        # SIGTERM, then SIGKILL

:func:`start` detaches the command completely: it runs in a new session
with no controlling terminal, stdin from /dev/null, stdout/stderr to
/dev/null or to log files opened in append mode, in ``cwd`` (default ``/``)
with ``umask`` (default 0o022), and it is not a child of the caller: a
short-lived helper (``sys.executable``, no shell) that is a session leader
starts it and exits, so the daemon is reparented to init (or the nearest
subreaper), survives the caller, and the caller never holds a zombie. The
helper reports the daemon's pid, or the errno of a failed exec/chdir, back
through a pipe, and stays alive until the pidfile is written, so the pid
cannot be reused before the pidfile names it.

The pidfile is what init systems, ``kill $(cat app.pid)``, ``pkill -F`` and
monitoring tools expect: the pid in ASCII decimal and a newline, nothing
else. Beside it, ``<pidfile>.ident`` records who that pid is: the pid again,
the process's start time (field 22 of ``/proc/<pid>/stat`` on Linux,
``ps -o lstart=`` elsewhere) and, on Linux, the boot id. Every check
verifies them, so a pidfile whose process died and whose pid was reused is
recognised as stale: it is never signalled, :func:`status` says None,
:func:`start` replaces the pidfile, :func:`stop` removes it. On Linux the
signals go through a pidfd opened *before* the check, so not even a pid
reused in between can be hit. A pidfile with no ident file naming its pid
(written by another tool, or rewritten by the daemon itself) is taken on
the pid's word. Both files are written atomically (temporary file +
``os.replace``), and start/stop/restart on one pidfile are serialised with
a lock file (``<pidfile>.lock``, removed afterwards).
"""
import errno
import fcntl
import marshal
import os
import select
import signal
import subprocess
import sys
import time
from time import monotonic
from typing import Any, Mapping, Optional, Sequence

from . import _execpath
from ._constants import (
    CLOSE_FDS, RESTORE_SIGNALS, SETSID, STDIO_DEVNULL, STDIO_STDOUT,
    WANT_PIDFD,
)
from ._encode import encode_argv
from ._launch import launch
from ._popen import _encode_env

__all__ = ["start", "stop", "status", "restart", "AlreadyRunning", "STDOUT",
           "DEVNULL"]

#: ``stderr=STDOUT``: the daemon's stderr goes where its stdout goes.
STDOUT = subprocess.STDOUT
#: ``stdout=DEVNULL`` / ``stderr=DEVNULL``: the default.
DEVNULL = subprocess.DEVNULL

_LINUX = sys.platform.startswith("linux")
_pidfd_open = getattr(os, "pidfd_open", None)
_pidfd_send_signal = getattr(signal, "pidfd_send_signal", None)
_BOOT_ID = "/proc/sys/kernel/random/boot_id"
# How long stop() waits after SIGKILL before giving up (a process in
# uninterruptible sleep can take a while to die).
_KILL_WAIT = 10.0


class AlreadyRunning(RuntimeError):
    """start(): the pidfile names a live process."""

    def __init__(self, pidfile: str, pid: int) -> None:
        super().__init__("%s: already running as pid %d" % (pidfile, pid))
        self.pidfile = pidfile
        self.pid = pid


# ---- process identity -------------------------------------------------------

def _boot_id():
    try:
        with open(_BOOT_ID) as f:
            return f.read().strip() or None
    except OSError:
        return None


def _start_time(pid):
    """An identity token for the running process ``pid`` (its start time),
    or None when there is no such live process (zombies count as dead)."""
    if _LINUX or os.path.isdir("/proc/self"):
        try:
            with open("/proc/%d/stat" % pid, "rb") as f:
                stat = f.read()
        except (FileNotFoundError, ProcessLookupError):
            return None
        except OSError:
            stat = None
        if stat:
            # pid (comm) state ppid ...: comm may hold spaces and parens.
            fields = stat[stat.rfind(b")") + 2:].split()
            if fields[0] in (b"Z", b"X", b"x"):
                return None
            return fields[19].decode()          # field 22: starttime
    return _ps_start_time(pid)


def _ps_start_time(pid):
    """ps(1)'s view, for systems without /proc (macOS)."""
    try:
        r = subprocess.run(["ps", "-o", "stat=", "-o", "lstart=", "-p",
                            str(pid)], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, env={"LC_ALL": "C",
                                                           "PATH": os.defpath})
    except OSError:
        return None
    line = r.stdout.decode("ascii", "replace").strip()
    if r.returncode != 0 or not line:
        return None
    state, _, start = line.partition(" ")
    if state.startswith("Z"):
        return None
    return " ".join(start.split())


# ---- pidfiles ---------------------------------------------------------------

class _Info:
    __slots__ = ("pid", "start", "boot")

    def __init__(self, pid, start, boot):
        self.pid = pid
        self.start = start
        self.boot = boot


def _ident_path(pidfile):
    return pidfile + ".ident"


def _read_small(path):
    """The first 4 KiB of ``path`` as ASCII lines, or None if it is missing
    or not ASCII."""
    try:
        with open(path, "rb") as f:
            data = f.read(4096)
    except FileNotFoundError:
        return None
    try:
        return data.decode("ascii").splitlines()
    except UnicodeDecodeError:
        return None


def _fields(lines):
    """The ``key=value`` lines of an ident file, as a dict."""
    found = {}
    for line in lines:
        key, sep, value = line.partition("=")
        if sep:
            found[key.strip()] = value.strip()
    return found


def _read(pidfile):
    """The pidfile's contents, with the identity its ident file records for
    that pid; None if the pidfile is missing or unreadable as a pidfile
    (garbage counts as stale)."""
    lines = _read_small(pidfile)
    try:
        pid = int(lines[0].strip())
    except (TypeError, ValueError, IndexError):
        return None
    if pid <= 0:
        return None
    # Pidfiles of earlier fastspawn versions carry start=/boot= lines
    # themselves: still understood.
    ident = _fields(lines[1:])
    if "start" not in ident:
        ident = _fields(_read_small(_ident_path(pidfile)) or ())
        if ident.get("pid") != str(pid):
            ident = {}      # about another pid: the pidfile was rewritten
    return _Info(pid, ident.get("start"), ident.get("boot"))


def _matches(info):
    """Whether the process behind ``info`` still is the one it names.
    A pidfile without a start time (not written here) is taken on the
    pid's word."""
    if info.boot is not None:
        boot = _boot_id()
        if boot is not None and boot != info.boot:
            return False      # written before a reboot
    current = _start_time(info.pid)
    if current is None:
        return False
    return info.start is None or current == info.start


def _replace(path, data):
    """Write ``data`` to ``path`` atomically (temporary file, fsync,
    os.replace)."""
    tmp = "%s.%d.tmp" % (path, os.getpid())
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC,
                 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _write(pidfile, pid, start):
    """The pidfile (the pid alone), then its ident file. In between, a
    reader finds the new pid beside the previous ident file, which names
    another pid (ignored: the pid's word holds, rightly) or -- the pid was
    reused -- the same one with an older start time (stale for that
    instant: never a wrong process)."""
    _replace(pidfile, b"%d\n" % pid)
    lines = ["pid=%d" % pid, "start=%s" % start]
    boot = _boot_id()
    if boot is not None:
        lines.append("boot=%s" % boot)
    _replace(_ident_path(pidfile), ("\n".join(lines) + "\n").encode("ascii"))


def _remove(pidfile):
    """The pidfile, then its ident file (never an ident-less pidfile of
    ours in between)."""
    for path in (pidfile, _ident_path(pidfile)):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


class _Lock:
    """An exclusive flock on ``<pidfile>.lock``, removed on release (the
    inode check keeps that race-free)."""

    def __init__(self, pidfile):
        self.path = pidfile + ".lock"
        self.fd = -1

    def __enter__(self):
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                         0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                st = os.fstat(fd)
                try:
                    cur = os.stat(self.path)
                except FileNotFoundError:
                    cur = None
            except BaseException:
                os.close(fd)
                raise
            if cur is not None and (cur.st_dev, cur.st_ino) == (st.st_dev,
                                                                st.st_ino):
                self.fd = fd
                return self
            os.close(fd)        # removed by the previous holder: retry

    def __exit__(self, *exc):
        try:
            os.unlink(self.path)
        except OSError:
            pass
        os.close(self.fd)
        self.fd = -1


def _pidfile_path(pidfile):
    return os.path.abspath(os.fsdecode(os.fspath(pidfile)))


# ---- starting ---------------------------------------------------------------

# The intermediate process. It is a session leader (started with SETSID);
# it reads (path, argv, envp, cwd, umask) from fd `ctl`, chdir()s, sets the
# umask and fork()s the daemon, which exec()s -- the daemon is in the new
# session but not its leader, so it can never acquire a controlling
# terminal. It reports "P<pid>" or "E<step> <errno>" on fd `rep`, then
# waits for EOF on `ctl` so that the daemon stays its (unreaped) child --
# its pid cannot be reused -- until the caller has written the pidfile.
_HELPER = r"""
import os, sys, marshal, signal
ctl, rep = int(sys.argv[1]), int(sys.argv[2])
os.set_inheritable(ctl, False)
os.set_inheritable(rep, False)
def readn(n):
    b = b""
    while len(b) < n:
        c = os.read(ctl, n - len(b))
        if not c:
            os._exit(3)
        b += c
    return b
path, argv, envp, cwd, umask = marshal.loads(
    readn(int.from_bytes(readn(8), "little")))
try:
    os.chdir(cwd)
except OSError as e:
    os.write(rep, b"E2 %d\n" % e.errno)
    os._exit(0)
if umask >= 0:
    os.umask(umask)
env = None
if envp is not None:
    env = {}
    for item in envp:
        k, _, v = item.partition(b"=")
        env.setdefault(k, v)
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    err = b"22"
    try:
        for name in ("SIGPIPE", "SIGXFSZ", "SIGXFZ"):
            if hasattr(signal, name):
                signal.signal(getattr(signal, name), signal.SIG_DFL)
        if env is None:
            os.execv(path, argv)
        else:
            os.execve(path, argv, env)
    except OSError as e:
        err = b"%d" % (e.errno or 22)
    except BaseException:
        pass
    os.write(w, err)
    os._exit(127)
os.close(w)
err = os.read(r, 32)
if err:
    os.waitpid(pid, 0)
    os.write(rep, b"E1 " + err + b"\n")
    os._exit(0)
os.write(rep, b"P%d\n" % pid)
while os.read(ctl, 4096):
    pass
os._exit(0)
"""


def _resolve(program, env):
    """The path start() execs for ``program``: made absolute (the daemon
    runs in ``cwd``), searched in the daemon's PATH when it has no '/'."""
    prog = os.fsencode(program)
    if b"/" in prog:
        return os.path.abspath(prog)
    denied = False
    for path in _execpath.candidates(prog, env):
        try:
            if os.path.isfile(path):
                if os.access(path, os.X_OK):
                    return os.path.abspath(path)
                denied = True
        except (OSError, ValueError):
            continue
    err = errno.EACCES if denied else errno.ENOENT
    raise OSError(err, os.strerror(err), program)


def _log_fd(target, name):
    """(fd to give the helper, fd to close after) for stdout/stderr."""
    if target is None or target == DEVNULL:
        return STDIO_DEVNULL, -1
    if target == STDOUT:
        if name != "stderr":
            raise ValueError("stdout=STDOUT is not allowed")
        return STDIO_STDOUT, -1
    if isinstance(target, bool):
        raise TypeError("%s must be a path, a file descriptor or a file "
                        "object, not bool" % name)
    if isinstance(target, int):
        if target < 0:
            raise ValueError("%s=%r is not supported" % (name, target))
        return target, -1
    if hasattr(target, "fileno"):
        return target.fileno(), -1
    try:
        path = os.fspath(target)
    except TypeError:
        raise TypeError("%s must be a path, a file descriptor or a file "
                        "object, not %s" % (name, type(target).__name__)
                        ) from None
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC,
                 0o666)
    return fd, fd


def _read_report(fd, deadline):
    """The helper's one-line report, or b"" if it died without one."""
    data = b""
    p = select.poll()
    p.register(fd, select.POLLIN)
    while not data.endswith(b"\n"):
        left = deadline - monotonic()
        if left <= 0 or not p.poll(left * 1000.0):
            raise subprocess.TimeoutExpired("daemon helper", None)
        chunk = os.read(fd, 64)
        if not chunk:
            break
        data += chunk
    return data


def _check_args(args):
    if isinstance(args, (str, bytes)) or not isinstance(args, (list, tuple)):
        raise TypeError("args must be a list or tuple of arguments, not %s"
                        % type(args).__name__)
    if not args:
        raise ValueError("args must not be empty")


def _start_locked(args, pidfile, stdout, stderr, cwd, umask, env, timeout):
    info = _read(pidfile)
    if info is not None and _matches(info):
        raise AlreadyRunning(pidfile, info.pid)
    # Missing or stale: replaced below, once the new daemon runs.

    argv = encode_argv(list(args))
    path = _resolve(args[0], env)
    envp = None if env is None else _encode_env(env)
    cwd_b = os.fsencode(cwd)
    if b"\0" in cwd_b:
        raise ValueError("embedded null byte")
    if not isinstance(umask, int) or isinstance(umask, bool):
        raise TypeError("umask must be an int")
    spec = marshal.dumps((path, argv, envp, cwd_b, umask))
    if not sys.executable:
        raise RuntimeError("daemon.start() needs sys.executable")

    to_close = []
    helper = None
    ctl_w = rep_r = -1
    try:
        out_kind, fd = _log_fd(stdout, "stdout")
        to_close.append(fd)
        err_kind, fd = _log_fd(stderr, "stderr")
        to_close.append(fd)
        ctl_r, ctl_w = os.pipe()
        to_close.append(ctl_r)
        rep_r, rep_w = os.pipe()
        to_close.append(rep_w)
        exe = os.fsencode(sys.executable)
        hargv = [exe, b"-I", b"-S", b"-c", _HELPER.encode(),
                 b"%d" % ctl_r, b"%d" % rep_w]
        res = launch(exe, hargv, None, stdin=STDIO_DEVNULL, stdout=out_kind,
                     stderr=err_kind, pass_fds=tuple(sorted((ctl_r, rep_w))),
                     flags=CLOSE_FDS | SETSID | RESTORE_SIGNALS | WANT_PIDFD)
        helper = res[0]
        if res[1] >= 0:
            os.close(res[1])
        for fd in to_close:
            if fd >= 0:
                os.close(fd)
        to_close = []

        try:
            view = memoryview(len(spec).to_bytes(8, "little") + spec)
            while view:
                view = view[os.write(ctl_w, view):]
        except BrokenPipeError:
            pass                # the helper died: no report below
        report = _read_report(rep_r, monotonic() + timeout)
        if report.startswith(b"P"):
            pid = int(report[1:])
            start = _start_time(pid)
            if start is None:
                # It died at once; the pidfile still names it (stale).
                start = "0"
            try:
                _write(pidfile, pid, start)
            except BaseException:
                # Not reaped (the helper waits): the pid is still its.
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                _remove(pidfile)    # may name it without its ident file
                raise
            return pid
        if report.startswith(b"E"):
            step, _, err = report[1:].partition(b" ")
            err = int(err)
            raise OSError(err, os.strerror(err),
                          cwd if step == b"2" else args[0])
        raise ChildProcessError("daemon helper exited without a report")
    except BaseException:
        if helper is not None:
            try:
                os.kill(helper, signal.SIGKILL)
            except ProcessLookupError:
                pass
        raise
    finally:
        for fd in to_close:
            if fd >= 0:
                os.close(fd)
        if ctl_w >= 0:
            os.close(ctl_w)     # lets the helper exit
        if rep_r >= 0:
            os.close(rep_r)
        if helper is not None:
            try:
                os.waitpid(helper, 0)
            except ChildProcessError:
                pass


def start(args: Sequence[Any], pidfile: Any, *, stdout: Any = None,
          stderr: Any = None, cwd: Any = "/", umask: int = 0o022,
          env: Optional[Mapping[Any, Any]] = None,
          timeout: float = 30.0) -> int:
    """Start ``args`` as a detached daemon and record it in ``pidfile``.

    Returns the daemon's pid. ``args[0]`` is searched in the daemon's PATH
    (``env``'s, else this process's) unless it holds a '/'; a relative path
    is taken from this process's cwd. ``stdout``/``stderr``: None or
    DEVNULL (/dev/null), a path (a log file, opened here -- a relative
    path is this process's cwd's -- for appending, created if needed), an
    fd or a file object; ``stderr=STDOUT`` shares stdout's. ``cwd`` (default ``/``), ``umask`` (default 0o022; -1
    inherits) and ``env`` (None: this process's environment) are the
    daemon's.

    Raises :class:`AlreadyRunning` when the pidfile names a live process
    (a stale pidfile is replaced), ``OSError`` (e.g. FileNotFoundError
    naming the program or the cwd) when the daemon cannot be started --
    then no pidfile is written -- and ``subprocess.TimeoutExpired`` if the
    start does not complete within ``timeout`` seconds.
    """
    _check_args(args)
    pidfile = _pidfile_path(pidfile)
    with _Lock(pidfile):
        return _start_locked(args, pidfile, stdout, stderr, cwd, umask, env,
                             timeout)


# ---- stopping ---------------------------------------------------------------

def _wait_gone(info, pidfd, deadline):
    """Wait until the process is gone (or a zombie): True, or False once
    time.monotonic() passes ``deadline``."""
    if pidfd >= 0:
        p = select.poll()
        p.register(pidfd, select.POLLIN)
        left = max(0.0, deadline - monotonic())
        return bool(p.poll(left * 1000.0))
    delay = 0.001
    while True:
        current = _start_time(info.pid)
        if current is None or (info.start is not None
                               and current != info.start):
            return True
        left = deadline - monotonic()
        if left <= 0:
            return False
        delay = min(delay * 2, 0.05, left)
        time.sleep(delay)


def _signal(info, pidfd, sig):
    try:
        if pidfd >= 0:
            _pidfd_send_signal(pidfd, sig)
        else:
            os.kill(info.pid, sig)
    except ProcessLookupError:
        pass


def _stop_locked(pidfile, timeout):
    info = _read(pidfile)
    if info is None:
        if os.path.lexists(pidfile):
            _remove(pidfile)        # garbage: stale
        return False
    pidfd = -1
    if _pidfd_open is not None and _pidfd_send_signal is not None:
        try:
            # Opened before the check: the process it pins is the one
            # checked, and the one signalled, even if the pid is reused.
            pidfd = _pidfd_open(info.pid)
        except ProcessLookupError:
            _remove(pidfile)
            return False
        except OSError:
            pidfd = -1
    try:
        if not _matches(info):
            _remove(pidfile)
            return False
        _signal(info, pidfd, signal.SIGTERM)
        if not _wait_gone(info, pidfd, monotonic() + timeout):
            _signal(info, pidfd, signal.SIGKILL)
            if not _wait_gone(info, pidfd, monotonic() + _KILL_WAIT):
                raise TimeoutError("pid %d survived SIGKILL for %gs"
                                   % (info.pid, _KILL_WAIT))
    finally:
        if pidfd >= 0:
            os.close(pidfd)
    _remove(pidfile)
    return True


def stop(pidfile: Any, timeout: float = 10.0) -> bool:
    """Stop the daemon named by ``pidfile``: SIGTERM, then SIGKILL if it is
    still alive after ``timeout`` seconds; the pidfile is removed.

    Returns True when a running daemon was stopped, False when there was
    none (no pidfile, or a stale one -- removed, its pid never signalled).
    """
    pidfile = _pidfile_path(pidfile)
    with _Lock(pidfile):
        return _stop_locked(pidfile, timeout)


def status(pidfile: Any) -> Optional[int]:
    """The pid of the daemon named by ``pidfile`` while it runs, else None
    (no pidfile, or a stale one: its process died, or its pid now belongs
    to another process)."""
    info = _read(_pidfile_path(pidfile))
    if info is not None and _matches(info):
        return info.pid
    return None


def restart(args: Sequence[Any], pidfile: Any, *, stdout: Any = None,
            stderr: Any = None, cwd: Any = "/", umask: int = 0o022,
            env: Optional[Mapping[Any, Any]] = None, timeout: float = 10.0,
            start_timeout: float = 30.0) -> int:
    """:func:`stop` the daemon of ``pidfile`` if it runs (SIGKILL after
    ``timeout`` seconds), then :func:`start` ``args`` with the other
    arguments (``start_timeout``: start()'s ``timeout``), holding the
    pidfile's lock throughout. Returns the new pid."""
    _check_args(args)
    pidfile = _pidfile_path(pidfile)
    with _Lock(pidfile):
        _stop_locked(pidfile, timeout)
        return _start_locked(args, pidfile, stdout, stderr, cwd, umask, env,
                             start_timeout)

"""Pure-Python twin of the C communicate loop and waits (csrc/fs_io.c,
fs_reap() of fs_spawn.c): same interface as ``_spawn_c.Communicator`` /
``_spawn_c.pidfd_wait``, built on selectors like subprocess, with larger
reads and writes; ``reap``, the blocking wait4() both backends' callers
use."""
import io
import os
import select
import selectors
import sys
import threading
from time import monotonic

try:
    from fcntl import fcntl as _fcntl
except ImportError:         # pragma: no cover - not POSIX
    _fcntl = None

from ._constants import (
    LOOP_EXITED, LOOP_EXPIRED, LOOP_IDLE, LOOP_NOTIFY, LOOP_WAKE,
)

__all__ = ["Communicator", "pidfd_wait", "reap", "BUSY_MESSAGE"]

#: Communicator.run()'s RuntimeError while another thread runs it (both
#: backends: _spawn_c takes it from here).
BUSY_MESSAGE = "communicate() is already running in another thread"

_busy_lock = threading.Lock()

_READ_CHUNK = 1 << 18
_WRITE_CHUNK = 1 << 20
_Selector = getattr(selectors, "PollSelector", selectors.SelectSelector)
# fs_io.c's pipe enlargement (see there): a read that returns a full
# default pipe's worth enlarges the pipe to Linux's pipe-max-size default.
_F_SETPIPE_SZ = None
if _fcntl is not None and sys.platform.startswith("linux"):
    import fcntl
    _F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)  # unnamed < 3.10
    try:
        from termios import FIONREAD as _FIONREAD
    except ImportError:     # pragma: no cover - no termios
        _F_SETPIPE_SZ = None
_DEFAULT_PIPE = 65536
_BIG_PIPE = 1 << 20


def _write_takes_strided():
    """Whether the interpreter's writes accept a non-contiguous buffer
    (PyPy's os.write() and file writes do; CPython's raise BufferError)."""
    try:
        io.BytesIO().write(memoryview(b"abcd")[::2])
    except BufferError:
        return False
    return True


_WRITE_TAKES_STRIDED = _write_takes_strided()


class Communicator:
    """See _contract (Communicator)."""

    def __init__(self, stdin_fd, stdout_fd, stderr_fd, input):
        self._fds = [stdin_fd, stdout_fd, stderr_fd]
        self._wanted = (stdout_fd >= 0, stderr_fd >= 0)
        self._chunks = ([], [])
        self._view = None
        self._off = 0
        self._result = None
        self._enlarged = [False, False, False]
        self._nonblocking = [False, False, False]
        self.finished = False
        if stdin_fd >= 0:
            view = memoryview(b"" if input is None else input)
            if not view.c_contiguous:
                if not _WRITE_TAKES_STRIDED:
                    # What subprocess's os.write() of such a view raises.
                    raise BufferError("memoryview: underlying buffer is not "
                                      "C-contiguous")
                # PyPy's os.write() writes such a view's bytes in order.
                view = memoryview(view.tobytes())
            self._view = view.cast("B")
            os.set_blocking(stdin_fd, False)

    def seed(self, k, data):
        """See _spawn_c.Communicator.seed."""
        if k not in (0, 1) or not self._wanted[k]:
            raise ValueError("seed: no such output stream")
        if self._chunks[k]:
            raise ValueError("seed: the stream has output already")
        if data:
            self._chunks[k].append(bytes(data))

    @property
    def input_offset(self):
        return self._off

    def _finish(self, i, on_close):
        fd = self._fds[i]
        self._fds[i] = -1
        if i == 0:
            self._view = None
        if type(on_close) is list:
            # The caller's fds (see _contract): close it, mark it closed.
            on_close[i] = -1
            os.close(fd)
        else:
            on_close(i)

    #: A run() is in progress.
    busy = False

    def run(self, deadline, on_close):
        # One run() at a time (communicate() from two threads): the second
        # raises, as the C twin must (its loop would share one state).
        # A lock so that the test-and-set is one step without a GIL too.
        with _busy_lock:
            if self.busy:
                raise RuntimeError(BUSY_MESSAGE)
            self.busy = True
        try:
            return self._run(deadline, on_close)
        finally:
            self.busy = False

    def _run(self, deadline, on_close):
        fds = self._fds
        if type(on_close) is list and len(on_close) != 3:
            raise ValueError("on_close: a list of three fds")
        if deadline is not None and deadline != deadline:
            raise ValueError("cannot convert float NaN to integer")
        while True:
            if fds[0] >= 0 and self._off >= len(self._view):
                self._finish(0, on_close)
                continue
            if fds[0] < 0 and fds[1] < 0 and fds[2] < 0:
                self.finished = True
                return True
            # Past the deadline: stop even if data is ready (fs_io.c).
            if deadline is not None and monotonic() > deadline:
                return False
            if (deadline is None and fds[0] < 0
                    and (fds[1] < 0) != (fds[2] < 0)
                    and self._read_rest(1 if fds[1] >= 0 else 2, on_close)):
                continue
            with _Selector() as sel:
                if fds[0] >= 0:
                    sel.register(fds[0], selectors.EVENT_WRITE, 0)
                for i in (1, 2):
                    if fds[i] >= 0:
                        sel.register(fds[i], selectors.EVENT_READ, i)
                timeout = None
                if deadline is not None:
                    timeout = max(0.0, deadline - monotonic())
                ready = sel.select(timeout)
            if not ready:
                if deadline is not None and monotonic() >= deadline:
                    return False
                continue
            for key, _ in ready:
                i = key.data
                if i == 0:
                    chunk = self._view[self._off:self._off + _WRITE_CHUNK]
                    try:
                        self._off += os.write(fds[0], chunk)
                    except BlockingIOError:
                        pass
                    except BrokenPipeError:
                        # The child closed stdin early: ignored, like
                        # subprocess.
                        self._finish(0, on_close)
                else:
                    self._read_some(i, on_close)

    def _read_rest(self, i, on_close):
        """Stream ``i`` is the only one left and there is no deadline: read
        it to EOF as subprocess reads a lone pipe, through FileIO.readall(),
        which grows one bytes object in place (a list of chunks joined at
        the end costs a second copy of the output and its page faults). A
        pipe found full first is enlarged, as fs_io.c enlarges it on a full
        read. An exception from a signal handler loses what readall() read
        (as it does in subprocess). False for a non-blocking fd (only a
        caller's fd can be: the on_close list's are our blocking pipes):
        the selector loop reads it."""
        fd = self._fds[i]
        ours = type(on_close) is list
        if not ours and (self._nonblocking[i] or not os.get_blocking(fd)):
            self._nonblocking[i] = True
            return False
        if ours and _F_SETPIPE_SZ is not None and not self._enlarged[i]:
            # Look at how much the child has written, without taking it
            # (first waiting for its first data, or EOF).
            if not self._chunks[i - 1]:
                p = select.poll()
                p.register(fd, select.POLLIN)
                p.poll()
            try:
                waiting = int.from_bytes(fcntl.ioctl(fd, _FIONREAD, bytes(4)),
                                         sys.byteorder)
            except OSError:
                waiting = 0
            if waiting >= _DEFAULT_PIPE:
                self._enlarge(i)
        data = io.FileIO(fd, "rb", closefd=False).readall()
        if data:
            self._chunks[i - 1].append(data)
        self._finish(i, on_close)
        return True

    def _read_some(self, i, on_close):
        data = os.read(self._fds[i], _READ_CHUNK)
        if data:
            self._chunks[i - 1].append(data)
            if (len(data) >= _DEFAULT_PIPE and type(on_close) is list
                    and _F_SETPIPE_SZ is not None and not self._enlarged[i]):
                self._enlarge(i)
        else:
            self._finish(i, on_close)

    def _enlarge(self, i):
        self._enlarged[i] = True
        try:
            _fcntl(self._fds[i], _F_SETPIPE_SZ, _BIG_PIPE)
        except OSError:
            pass    # only the speed-up is lost

    def output(self):
        if self._result is not None:
            return self._result
        if self.finished:
            out = tuple(b"".join(c) if w else None
                        for c, w in zip(self._chunks, self._wanted))
        else:
            # Before the end: None for a stream that gave nothing yet, not
            # even EOF (what subprocess's TimeoutExpired carries).
            out = tuple(b"".join(c) if w and (c or self._fds[i + 1] < 0)
                        else None
                        for i, (c, w) in enumerate(zip(self._chunks,
                                                       self._wanted)))
        if self.finished:
            self._result = out
            self._chunks = ([], [])
        return out


def reap(pid):
    """Block until ``pid`` is reaped: its (wait status, rusage), or (0,
    None) when SIGCHLD is ignored and the status is lost, as subprocess
    reports it (bpo-15756)."""
    try:
        return os.wait4(pid, 0)[1:]
    except ChildProcessError:
        return 0, None


def pidfd_wait(pidfd, deadline):
    """True once the child behind ``pidfd`` exited; False when
    time.monotonic() passes ``deadline`` (None: no deadline)."""
    p = select.poll()
    p.register(pidfd, select.POLLIN)
    if deadline is None or deadline != deadline:
        # NaN: no deadline, as subprocess's wait(timeout=nan) behaves.
        return bool(p.poll())
    # poll() retries EINTR itself with the remaining time (PEP 475).
    ms = max(0.0, deadline - monotonic()) * 1000.0
    return bool(p.poll(ms))


# ---- run_many()'s event loop: twin of _spawn_c.RunLoop (csrc/fs_loop.c) ----

__all__ += ["RunLoop", "LOOP_EXITED", "LOOP_EXPIRED", "LOOP_WAKE",
            "LOOP_IDLE", "LOOP_NOTIFY"]

_SLOT_FREE, _SLOT_BUSY, _SLOT_DONE = 0, 1, 2
# waitid() check interval (s) for children without a pidfd (fs_loop.c).
_NOPIDFD_MIN = 0.001
_NOPIDFD_MAX = 0.05


class _Slot:
    __slots__ = ("state", "pid", "pidfd", "exited", "fds", "chunks",
                 "wanted", "deadline")

    def __init__(self):
        self.state = _SLOT_FREE


class RunLoop:
    """See _contract (RunLoop): the same loop as _spawn_c's, on a
    selector."""

    def __init__(self, nslots, notify_fd=-1):
        if nslots < 1:
            raise ValueError("nslots must be at least 1")
        self._slots = [_Slot() for _ in range(nslots)]
        self._sel = _Selector()
        self._notify = notify_fd
        if notify_fd >= 0:
            self._sel.register(notify_fd, selectors.EVENT_READ, None)
        self._next = 0
        self._nopidfd = _NOPIDFD_MIN
        self._closed = False
        #: {pid: wait status} of the children reported LOOP_EXITED (reaped
        #: by the loop; the caller pops them).
        self.reaped = {}

    def _check(self, slot):
        if self._closed:
            raise ValueError("RunLoop is closed")
        if not 0 <= slot < len(self._slots):
            raise IndexError("slot out of range")
        return self._slots[slot]

    def add(self, slot, pid, pidfd, stdout_fd, stderr_fd, deadline):
        s = self._check(slot)
        if s.state != _SLOT_FREE:
            raise ValueError("slot %d is not free" % slot)
        s.state = _SLOT_BUSY
        s.pid = pid
        s.pidfd = pidfd
        s.exited = False
        s.fds = [stdout_fd, stderr_fd]
        s.chunks = ([], [])
        s.wanted = (stdout_fd >= 0, stderr_fd >= 0)
        s.deadline = deadline
        if pidfd >= 0:
            self._sel.register(pidfd, selectors.EVENT_READ, (slot, 0))
        else:
            self._nopidfd = _NOPIDFD_MIN
        for k in (0, 1):
            if s.fds[k] >= 0:
                self._sel.register(s.fds[k], selectors.EVENT_READ,
                                   (slot, k + 1))

    def _close_stream(self, s, k):
        fd = s.fds[k]
        if fd >= 0:
            s.fds[k] = -1
            self._sel.unregister(fd)
            os.close(fd)

    def drop(self, slot):
        s = self._check(slot)
        if s.state != _SLOT_FREE:
            self._close_stream(s, 0)
            self._close_stream(s, 1)

    def _pending(self):
        slots = self._slots
        n = len(slots)
        now = None
        for j in range(n):
            i = (self._next + j) % n
            s = slots[i]
            if s.state != _SLOT_BUSY:
                continue
            if s.exited and s.fds[0] < 0 and s.fds[1] < 0:
                if s.pid not in self.reaped:
                    # Exited: wait4() returns at once. (Without
                    # os.waitid() the exit check has reaped it already.)
                    self.reaped[s.pid] = reap(s.pid)[0]
                s.state = _SLOT_DONE
                self._next = (i + 1) % n
                return (LOOP_EXITED, i)
            if s.deadline is not None:
                if now is None:
                    now = monotonic()
                if now >= s.deadline:
                    s.deadline = None
                    self._next = (i + 1) % n
                    return (LOOP_EXPIRED, i)
        return None

    def run(self, wake):
        self._check(0)
        slots = self._slots
        while True:
            ev = self._pending()
            if ev is not None:
                return ev
            now = monotonic()
            if wake is not None and now >= wake:
                return (LOOP_WAKE, -1)
            busy = nopidfd = False
            first = wake
            for s in slots:
                if s.state != _SLOT_BUSY:
                    continue
                busy = True
                if not s.exited and s.pidfd < 0:
                    nopidfd = True
                if s.deadline is not None and (first is None
                                               or s.deadline < first):
                    first = s.deadline
            if not busy and self._notify < 0:
                return (LOOP_IDLE, -1)
            timeout = None if first is None else max(0.0, first - now)
            if nopidfd and (timeout is None or timeout > self._nopidfd):
                timeout = self._nopidfd
            # select() retries EINTR itself after running handlers (PEP 475).
            notified = False
            for key, _ in self._sel.select(timeout):
                if key.data is None:
                    notified = True
                    continue
                i, kind = key.data
                s = slots[i]
                if kind == 0:
                    s.exited = True
                    self._sel.unregister(s.pidfd)
                    continue
                k = kind - 1
                if s.fds[k] < 0:
                    continue
                data = os.read(s.fds[k], _READ_CHUNK)
                if data:
                    s.chunks[k].append(data)
                else:
                    self._close_stream(s, k)
            if nopidfd:
                found = False
                for s in slots:
                    if (s.state == _SLOT_BUSY and not s.exited
                            and s.pidfd < 0
                            and _exited_nopidfd(s.pid, self.reaped)):
                        s.exited = found = True
                if found:
                    self._nopidfd = _NOPIDFD_MIN
                else:
                    self._nopidfd = min(self._nopidfd * 2, _NOPIDFD_MAX)
            if notified:
                return (LOOP_NOTIFY, -1)

    def take(self, slot):
        s = self._check(slot)
        if s.state != _SLOT_DONE:
            raise ValueError("slot %d has not finished" % slot)
        out = tuple(b"".join(c) if w else None
                    for c, w in zip(s.chunks, s.wanted))
        self._close_stream(s, 0)
        self._close_stream(s, 1)
        s.chunks = None
        s.state = _SLOT_FREE
        return out

    def close(self):
        if self._closed:
            return
        for s in self._slots:
            if s.state == _SLOT_FREE:
                continue
            if s.state == _SLOT_BUSY and not s.exited and s.pidfd >= 0:
                self._sel.unregister(s.pidfd)
                s.exited = True
            self._close_stream(s, 0)
            self._close_stream(s, 1)
        if self._notify >= 0:
            self._sel.unregister(self._notify)
            self._notify = -1
        self._sel.close()
        self._closed = True


def _exited_nopidfd(pid, reaped):
    """Whether child ``pid`` has exited, without reaping it where
    os.waitid() exists; elsewhere it is reaped into ``reaped`` now."""
    try:
        if _waitid is not None:
            return _waitid(os.P_PID, pid,
                           os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        got, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    if got == pid:
        reaped[pid] = status
        return True
    return False


_waitid = getattr(os, "waitid", None)

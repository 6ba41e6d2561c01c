"""Pure-Python twin of the C communicate loop and pidfd wait (csrc/fs_io.c):
same interface as ``_spawn_c.Communicator`` / ``_spawn_c.pidfd_wait``, built
on selectors like subprocess, with larger reads and writes."""
import os
import select
import selectors
from time import monotonic

__all__ = ["Communicator", "pidfd_wait"]

_READ_CHUNK = 1 << 18
_WRITE_CHUNK = 1 << 20
_Selector = getattr(selectors, "PollSelector", selectors.SelectSelector)


class Communicator:
    """See _spawn_c.Communicator."""

    def __init__(self, stdin_fd, stdout_fd, stderr_fd, input):
        self._fds = [stdin_fd, stdout_fd, stderr_fd]
        self._wanted = (stdout_fd >= 0, stderr_fd >= 0)
        self._chunks = ([], [])
        self._view = None
        self._off = 0
        self._result = None
        self.finished = False
        if stdin_fd >= 0:
            self._view = memoryview(b"" if input is None else input).cast("B")
            os.set_blocking(stdin_fd, False)

    @property
    def input_offset(self):
        return self._off

    def _finish(self, i, on_close):
        self._fds[i] = -1
        if i == 0:
            self._view = None
        on_close(i)

    def run(self, deadline, on_close):
        fds = self._fds
        while True:
            if fds[0] >= 0 and self._off >= len(self._view):
                self._finish(0, on_close)
                continue
            if fds[0] < 0 and fds[1] < 0 and fds[2] < 0:
                self.finished = True
                return True
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
                    data = os.read(fds[i], _READ_CHUNK)
                    if data:
                        self._chunks[i - 1].append(data)
                    else:
                        self._finish(i, on_close)

    def output(self):
        if self._result is not None:
            return self._result
        out = tuple(b"".join(c) if w else None
                    for c, w in zip(self._chunks, self._wanted))
        if self.finished:
            self._result = out
            self._chunks = ([], [])
        return out


def pidfd_wait(pidfd, deadline):
    """True once the child behind ``pidfd`` exited; False when
    time.monotonic() passes ``deadline`` (None: no deadline)."""
    p = select.poll()
    p.register(pidfd, select.POLLIN)
    if deadline is None:
        return bool(p.poll())
    # poll() retries EINTR itself with the remaining time (PEP 475).
    ms = max(0.0, deadline - monotonic()) * 1000.0
    return bool(p.poll(ms))

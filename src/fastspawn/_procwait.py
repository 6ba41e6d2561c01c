"""Waiting for a child to exit, with a deadline, without reaping it.

One rule for every caller (Popen.wait(timeout), the direct run() path):
a pidfd when there is one (Linux >= 5.3: the backend polls it with the GIL
released), kqueue's EVFILT_PROC/NOTE_EXIT where the platform has kqueue
(macOS, BSDs), and only elsewhere subprocess's waitid(WNOWAIT) poll with a
growing sleep.
"""
import os
import select
import time
from time import monotonic

from . import _backend

__all__ = ["EVENT_DRIVEN", "wait_exit"]

_kqueue = getattr(select, "kqueue", None)

#: True when a wait without a pidfd is still event-driven (kqueue).
EVENT_DRIVEN = _kqueue is not None


def wait_exit(pid, pidfd, deadline):
    """True once ``pid`` has exited (or is gone); False when
    time.monotonic() passes ``deadline`` (None: wait as long as it takes).
    ``pidfd`` is the child's pidfd, or -1."""
    if pidfd >= 0:
        return _backend.impl.pidfd_wait(pidfd, deadline)
    if _kqueue is not None:
        return _kqueue_wait(pid, deadline)
    return _poll_wait(pid, deadline)


def _kqueue_wait(pid, deadline):
    kq = _kqueue()
    try:
        ev = select.kevent(pid, filter=select.KQ_FILTER_PROC,
                           flags=select.KQ_EV_ADD | select.KQ_EV_ONESHOT,
                           fflags=select.KQ_NOTE_EXIT)
        timeout = None if deadline is None else max(0.0, deadline - monotonic())
        try:
            # control() retries EINTR itself with the time left (PEP 475).
            return bool(kq.control([ev], 1, timeout))
        except ProcessLookupError:
            return True      # already gone: reaped, or exited and reaped
    finally:
        kq.close()


def _poll_wait(pid, deadline):
    delay = 0.0005
    while True:
        try:
            if os.waitid(os.P_PID, pid,
                         os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return True
        except ChildProcessError:
            return True
        if deadline is None:
            remaining = 0.05
        else:
            remaining = deadline - monotonic()
            if remaining <= 0:
                return False
        delay = min(delay * 2, remaining, 0.05)
        time.sleep(delay)

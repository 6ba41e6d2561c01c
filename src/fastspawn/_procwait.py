"""Waiting for a child to exit, with a deadline.

One rule for every caller (Popen.wait(timeout), the direct run() path):
a pidfd when there is one (Linux >= 5.3: the backend polls it with the GIL
released), kqueue's EVFILT_PROC/NOTE_EXIT where the platform has kqueue
(macOS, BSDs), and only where neither exists subprocess's way: waitpid
with WNOHANG and a growing sleep.

``wait_exit`` waits without reaping (Popen reaps under its own lock); it
needs one of the event sources (``EVENT_DRIVEN`` or a pidfd). ``wait_reap``
also reaps, so it can fall back to polling wait4() -- which needs no
waitid(WNOWAIT), missing on PyPy and macOS.
"""
import os
import select
import time
from time import monotonic

from . import _backend
# The blocking wait itself is the backend layer's (the pure backend reaps
# with it too); it is offered here beside the deadline waits.
from ._comm_py import reap

__all__ = ["EVENT_DRIVEN", "reap", "wait_exit", "wait_reap"]

_kqueue = getattr(select, "kqueue", None)
_wait4 = os.wait4

#: True when a wait without a pidfd is still event-driven (kqueue).
EVENT_DRIVEN = _kqueue is not None


def wait_exit(pid, pidfd, deadline):
    """True once ``pid`` has exited (or is gone); False when
    time.monotonic() passes ``deadline`` (None: as long as it takes).
    ``pidfd`` is the child's pidfd, or -1 where EVENT_DRIVEN."""
    if pidfd >= 0:
        return _backend.impl.pidfd_wait(pidfd, deadline)
    return _kqueue_wait(pid, deadline)


def wait_reap(pid, pidfd, deadline):
    """Reap ``pid`` once it exits: its (wait status, rusage), or None when
    ``deadline`` passes first. A child reaped elsewhere (SIGCHLD ignored)
    gives (0, None), as subprocess reports it (bpo-15756)."""
    try:
        if pidfd >= 0 or EVENT_DRIVEN:
            if not wait_exit(pid, pidfd, deadline):
                return None
            return reap(pid)
        delay = 0.0005
        while True:
            got, status, rusage = _wait4(pid, os.WNOHANG)
            if got == pid:
                return status, rusage
            remaining = 0.05 if deadline is None else deadline - monotonic()
            if remaining <= 0:
                return None
            delay = min(delay * 2, remaining, 0.05)
            time.sleep(delay)
    except ChildProcessError:
        return 0, None


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

"""The child watcher install() gives asyncio where asyncio's default starts a
thread per child (CPython 3.9-3.11; see _install.asyncio_watcher_wanted).

``PidfdChildWatcher`` is asyncio 3.12's: the running loop watches each
child's pidfd, no thread, any loop in any thread. ``patch()`` makes the
default policy create it where it would create a ThreadedChildWatcher;
``unpatch()`` undoes that. Importing this module imports asyncio.
"""
import logging
import os
import weakref
from asyncio import events, unix_events

__all__ = ["PidfdChildWatcher", "patch", "unpatch", "patched"]

_logger = logging.getLogger("asyncio")   # where asyncio's watchers log

# Where this module is used (asyncio < 3.12) the watchers' base class; 3.14
# removed the watchers, and this module then only has to import.
_Watcher = getattr(unix_events, "AbstractChildWatcher", object)


class PidfdChildWatcher(_Watcher):  # type: ignore[misc,valid-type]
    """Waits for each child through its pidfd, on the loop that started it.

    A child whose pidfd cannot be opened (no fd to spare, or already reaped)
    goes to a ThreadedChildWatcher: what asyncio does without fastspawn."""

    def __init__(self):
        self._threaded = None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc_value, exc_traceback):
        pass

    def is_active(self):
        return True

    def close(self):
        pass

    def attach_loop(self, loop):
        pass

    def add_child_handler(self, pid, callback, *args):
        loop = events.get_running_loop()
        try:
            pidfd = os.pidfd_open(pid)
        except OSError:
            self._fallback().add_child_handler(pid, callback, *args)
            return
        try:
            loop._add_reader(pidfd, self._do_wait, loop, pid, pidfd,
                             callback, args)
        except BaseException:
            os.close(pidfd)
            raise

    def _fallback(self):
        if self._threaded is None:
            self._threaded = unix_events.ThreadedChildWatcher()
        return self._threaded

    def _do_wait(self, loop, pid, pidfd, callback, args):
        loop._remove_reader(pidfd)
        try:
            # The pidfd is readable: the child has exited, so this never
            # blocks the loop (if it was reaped elsewhere and its pid reused
            # by a running process, that one is not waited for).
            got, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            got = 0
        finally:
            os.close(pidfd)
        if got == pid:
            returncode = os.waitstatus_to_exitcode(status)
        else:
            # asyncio's watchers' answer for a child reaped elsewhere.
            returncode = 255
            _logger.warning("child process pid %d exit status already "
                            "read:  will report returncode 255", pid)
        callback(pid, returncode, *args)

    def remove_child_handler(self, pid):
        # asyncio never calls it (its own watchers' comment); like asyncio
        # 3.12's PidfdChildWatcher it does nothing.
        return True


_POLICY = unix_events._UnixDefaultEventLoopPolicy
_original = None          # the policy's own _init_watcher while patched
_watcher = None           # the one PidfdChildWatcher, shared
_given = weakref.WeakSet()  # policies whose watcher is ours


def _init_watcher(self):
    """The default policy's lazy watcher creation: ours instead of a
    ThreadedChildWatcher. Only for the default policy itself: a subclass
    (a custom policy) gets asyncio's own choice."""
    if type(self) is not _POLICY or _original is None:
        return (_original or _POLICY.__dict__["_init_watcher"])(self)
    with events._lock:
        if self._watcher is None:
            self._watcher = _watcher
            _given.add(self)


def patched():
    return _original is not None


def patch():
    """From now on the default policy creates our watcher (a watcher
    already there, the program's or asyncio's, is kept)."""
    global _original, _watcher
    if _original is not None:
        return
    if _watcher is None:
        _watcher = PidfdChildWatcher()
    _original = _POLICY.__dict__["_init_watcher"]
    _POLICY._init_watcher = _init_watcher


def unpatch():
    """Back to asyncio's own: the policy's _init_watcher, and no watcher
    (asyncio creates its own when asked) in the policies that got ours.
    Children already handed to ours are still waited for by it."""
    global _original
    if _original is None:
        return
    _POLICY._init_watcher = _original
    _original = None
    with events._lock:
        for policy in list(_given):
            if policy._watcher is _watcher:
                policy._watcher = None
        _given.clear()

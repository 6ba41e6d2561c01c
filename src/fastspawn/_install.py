"""``install()``/``uninstall()``: swap fastspawn into the subprocess module.

After ``install()``, ``subprocess.Popen`` is fastspawn's and ``subprocess.run``
& co. are fastspawn's; code that imported the stdlib helpers earlier (``from
subprocess import run``) and asyncio's subprocess support look ``Popen`` up
in the subprocess module at call time, so they are served by fastspawn too.

asyncio also waits for its children without a thread each where its default
would start one (``asyncio_watcher_wanted()``): the default policy then
creates fastspawn's pidfd child watcher (_aiowatch) instead of a
ThreadedChildWatcher -- when asyncio is imported, or at once if it already
is; importing fastspawn or calling install() never imports asyncio.

``uninstall()`` puts back exactly what was there.
"""
import os
import subprocess
import sys
import threading

from . import _subprocess_api as _api

__all__ = ["install", "uninstall", "installed", "asyncio_watcher_wanted"]

_NAMES = ("Popen",) + _api._FUNCTIONS
_lock = threading.Lock()
_saved = None
_UNIX_EVENTS = "asyncio.unix_events"


def install() -> None:
    """Make the subprocess module use fastspawn. Idempotent."""
    global _saved
    with _lock:
        if _saved is not None:
            return
        _saved = {name: getattr(subprocess, name) for name in _NAMES}
        for name in _NAMES:
            setattr(subprocess, name, getattr(_api, name))
        now = asyncio_watcher_wanted() and _UNIX_EVENTS in sys.modules
        if asyncio_watcher_wanted() and not now:
            sys.meta_path.insert(0, _hook)
    if now:
        _patch_asyncio()


def uninstall() -> None:
    """Restore the subprocess module as it was before install()."""
    global _saved
    with _lock:
        if _saved is None:
            return
        for name, value in _saved.items():
            setattr(subprocess, name, value)
        _saved = None
        _remove_hook()
        aiowatch = sys.modules.get(__package__ + "._aiowatch")
        if aiowatch is not None:
            aiowatch.unpatch()


def installed() -> bool:
    """True while fastspawn is swapped into subprocess."""
    return _saved is not None


# ---- asyncio ----------------------------------------------------------------

_wanted = None


def asyncio_watcher_wanted() -> bool:
    """Whether install() gives asyncio fastspawn's pidfd child watcher: the
    one place that decides it, per Python version.

    * 3.9-3.11: asyncio's default is ThreadedChildWatcher, a thread per
      child: yes, where pidfds work (Linux >= 5.3, not refused by seccomp).
    * 3.12-3.13: the default is already PidfdChildWatcher where
      asyncio.unix_events.can_use_pidfd() says so (and the watchers are
      deprecated): no.
    * 3.14: no watchers any more; the loop uses its private
      _PidfdChildWatcher where it can: no.
    * No pidfds (older kernels, macOS): asyncio keeps its own.
    """
    global _wanted
    if _wanted is None:
        _wanted = sys.version_info < (3, 12) and _pidfds_work()
    return bool(_wanted)


def _pidfds_work():
    # asyncio 3.12's can_use_pidfd(), without importing asyncio.
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None or not sys.platform.startswith("linux"):
        return False
    try:
        os.close(pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


def _patch_asyncio():
    """Patch asyncio.unix_events (imported, or being imported by this
    thread) if still installed. The import runs outside _lock: it may wait
    for another thread's import of asyncio."""
    try:
        from . import _aiowatch
    except Exception:       # pragma: no cover - an asyncio unlike 3.9-3.11's
        return              # asyncio keeps its own watcher
    with _lock:
        if _saved is not None:
            _aiowatch.patch()


class _PatchAfterImport:
    """A sys.meta_path entry, there from install() until asyncio.unix_events
    is imported: it finds the module as the rest of sys.meta_path would and
    patches it once it has run (then the module's loader is the real one
    again, and this entry is gone)."""

    def find_spec(self, name, path=None, target=None):
        if name != _UNIX_EVENTS:
            return None
        for finder in list(sys.meta_path):
            find = getattr(finder, "find_spec", None)
            if finder is self or find is None:
                continue
            spec = find(name, path, target)
            if spec is not None:
                break
        else:
            return None
        if getattr(spec.loader, "exec_module", None) is None:
            return spec
        spec.loader = _PatchingLoader(spec.loader)
        return spec


class _PatchingLoader:
    def __init__(self, loader):
        self._loader = loader

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        try:
            self._loader.exec_module(module)
        finally:
            module.__loader__ = self._loader
            if getattr(module, "__spec__", None) is not None:
                module.__spec__.loader = self._loader
        _remove_hook()
        _patch_asyncio()


_hook = _PatchAfterImport()


def _remove_hook():
    try:
        sys.meta_path.remove(_hook)
    except ValueError:
        pass

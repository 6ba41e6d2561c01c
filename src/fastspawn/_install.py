"""``install()``/``uninstall()``: swap fastspawn into the subprocess module.

After ``install()``, ``subprocess.Popen`` is fastspawn's and ``subprocess.run``
& co. are fastspawn's; code that imported the stdlib helpers earlier (``from
subprocess import run``) and asyncio's subprocess support look ``Popen`` up
in the subprocess module at call time, so they are served by fastspawn too.
``uninstall()`` puts back exactly what was there.
"""
import subprocess
import threading

from . import _subprocess_api as _api

__all__ = ["install", "uninstall", "installed"]

_NAMES = ("Popen",) + _api._FUNCTIONS
_lock = threading.Lock()
_saved = None


def install() -> None:
    """Make the subprocess module use fastspawn. Idempotent."""
    global _saved
    with _lock:
        if _saved is not None:
            return
        _saved = {name: getattr(subprocess, name) for name in _NAMES}
        for name in _NAMES:
            setattr(subprocess, name, getattr(_api, name))


def uninstall() -> None:
    """Restore the subprocess module as it was before install()."""
    global _saved
    with _lock:
        if _saved is None:
            return
        for name, value in _saved.items():
            setattr(subprocess, name, value)
        _saved = None


def installed() -> bool:
    """True while fastspawn is swapped into subprocess."""
    return _saved is not None

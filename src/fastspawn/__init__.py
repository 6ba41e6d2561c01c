"""fastspawn: faster, safer process spawning for POSIX.

A drop-in for ``subprocess`` (``Popen``, ``run``, ``check_output``, ...; or
``install()`` to swap it into subprocess itself), the os-style spawn family
(``spawnv``, ``spawnvpe``, ...), ``system`` and ``popen``, on a C core that
uses posix_spawn where it can and vfork where it must (pure-Python fallback:
``FASTSPAWN_NO_EXTENSIONS=1``).
"""
import os as _os

if _os.name != "posix":
    raise ImportError(
        "fastspawn supports POSIX systems only (Linux, macOS); "
        f"this is os.name={_os.name!r}. Use the subprocess module here.")

from . import _backend
from ._osfuncs import (
    P_NOWAIT, P_NOWAITO, P_WAIT, popen, spawnl, spawnle, spawnlp, spawnlpe,
    spawnv, spawnve, spawnvp, spawnvpe, system,
)
from ._subprocess_api import (
    DEVNULL, PIPE, STDOUT, CalledProcessError, CompletedProcess, Popen,
    SubprocessError, TimeoutExpired, call, check_call, check_output,
    getoutput, getstatusoutput, list2cmdline, run,
)
from ._install import install, uninstall
from ._pipeline import PipelineResult, pipeline
from ._runmany import ManyResult, run_many, run_many_iter
from . import daemon

__version__ = "0.1.0"

#: True when the compiled backend is the live one.
USE_EXTENSIONS: bool = _backend.USE_EXTENSIONS


def _read_build_warning() -> "str | None":
    path = _os.path.join(_os.path.dirname(__file__), "_build_warning.txt")
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError:
        return None


#: The installer's warning when the C extension failed to build, else None.
BUILD_WARNING: "str | None" = _read_build_warning()

__all__ = [
    "USE_EXTENSIONS", "BUILD_WARNING", "__version__",
    "Popen", "run", "call", "check_call", "check_output", "getoutput",
    "getstatusoutput", "list2cmdline", "CompletedProcess",
    "CalledProcessError", "TimeoutExpired", "SubprocessError",
    "PIPE", "STDOUT", "DEVNULL", "install", "uninstall",
    "P_WAIT", "P_NOWAIT", "P_NOWAITO",
    "spawnl", "spawnle", "spawnlp", "spawnlpe",
    "spawnv", "spawnve", "spawnvp", "spawnvpe",
    "system", "popen",
    "pipeline", "PipelineResult", "run_many", "run_many_iter", "ManyResult",
    "daemon",
]

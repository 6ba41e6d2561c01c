"""Pick the backend once, at import: the compiled ``_spawn_c`` unless it is
missing or ``FASTSPAWN_NO_EXTENSIONS`` is set, else the pure ``_spawn_py``.

``impl`` is read at call time by the launch layer, so the test-suite can
run every test against both backends in one process.
"""
import os
from types import ModuleType

__all__ = ["USE_EXTENSIONS", "impl", "c_impl", "py_impl", "NO_EXTENSIONS_ENV"]

NO_EXTENSIONS_ENV = "FASTSPAWN_NO_EXTENSIONS"

from . import _spawn_py as py_impl

c_impl: "ModuleType | None"
if os.environ.get(NO_EXTENSIONS_ENV, "") not in ("", "0"):
    c_impl = None
else:
    try:
        from . import _spawn_c as c_impl
    except ImportError:  # not built (no compiler, or built without it)
        c_impl = None

USE_EXTENSIONS: bool = c_impl is not None
impl: ModuleType = c_impl if c_impl is not None else py_impl

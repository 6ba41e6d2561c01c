"""Types of fastspawn's os-style API (re-exported by ``fastspawn``): typed
like ``os.spawn*``, ``os.system`` and ``os.popen``.

Checked against the runtime module by tests/test_typing.py (stubtest).
"""
import os
from collections.abc import Mapping
from typing import Any

from _typeshed import StrOrBytesPath
from typing_extensions import TypeAlias

__all__ = [
    "P_WAIT", "P_NOWAIT", "P_NOWAITO",
    "spawnl", "spawnle", "spawnlp", "spawnlpe",
    "spawnv", "spawnve", "spawnvp", "spawnvpe",
    "system", "popen",
]

P_WAIT: int
P_NOWAIT: int
P_NOWAITO: int

# argv must be a tuple or a list (as for os.spawnv); list is invariant,
# hence the spelled-out element types.
_ArgV: TypeAlias = (
    tuple[StrOrBytesPath, ...]
    | list[str]
    | list[bytes]
    | list[os.PathLike[Any]]
    | list[str | bytes]
    | list[str | os.PathLike[Any]]
    | list[bytes | os.PathLike[Any]]
    | list[str | bytes | os.PathLike[Any]]
)
_SpawnEnv: TypeAlias = Mapping[str, StrOrBytesPath] | Mapping[bytes, StrOrBytesPath]

def spawnv(mode: int, path: StrOrBytesPath, args: _ArgV) -> int: ...
def spawnve(mode: int, path: StrOrBytesPath, args: _ArgV, env: _SpawnEnv) -> int: ...
def spawnvp(mode: int, file: StrOrBytesPath, args: _ArgV) -> int: ...
def spawnvpe(mode: int, file: StrOrBytesPath, args: _ArgV, env: _SpawnEnv) -> int: ...
def spawnl(mode: int, path: StrOrBytesPath, *args: StrOrBytesPath) -> int: ...
def spawnlp(mode: int, file: StrOrBytesPath, *args: StrOrBytesPath) -> int: ...

# The environment comes last among *args (as for os.spawnle).
def spawnle(mode: int, path: StrOrBytesPath, *args: Any) -> int: ...
def spawnlpe(mode: int, file: StrOrBytesPath, *args: Any) -> int: ...
def system(command: StrOrBytesPath) -> int: ...
def popen(cmd: str, mode: str = "r", buffering: int = -1) -> os._wrap_close: ...

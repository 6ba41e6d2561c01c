"""Types of fastspawn's subprocess API (re-exported by ``fastspawn``).

Typed like the standard library's ``subprocess`` (typeshed):
``call``/``check_call``/``check_output``/``getoutput``/``getstatusoutput``,
the exceptions and the constants are subprocess's own typed objects.
``Popen`` and ``CompletedProcess`` are subclasses of subprocess's generic
classes that add ``rusage`` and ``duration``; ``Popen[bytes]`` or
``Popen[str]`` is inferred from text/encoding/errors/universal_newlines as
for subprocess.Popen, and ``run`` has subprocess's overloads returning
``fastspawn.CompletedProcess[bytes]`` / ``[str]``.

Checked against the runtime module by tests/test_typing.py (stubtest).
"""
import subprocess
import sys
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from resource import struct_rusage
from subprocess import (
    DEVNULL as DEVNULL,
    PIPE as PIPE,
    STDOUT as STDOUT,
    CalledProcessError as CalledProcessError,
    SubprocessError as SubprocessError,
    TimeoutExpired as TimeoutExpired,
    call as call,
    check_call as check_call,
    check_output as check_output,
    getoutput as getoutput,
    getstatusoutput as getstatusoutput,
    list2cmdline as list2cmdline,
)
from typing import IO, Any, AnyStr, Literal, TypeVar, overload

from _typeshed import ReadableBuffer, StrOrBytesPath
from typing_extensions import TypeAlias, TypedDict, Unpack

__all__ = [
    "Popen", "run", "call", "check_call", "check_output", "getoutput",
    "getstatusoutput", "list2cmdline", "CompletedProcess",
    "CalledProcessError", "TimeoutExpired", "SubprocessError",
    "PIPE", "STDOUT", "DEVNULL",
]

# The names install() swaps into the subprocess module (with "Popen").
_FUNCTIONS: tuple[str, ...]

_T = TypeVar("_T")
_CMD: TypeAlias = StrOrBytesPath | Sequence[StrOrBytesPath]
_FILE: TypeAlias = None | int | IO[Any]
_ENV: TypeAlias = Mapping[bytes, StrOrBytesPath] | Mapping[str, StrOrBytesPath]

# Popen's keyword arguments that follow ``env`` and do not decide between
# bytes and str, for the running Python. (Unlike typeshed's subprocess stub,
# these are keyword-only here; nobody passes them positionally.)
class _PopenKwargsBase(TypedDict, total=False):
    startupinfo: Any
    creationflags: int
    restore_signals: bool
    start_new_session: bool
    pass_fds: Collection[int]
    user: str | int | None
    group: str | int | None
    extra_groups: Iterable[str | int] | None
    umask: int

if sys.version_info >= (3, 11):
    class _PopenKwargs(_PopenKwargsBase, total=False):
        pipesize: int
        process_group: int | None

elif sys.version_info >= (3, 10):
    class _PopenKwargs(_PopenKwargsBase, total=False):
        pipesize: int

else:
    class _PopenKwargs(_PopenKwargsBase, total=False): ...

class Popen(subprocess.Popen[AnyStr]):
    """subprocess.Popen on the fastspawn core (a subclass: isinstance
    checks against subprocess.Popen hold). ``Popen[str]`` or
    ``Popen[bytes]`` is inferred from text/encoding/errors/
    universal_newlines, as for subprocess.Popen."""

    #: The child's resource usage (from wait4) once it is reaped, else None.
    rusage: struct_rusage | None
    #: Seconds from spawn to reap (monotonic clock) once reaped, else None.
    duration: float | None
    @overload  # text=True
    def __init__(
        self: Popen[str],
        args: _CMD,
        bufsize: int = -1,
        executable: StrOrBytesPath | None = None,
        stdin: _FILE = None,
        stdout: _FILE = None,
        stderr: _FILE = None,
        preexec_fn: Callable[[], object] | None = None,
        close_fds: bool = True,
        shell: bool = False,
        cwd: StrOrBytesPath | None = None,
        env: _ENV | None = None,
        *,
        text: Literal[True],
        universal_newlines: bool | None = None,
        encoding: str | None = None,
        errors: str | None = None,
        **kwargs: Unpack[_PopenKwargs],
    ) -> None: ...
    @overload  # encoding=str
    def __init__(
        self: Popen[str],
        args: _CMD,
        bufsize: int = -1,
        executable: StrOrBytesPath | None = None,
        stdin: _FILE = None,
        stdout: _FILE = None,
        stderr: _FILE = None,
        preexec_fn: Callable[[], object] | None = None,
        close_fds: bool = True,
        shell: bool = False,
        cwd: StrOrBytesPath | None = None,
        env: _ENV | None = None,
        *,
        text: bool | None = None,
        universal_newlines: bool | None = None,
        encoding: str,
        errors: str | None = None,
        **kwargs: Unpack[_PopenKwargs],
    ) -> None: ...
    @overload  # errors=str
    def __init__(
        self: Popen[str],
        args: _CMD,
        bufsize: int = -1,
        executable: StrOrBytesPath | None = None,
        stdin: _FILE = None,
        stdout: _FILE = None,
        stderr: _FILE = None,
        preexec_fn: Callable[[], object] | None = None,
        close_fds: bool = True,
        shell: bool = False,
        cwd: StrOrBytesPath | None = None,
        env: _ENV | None = None,
        *,
        text: bool | None = None,
        universal_newlines: bool | None = None,
        encoding: str | None = None,
        errors: str,
        **kwargs: Unpack[_PopenKwargs],
    ) -> None: ...
    @overload  # universal_newlines=True
    def __init__(
        self: Popen[str],
        args: _CMD,
        bufsize: int = -1,
        executable: StrOrBytesPath | None = None,
        stdin: _FILE = None,
        stdout: _FILE = None,
        stderr: _FILE = None,
        preexec_fn: Callable[[], object] | None = None,
        close_fds: bool = True,
        shell: bool = False,
        cwd: StrOrBytesPath | None = None,
        env: _ENV | None = None,
        *,
        text: bool | None = None,
        universal_newlines: Literal[True],
        encoding: str | None = None,
        errors: str | None = None,
        **kwargs: Unpack[_PopenKwargs],
    ) -> None: ...
    @overload  # bytes: none of the above
    def __init__(
        self: Popen[bytes],
        args: _CMD,
        bufsize: int = -1,
        executable: StrOrBytesPath | None = None,
        stdin: _FILE = None,
        stdout: _FILE = None,
        stderr: _FILE = None,
        preexec_fn: Callable[[], object] | None = None,
        close_fds: bool = True,
        shell: bool = False,
        cwd: StrOrBytesPath | None = None,
        env: _ENV | None = None,
        *,
        text: Literal[False] | None = None,
        universal_newlines: Literal[False] | None = None,
        encoding: None = None,
        errors: None = None,
        **kwargs: Unpack[_PopenKwargs],
    ) -> None: ...
    @overload  # not known statically
    def __init__(
        self: Popen[Any],
        args: _CMD,
        bufsize: int = -1,
        executable: StrOrBytesPath | None = None,
        stdin: _FILE = None,
        stdout: _FILE = None,
        stderr: _FILE = None,
        preexec_fn: Callable[[], object] | None = None,
        close_fds: bool = True,
        shell: bool = False,
        cwd: StrOrBytesPath | None = None,
        env: _ENV | None = None,
        *,
        text: bool | None = None,
        universal_newlines: bool | None = None,
        encoding: str | None = None,
        errors: str | None = None,
        **kwargs: Unpack[_PopenKwargs],
    ) -> None: ...

class CompletedProcess(subprocess.CompletedProcess[_T]):
    """subprocess.CompletedProcess plus the child's ``rusage`` and
    ``duration`` (None when not measured)."""

    rusage: struct_rusage | None
    duration: float | None
    def __init__(
        self,
        args: _CMD,
        returncode: int,
        stdout: _T | None = None,
        stderr: _T | None = None,
        *,
        rusage: struct_rusage | None = None,
        duration: float | None = None,
    ) -> None: ...

@overload  # text=True
def run(
    args: _CMD,
    bufsize: int = -1,
    executable: StrOrBytesPath | None = None,
    stdin: _FILE = None,
    stdout: _FILE = None,
    stderr: _FILE = None,
    preexec_fn: Callable[[], object] | None = None,
    close_fds: bool = True,
    shell: bool = False,
    cwd: StrOrBytesPath | None = None,
    env: _ENV | None = None,
    *,
    capture_output: bool = False,
    check: bool = False,
    timeout: float | None = None,
    input: str | None = None,
    text: Literal[True],
    universal_newlines: bool | None = None,
    encoding: str | None = None,
    errors: str | None = None,
    **kwargs: Unpack[_PopenKwargs],
) -> CompletedProcess[str]: ...
@overload  # encoding=str
def run(
    args: _CMD,
    bufsize: int = -1,
    executable: StrOrBytesPath | None = None,
    stdin: _FILE = None,
    stdout: _FILE = None,
    stderr: _FILE = None,
    preexec_fn: Callable[[], object] | None = None,
    close_fds: bool = True,
    shell: bool = False,
    cwd: StrOrBytesPath | None = None,
    env: _ENV | None = None,
    *,
    capture_output: bool = False,
    check: bool = False,
    timeout: float | None = None,
    input: str | None = None,
    text: bool | None = None,
    universal_newlines: bool | None = None,
    encoding: str,
    errors: str | None = None,
    **kwargs: Unpack[_PopenKwargs],
) -> CompletedProcess[str]: ...
@overload  # errors=str
def run(
    args: _CMD,
    bufsize: int = -1,
    executable: StrOrBytesPath | None = None,
    stdin: _FILE = None,
    stdout: _FILE = None,
    stderr: _FILE = None,
    preexec_fn: Callable[[], object] | None = None,
    close_fds: bool = True,
    shell: bool = False,
    cwd: StrOrBytesPath | None = None,
    env: _ENV | None = None,
    *,
    capture_output: bool = False,
    check: bool = False,
    timeout: float | None = None,
    input: str | None = None,
    text: bool | None = None,
    universal_newlines: bool | None = None,
    encoding: str | None = None,
    errors: str,
    **kwargs: Unpack[_PopenKwargs],
) -> CompletedProcess[str]: ...
@overload  # universal_newlines=True
def run(
    args: _CMD,
    bufsize: int = -1,
    executable: StrOrBytesPath | None = None,
    stdin: _FILE = None,
    stdout: _FILE = None,
    stderr: _FILE = None,
    preexec_fn: Callable[[], object] | None = None,
    close_fds: bool = True,
    shell: bool = False,
    cwd: StrOrBytesPath | None = None,
    env: _ENV | None = None,
    *,
    capture_output: bool = False,
    check: bool = False,
    timeout: float | None = None,
    input: str | None = None,
    text: bool | None = None,
    universal_newlines: Literal[True],
    encoding: str | None = None,
    errors: str | None = None,
    **kwargs: Unpack[_PopenKwargs],
) -> CompletedProcess[str]: ...
@overload  # bytes: none of the above
def run(
    args: _CMD,
    bufsize: int = -1,
    executable: StrOrBytesPath | None = None,
    stdin: _FILE = None,
    stdout: _FILE = None,
    stderr: _FILE = None,
    preexec_fn: Callable[[], object] | None = None,
    close_fds: bool = True,
    shell: bool = False,
    cwd: StrOrBytesPath | None = None,
    env: _ENV | None = None,
    *,
    capture_output: bool = False,
    check: bool = False,
    timeout: float | None = None,
    input: ReadableBuffer | None = None,
    text: Literal[False] | None = None,
    universal_newlines: Literal[False] | None = None,
    encoding: None = None,
    errors: None = None,
    **kwargs: Unpack[_PopenKwargs],
) -> CompletedProcess[bytes]: ...
@overload  # not known statically
def run(
    args: _CMD,
    bufsize: int = -1,
    executable: StrOrBytesPath | None = None,
    stdin: _FILE = None,
    stdout: _FILE = None,
    stderr: _FILE = None,
    preexec_fn: Callable[[], object] | None = None,
    close_fds: bool = True,
    shell: bool = False,
    cwd: StrOrBytesPath | None = None,
    env: _ENV | None = None,
    *,
    capture_output: bool = False,
    check: bool = False,
    timeout: float | None = None,
    input: ReadableBuffer | str | None = None,
    text: bool | None = None,
    universal_newlines: bool | None = None,
    encoding: str | None = None,
    errors: str | None = None,
    **kwargs: Unpack[_PopenKwargs],
) -> CompletedProcess[Any]: ...

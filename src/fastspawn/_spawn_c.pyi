"""Types of a fastspawn backend's interface: the compiled ``_spawn_c`` and
the pure ``_spawn_py`` expose exactly these names with the same behaviour,
described (and checked, tests/test_contract.py) in fastspawn._contract."""
import resource
from typing import (
    Callable, Dict, List, Optional, Sequence, Tuple, Union, final,
)

from _typeshed import ReadableBuffer

__all__ = [
    "FEATURES", "spawn", "spawn_wait", "spawn_capture", "spawn_method",
    "RawRusage", "wait4", "LONE_PIPE_LOOP",
    "Communicator", "pidfd_wait", "RunLoop", "LOOP_EXITED", "LOOP_EXPIRED", "LOOP_WAKE", "LOOP_IDLE",
    "LOOP_NOTIFY",
]

SpawnResult = Tuple[int, int, int, int, int, int, int, int]

FEATURES: int
#: Whether Popen.communicate() reads a lone pipe through Communicator
#: (where that beats the file object's own read()).
LONE_PIPE_LOOP: bool

def spawn(
    path: bytes,
    argv: Sequence[bytes],
    envp: Optional[Sequence[bytes]],
    stdin: int,
    stdout: int,
    stderr: int,
    pass_fds: Tuple[int, ...],
    cwd: Optional[bytes],
    flags: int,
    pgroup: int,
    umask: int,
    uid: int,
    gid: int,
    groups: Optional[Tuple[int, ...]],
) -> SpawnResult:
    """Start ``path`` (never searched) once: _contract.SpawnResult."""

@final
class RawRusage:
    """A wait4() rusage as the kernel gave it; value() converts it."""
    def value(self) -> resource.struct_rusage: ...

def wait4(pid: int, options: int) -> Tuple[int, int, Optional[RawRusage]]:
    """os.wait4() with the rusage kept raw: ``(pid, status, rusage)``;
    ``(0, 0, None)`` for a WNOHANG wait that found nothing. EINTR is
    retried after the signal handlers ran; errors raise as os.wait4's."""

def spawn_wait(
    path: bytes,
    argv: Sequence[bytes],
    envp: Optional[Sequence[bytes]],
    stdin: int,
    stdout: int,
    stderr: int,
    pass_fds: Tuple[int, ...],
    cwd: Optional[bytes],
    flags: int,
    pgroup: int,
    umask: int,
    uid: int,
    gid: int,
    groups: Optional[Tuple[int, ...]],
) -> Tuple[int, Optional[int], Optional[RawRusage], int, int,
           Optional[BaseException]]:
    """:func:`spawn` for a request without pipes, and the wait for the
    child: _contract.WaitResult."""

def spawn_capture(
    path: bytes,
    argv: Sequence[bytes],
    envp: Optional[Sequence[bytes]],
    stdin: int,
    stdout: int,
    stderr: int,
    pass_fds: Tuple[int, ...],
    cwd: Optional[bytes],
    flags: int,
    pgroup: int,
    umask: int,
    uid: int,
    gid: int,
    groups: Optional[Tuple[int, ...]],
    input: Optional[ReadableBuffer],
) -> Tuple[int, Optional[int], Optional[RawRusage],
           Optional[bytes], Optional[bytes], int, int,
           Optional[BaseException], Optional[List[int]]]:
    """:func:`spawn`, then what ``Communicator(...).run(None, fds)`` and a
    wait do, in one call: _contract.CaptureResult."""

def spawn_method(
    path: bytes,
    argv: Sequence[bytes],
    envp: Optional[Sequence[bytes]],
    stdin: int,
    stdout: int,
    stderr: int,
    pass_fds: Tuple[int, ...],
    cwd: Optional[bytes],
    flags: int,
    pgroup: int,
    umask: int,
    uid: int,
    gid: int,
    groups: Optional[Tuple[int, ...]],
) -> int:
    """The VIA_* mechanism :func:`spawn` would use for this request."""

class Communicator:
    """communicate() for one child: writes ``input`` to ``stdin_fd`` and
    reads ``stdout_fd``/``stderr_fd`` (-1: none) into bytes objects that
    become the results without a final copy."""

    #: True once every stream is finished (run() returned True).
    @property
    def finished(self) -> bool: ...
    #: True while a run() is in progress; another run() meanwhile (from
    #: another thread) raises RuntimeError.
    @property
    def busy(self) -> bool: ...
    def __init__(
        self,
        stdin_fd: int,
        stdout_fd: int,
        stderr_fd: int,
        input: Optional[ReadableBuffer],
    ) -> None: ...
    def run(
        self,
        deadline: Optional[float],
        on_close: Union[Callable[[int], object], List[int]],
    ) -> bool:
        """Loop (GIL released) until all streams are finished (True) or
        time.monotonic() passes ``deadline`` (False; call again to resume).
        ``on_close(i)`` is called as stream i (0 stdin, 1 stdout, 2 stderr)
        finishes; or ``on_close`` is the caller's list of the three fds:
        a finished stream's fd is closed by the loop and its slot set to
        -1 (no call back into Python per stream), and -- these being raw
        pipes the caller made, with no size asked for -- an output pipe
        that delivers a full default pipe (64 KiB) in one read is enlarged
        to 1 MiB (F_SETPIPE_SZ, Linux; failure ignored)."""
    def seed(self, k: int, data: bytes) -> None:
        """Begin output ``k`` (0 stdout, 1 stderr) with ``data``, bytes the
        caller already read from that stream (a file object's buffer);
        ValueError if that stream is not read or has output already."""
    @property
    def input_offset(self) -> int:
        """How many bytes of ``input`` were written so far."""
    def output(self) -> Tuple[Optional[bytes], Optional[bytes]]:
        """(stdout, stderr) so far: bytes, or None for a stream not read."""

def pidfd_wait(pidfd: int, deadline: Optional[float]) -> bool:
    """Wait (GIL released) until the child behind ``pidfd`` exits: True, or
    False once time.monotonic() passes ``deadline`` (None: no deadline)."""

# ---- run_many()'s event loop (csrc/fs_loop.c) ---------------------------------

#: RunLoop.run() events.
LOOP_EXITED: int
LOOP_EXPIRED: int
LOOP_WAKE: int
LOOP_IDLE: int
LOOP_NOTIFY: int

class RunLoop:
    """One poll loop over up to ``nslots`` running children (run_many())."""

    #: {pid: wait status} of the children run() reported LOOP_EXITED
    #: (reaped by the loop; the caller pops them).
    @property
    def reaped(self) -> Dict[int, int]: ...
    def __init__(self, nslots: int, notify_fd: int = ...) -> None: ...
    def add(
        self,
        slot: int,
        pid: int,
        pidfd: int,
        stdout_fd: int,
        stderr_fd: int,
        deadline: Optional[float],
    ) -> None:
        """Put a child in the free ``slot``; the loop owns its pipes."""
    def drop(self, slot: int) -> None:
        """Close the slot's pipes now; what was read is kept."""
    def run(self, wake: Optional[float]) -> Tuple[int, int]:
        """(LOOP_EXITED | LOOP_EXPIRED, slot) or (LOOP_WAKE | LOOP_IDLE |
        LOOP_NOTIFY, -1)."""
    def take(self, slot: int) -> Tuple[Optional[bytes], Optional[bytes]]:
        """(stdout, stderr) of a finished slot; the slot is free again."""
    def close(self) -> None:
        """Close every pipe still open; the loop cannot be used after."""

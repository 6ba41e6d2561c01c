"""Interface of a fastspawn backend: the compiled ``_spawn_c`` and the pure
``_spawn_py`` expose exactly these names with the same behaviour."""
from typing import Optional, Sequence, Tuple

SpawnResult = Tuple[int, int, int, int, int, int, int, int]

FEATURES: int

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
    """Start ``path`` (never searched) once.

    Returns ``(pid, pidfd, stdin_w, stdout_r, stderr_r, method, err_step,
    err_errno)``. ``err_step != STEP_OK`` means the child failed at that
    step with ``err_errno`` (it is reaped; pid and every fd are -1).
    Failures of the parent itself (pipe2, vfork) raise ``OSError`` and
    leave nothing open.
    """

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

"""The spawn request and the spawn results, as named objects: what the
launch layer hands a backend and what it gets back, mirroring the C core's
``fs_request`` / ``fs_result`` (csrc/fs_spawn.h).

A request is built once by the caller (``SpawnRequest(...)``) and passed
down whole; results are read by field name, never by position. Both
backends (``_spawn_c``, ``_spawn_py``) and ``_forkexec`` take and return
these very classes, so what one backend returns is what the other does.
_contract.py describes the functions that take them; tests/test_contract.py
checks both backends against that.
"""
from typing import List, NamedTuple, Optional, Sequence, Tuple, Union

__all__ = ["SpawnRequest", "SpawnResult", "WaitResult", "CaptureResult",
           "FIELDS"]


class SpawnRequest(NamedTuple):
    """What to start, and how (fs_request).

    ``path``: bytes, or the candidates of a PATH search (a sequence of
    bytes, tried in order; _execpath.candidates). ``argv`` and ``envp``:
    bytes sequences (envp None inherits the C environ). ``stdin``,
    ``stdout``, ``stderr``: the child's fds 0-2 (an fd, or a STDIO_* code).
    ``pass_fds``: sorted tuple. ``cwd``: bytes or None. ``flags``:
    CLOSE_FDS | SETSID | ... . ``pgroup``/``umask``/``uid``/``gid``: -1
    leaves it unchanged; ``groups``: None leaves them unchanged.
    """
    path: Union[bytes, Sequence[bytes]]
    argv: Sequence[bytes]
    envp: Optional[Sequence[bytes]]
    stdin: int
    stdout: int
    stderr: int
    pass_fds: Tuple[int, ...]
    cwd: Optional[bytes]
    flags: int
    pgroup: int
    umask: int
    uid: int
    gid: int
    groups: Optional[Sequence[int]]


class SpawnResult(NamedTuple):
    """spawn(): a running child, or ``err_step != STEP_OK``: the child
    failed at that step with ``err_errno`` (it is reaped; pid and every fd
    are -1). Failures of the parent itself (pipe2, vfork) raise OSError and
    leave nothing open. The fds are the parent ends of the STDIO_PIPE
    streams (-1 elsewhere), never inheritable; pidfd is -1 unless
    WANT_PIDFD and the platform has them (fs_result)."""
    pid: int
    pidfd: int
    stdin_w: int
    stdout_r: int
    stderr_r: int
    method: int         # VIA_*
    err_step: int       # STEP_*
    err_errno: int


class WaitResult(NamedTuple):
    """spawn_wait(): spawn() for a request without pipes (STDIO_PIPE or
    WANT_PIDFD: OSError(EINVAL)), and the wait for the child:

    * ``err_step != STEP_OK``: as for spawn() (pid -1, nothing to reap);
    * ``status`` an int: the child is reaped, with that wait status and
      ``rusage`` (the backend's RawRusage; None when SIGCHLD is ignored and
      the status was lost: status is then 0, as subprocess reports it);
    * ``status`` None: a signal handler run during the wait raised ``exc``
      (KeyboardInterrupt...); the child runs on, the caller settles ``pid``
      and raises ``exc``. Never otherwise: both backends wait.
    """
    pid: int
    status: Optional[int]
    rusage: object      # the backend's RawRusage, or None
    err_step: int
    err_errno: int
    exc: Optional[BaseException]


class CaptureResult(NamedTuple):
    """spawn_capture(): spawn(), then what ``Communicator(...).run(None,
    fds)`` and spawn_wait()'s wait do: ``input`` (bytes-like or None)
    written to a STDIO_PIPE stdin, the STDIO_PIPE outputs read, the child
    reaped (WANT_PIDFD: OSError(EINVAL); a non-bytes-like input with a
    piped stdin: TypeError before any child):

    * ``err_step != STEP_OK``: as for spawn() (nothing left);
    * ``exc`` None: done; stdout/stderr as Communicator.output() gives
      them, status/rusage as in a WaitResult;
    * ``exc`` set: something raised after the start (a signal handler, a
      MemoryError): the child still runs, ``fds`` lists the pipe ends still
      open (-1 for closed ones); the caller settles the child, closes them
      and raises ``exc``.
    """
    pid: int
    status: Optional[int]
    rusage: object      # the backend's RawRusage, or None
    stdout: Optional[bytes]
    stderr: Optional[bytes]
    err_step: int
    err_errno: int
    exc: Optional[BaseException]
    fds: Optional[List[int]]


#: The request's field names, in order.
FIELDS = SpawnRequest._fields

"""``fastspawn.pipeline()``: ``a | b | c`` without a shell, and without
Python in the data path.

Each stage is started through the launch layer with the previous stage's
pipe as its stdin and the next pipe as its stdout, so data flows from
process to process through the kernel. Python only feeds ``input`` to the
first stage and captures the last stage's output (and the stages' stderr),
through the backend's communicate loop (C, GIL released).
"""
import fcntl
import os
import signal
import subprocess
import sys
from collections import namedtuple
from time import monotonic
from typing import Any, List, Mapping, Optional, Sequence

from . import _backend
from ._constants import (
    CLOSE_FDS, RESTORE_SIGNALS, STDIO_DEVNULL, STDIO_INHERIT, STDIO_PIPE,
    STDIO_STDOUT, WANT_PIDFD,
)
from ._encode import encode_argv
from ._launch import launch
from ._popen import _encode_env
from ._procwait import wait_reap

__all__ = ["pipeline", "PipelineResult", "Stage"]

PIPE = subprocess.PIPE
STDOUT = subprocess.STDOUT
DEVNULL = subprocess.DEVNULL
_CalledProcessError = subprocess.CalledProcessError
_TimeoutExpired = subprocess.TimeoutExpired
_translate_newlines = subprocess.Popen._translate_newlines
_text_encoding = getattr(subprocess, "_text_encoding", None)

_PIDFD = WANT_PIDFD if sys.platform.startswith("linux") else 0
_FLAGS = CLOSE_FDS | RESTORE_SIGNALS | _PIDFD
_pidfd_send_signal = getattr(signal, "pidfd_send_signal", None)
_F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", None)
if _F_SETPIPE_SZ is None and sys.platform.startswith("linux"):
    _F_SETPIPE_SZ = 1031         # Python < 3.10 does not name it
_fcntl = fcntl.fcntl

_KINDS = {None: STDIO_INHERIT, PIPE: STDIO_PIPE, DEVNULL: STDIO_DEVNULL,
          STDOUT: STDIO_STDOUT}


# ---- helpers shared with _runmany ------------------------------------------

def _stdio(value, name, allow_pipe=True):
    """The launch layer's stdio kind (or fd) for a subprocess-style stdio
    argument: None, PIPE, DEVNULL, STDOUT (stderr only), an fd or an object
    with fileno()."""
    if value is None or (type(value) is int and value < 0):
        kind = _KINDS.get(value)
        if (kind is None or (kind == STDIO_STDOUT and name != "stderr")
                or (kind == STDIO_PIPE and not allow_pipe)):
            raise ValueError("%s=%r is not supported here" % (name, value))
        return kind
    if isinstance(value, bool):
        raise TypeError("%s must be None, PIPE, DEVNULL, a file descriptor "
                        "or a file object, not bool" % name)
    if isinstance(value, int):
        return value
    try:
        fd = value.fileno()
    except AttributeError:
        raise TypeError("%s must be None, PIPE, DEVNULL, a file descriptor "
                        "or a file object, not %s"
                        % (name, type(value).__name__)) from None
    return fd


def _encode_cwd(cwd):
    if cwd is None:
        return None
    b = os.fsencode(cwd)
    if b"\0" in b:
        raise ValueError("embedded null byte")
    return b


def _decoder(text, encoding, errors):
    """bytes -> str as subprocess's text mode does, or None (binary)."""
    if not (text or encoding or errors):
        return None
    if encoding is None:
        if _text_encoding is not None:
            encoding = _text_encoding()
        else:                           # pragma: no cover - Python < 3.11
            import locale
            encoding = locale.getpreferredencoding(False)
    errors = errors or "strict"

    def decode(data):
        if data is None:
            return None
        return _translate_newlines(None, data, encoding, errors)
    decode.encoding = encoding
    decode.errors = errors
    return decode


def _close(fd):
    try:
        os.close(fd)
    except OSError:
        pass


# ---- the result -------------------------------------------------------------

#: One stage of a finished pipeline: its arguments and return code
#: (negative: killed by that signal).
Stage = namedtuple("Stage", "args returncode")


class PipelineResult:
    """What :func:`pipeline` returns.

    ``stages``: a :class:`Stage` (``args``, ``returncode``) per command,
    in order; ``args`` and ``returncodes``: the same as two lists.
    ``returncode``: pipefail's answer -- 0 when every stage succeeded, else
    the return code of the first (leftmost) failing stage, the one
    ``check=True`` raises for. ``stdout``: the last stage's captured
    output, ``stderr``: the stages' captured stderr (one stream, merged),
    or None when not captured.
    """

    def __init__(self, stages: List[Stage], stdout: Any = None,
                 stderr: Any = None) -> None:
        self.stages = stages
        self.stdout = stdout
        self.stderr = stderr

    @property
    def args(self) -> List[Any]:
        return [s.args for s in self.stages]

    @property
    def returncodes(self) -> List[int]:
        return [s.returncode for s in self.stages]

    @property
    def failed_stage(self) -> Optional[int]:
        """Index of the first failing stage, or None."""
        for i, s in enumerate(self.stages):
            if s.returncode:
                return i
        return None

    @property
    def returncode(self) -> int:
        i = self.failed_stage
        return 0 if i is None else self.stages[i].returncode

    def __repr__(self):
        parts = ["stages=%r" % (self.stages,)]
        if self.stdout is not None:
            parts.append("stdout=%r" % (self.stdout,))
        if self.stderr is not None:
            parts.append("stderr=%r" % (self.stderr,))
        return "PipelineResult(%s)" % ", ".join(parts)

    def check_returncode(self) -> None:
        """Raise CalledProcessError for the first failing stage, if any."""
        i = self.failed_stage
        if i is not None:
            s = self.stages[i]
            e = _CalledProcessError(s.returncode, s.args, self.stdout,
                                    self.stderr)
            e.stage = i
            e.result = self
            raise e


# ---- running ----------------------------------------------------------------

def _stage_argv(cmd, i):
    if isinstance(cmd, (str, bytes)) or not isinstance(cmd, (list, tuple)):
        raise TypeError("pipeline: stage %d must be a list or tuple of "
                        "arguments, not %s" % (i, type(cmd).__name__))
    if not cmd:
        raise ValueError("pipeline: stage %d is empty" % i)
    for a in cmd:
        if isinstance(a, (list, tuple)):
            raise TypeError(
                "pipeline: stage %d holds a %s; pass the stages as separate "
                "arguments: pipeline(cmd1, cmd2, ...)"
                % (i, type(a).__name__))
    return encode_argv(cmd)


def _kill(pid, pidfd):
    try:
        if pidfd >= 0 and _pidfd_send_signal is not None:
            _pidfd_send_signal(pidfd, signal.SIGKILL)
        else:
            os.kill(pid, signal.SIGKILL)    # not reaped yet: still ours
    except ProcessLookupError:
        pass


def _waitstatus(pid):
    try:
        return os.waitpid(pid, 0)[1]
    except ChildProcessError:
        return 0        # SIGCHLD ignored: status lost (bpo-15756)


def pipeline(*commands: Sequence[Any], stdin: Any = None,
             stdout: Any = None, stderr: Any = None,
             capture_output: bool = False, input: Any = None,
             text: Optional[bool] = None, encoding: Optional[str] = None,
             errors: Optional[str] = None, check: bool = False,
             timeout: Optional[float] = None, cwd: Any = None,
             env: Optional[Mapping[Any, Any]] = None,
             pipe_size: Optional[int] = None) -> "PipelineResult":
    """Run ``commands[0] | commands[1] | ...`` and wait for every stage.

    Each command is an argument list, started through fastspawn's launch
    layer (PATH search, exec errors raised as OSError) with the previous
    stage's pipe as its stdin: the data never passes through Python.

    ``stdin`` (first stage) and ``stdout`` (last stage) take what
    ``subprocess.run`` takes: None (inherit), PIPE, DEVNULL, an fd or a
    file object; ``input`` (bytes, or str in text mode) is fed to the first
    stage; ``capture_output=True`` means ``stdout=stderr=PIPE``.

    ``stderr`` applies to every stage: None (inherit), DEVNULL, an fd or
    file; PIPE captures the stderr of *all* stages merged into one pipe
    (as the terminal would show it); STDOUT sends every stage's stderr to
    where the pipeline's output goes, like ``(a | b | c) 2>&1``.

    ``text``/``encoding``/``errors`` decode the captured output as
    ``subprocess.run`` does; ``cwd`` and ``env`` apply to every stage.
    ``pipe_size`` (Linux; ignored elsewhere) sets the capacity in bytes of
    the pipes between stages (F_SETPIPE_SZ; None: the system's default,
    64 KiB): larger pipes mean fewer context switches on big streams.

    Returns a :class:`PipelineResult`. With ``check=True`` (pipefail), a
    failing stage raises ``subprocess.CalledProcessError`` for the first
    (leftmost) failing stage, with its args and return code (``stage``:
    its index, ``result``: the PipelineResult). An upstream stage killed by
    SIGPIPE because a later one stopped reading early (``yes | head -1``)
    counts as failing, as under ``set -o pipefail``. A ``timeout`` kills
    every stage and raises ``subprocess.TimeoutExpired`` (with the output
    captured so far).

    An empty pipeline or stage raises ValueError, a stage that is not a
    list/tuple TypeError, before anything starts. A stage that cannot be
    started raises its OSError after the stages already started were
    killed and reaped and every pipe was closed.
    """
    if not commands:
        raise ValueError("pipeline needs at least one command")
    argvs = [_stage_argv(c, i) for i, c in enumerate(commands)]
    if input is not None:
        if stdin is not None:
            raise ValueError("stdin and input arguments may not both be "
                             "used.")
        stdin = PIPE
    if capture_output:
        if stdout is not None or stderr is not None:
            raise ValueError("stdout and stderr arguments may not be used "
                             "with capture_output.")
        stdout = stderr = PIPE
    in_kind = _stdio(stdin, "stdin")
    out_kind = _stdio(stdout, "stdout")
    err_kind = _stdio(stderr, "stderr")
    decode = _decoder(text, encoding, errors)
    if input is not None and decode is not None and isinstance(input, str):
        input = input.encode(decode.encoding, decode.errors)
    envp = None if env is None else _encode_env(env)
    cwd_b = _encode_cwd(cwd)
    if pipe_size is not None:
        if isinstance(pipe_size, bool) or not isinstance(pipe_size, int):
            raise TypeError("pipe_size must be an int or None")
        if not 0 < pipe_size <= 0x7fffffff:
            raise ValueError("pipe_size must be in 1..2**31-1")
        if _F_SETPIPE_SZ is None:
            pipe_size = None
    n = len(argvs)
    for c in commands:
        sys.audit("subprocess.Popen", c[0], list(c), cwd, env)

    owned = set()         # every fd we opened and have not closed yet
    procs = []            # (pid, pidfd) of the stages started

    def pipe(size=None):
        r, w = os.pipe()          # O_CLOEXEC: no stage inherits another's
        owned.add(r)
        owned.add(w)
        if size is not None:
            _fcntl(w, _F_SETPIPE_SZ, size)
        return r, w

    def release(fd):
        if fd in owned:
            owned.discard(fd)
            _close(fd)

    ends = [-1, -1, -1]   # our ends: stdin writer, stdout/stderr readers
    try:
        if in_kind == STDIO_PIPE:
            in_kind, ends[0] = pipe()
        if out_kind == STDIO_PIPE:
            ends[1], out_kind = pipe()
        if err_kind == STDIO_PIPE:
            ends[2], err_kind = pipe()
        elif err_kind == STDIO_STDOUT:
            # Every stage's stderr goes where the last stage's stdout goes.
            err_kind = out_kind if out_kind != STDIO_INHERIT else 1
        src = in_kind
        for i, argv in enumerate(argvs):
            last = i == n - 1
            if last:
                dst = out_kind
                err = STDIO_STDOUT if stderr == STDOUT else err_kind
            else:
                next_r, dst = pipe(pipe_size)
                err = err_kind
            res = launch(argv[0], argv, envp, search=True, path_env=env,
                         stdin=src, stdout=dst, stderr=err, cwd=cwd_b,
                         cwd_for_error=cwd, flags=_FLAGS,
                         filename=commands[i][0])
            procs.append((res[0], res[1]))
            release(src)          # a pipe read end now held by the stage
            if not last:
                release(dst)      # the write end now held by the stage
                src = next_r
        # The stages hold their ends now; ours would keep EOF away.
        for fd in list(owned):
            if fd not in ends:
                release(fd)
    except BaseException:
        for pid, pidfd in procs:
            _kill(pid, pidfd)
        for fd in list(owned):
            release(fd)
        for pid, pidfd in procs:
            _waitstatus(pid)
            if pidfd >= 0:
                _close(pidfd)
        raise

    def close_stream(i):
        fd = ends[i]
        ends[i] = -1
        if fd >= 0:
            release(fd)

    deadline = None if timeout is None else monotonic() + timeout
    out = err = None
    statuses = [None] * n
    try:
        try:
            if ends != [-1, -1, -1]:
                com = _backend.impl.Communicator(ends[0], ends[1], ends[2],
                                                 input)
                if not com.run(deadline, close_stream):
                    o, e = com.output()
                    raise _TimeoutExpired([list(c) for c in commands],
                                          timeout, output=o, stderr=e)
                out, err = com.output()
            for i, (pid, pidfd) in enumerate(procs):
                if deadline is None:
                    statuses[i] = _waitstatus(pid)
                    continue
                reaped = wait_reap(pid, pidfd, deadline)
                if reaped is None:
                    raise _TimeoutExpired([list(c) for c in commands],
                                          timeout, output=out, stderr=err)
                statuses[i] = reaped[0]
        except BaseException:
            for i, (pid, pidfd) in enumerate(procs):
                if statuses[i] is None:
                    _kill(pid, pidfd)
            for i, (pid, _pidfd) in enumerate(procs):
                if statuses[i] is None:
                    statuses[i] = _waitstatus(pid)
            raise
    finally:
        for i in range(3):
            close_stream(i)
        for _pid, pidfd in procs:
            if pidfd >= 0:
                _close(pidfd)

    if decode is not None:
        out, err = decode(out), decode(err)
    result = PipelineResult(
        [Stage(c, os.waitstatus_to_exitcode(s))
         for c, s in zip(commands, statuses)], out, err)
    if check:
        result.check_returncode()
    return result

"""The direct path of ``fastspawn.run()``.

``subprocess.run`` builds a whole Popen (stream objects, locks, a waitpid
lock, an error pipe) to run a command it then only waits for. For the
common calls -- an argument list, stdio from {inherit, PIPE, DEVNULL,
STDOUT}, capture_output, input, timeout, check, env, cwd, text/encoding/
errors -- this module goes straight from the launch layer to the backend's
communicate loop and waitpid. Anything else takes the stdlib's own ``run``
(rebound to fastspawn's Popen): :func:`eligible` decides.

Results, exceptions and their messages are subprocess's. Two strict
improvements: an interrupted run (KeyboardInterrupt...) always reaps its
child -- subprocess leaves it to a later ``_cleanup()`` -- and the timeout
in a TimeoutExpired is the one the caller gave, not the time that was left.
"""
import io
import os
import signal
import subprocess
import sys
from time import monotonic

from . import _backend
from ._compat import check_input as _check_input
from ._compat import posix_spawn_args as _posix_spawn_args
from ._compat import run_posix_spawns as _posix_spawns
from ._completed import CompletedProcess
from ._constants import (
    CLOSE_FDS, RESTORE_SIGNALS, STDIO_DEVNULL, STDIO_INHERIT, STDIO_PIPE,
    STDIO_STDOUT, WANT_PIDFD,
)
from ._encode import encode_argv, fsencode
from ._launch import launch, launch_capture, launch_wait
from ._popen import _decode_like_stream, _encode_env
from ._procwait import wait_reap

__all__ = ["eligible", "run"]

PIPE = subprocess.PIPE
STDOUT = subprocess.STDOUT
DEVNULL = subprocess.DEVNULL
_CalledProcessError = subprocess.CalledProcessError
_TimeoutExpired = subprocess.TimeoutExpired
_translate_newlines = subprocess.Popen._translate_newlines
_cleanup = getattr(subprocess, "_cleanup", lambda: None)
# subprocess's list of abandoned Popen objects that _cleanup() polls: only
# worth the call when it holds something (the list object never changes).
_active = getattr(subprocess, "_active", None)
_text_encoding = getattr(subprocess, "_text_encoding", None)

_KEYS = frozenset(("stdin", "stdout", "stderr", "env", "cwd", "text",
                   "encoding", "errors", "universal_newlines"))
_STDIN = {None: STDIO_INHERIT, DEVNULL: STDIO_DEVNULL}
_STDOUT = {None: STDIO_INHERIT, PIPE: STDIO_PIPE, DEVNULL: STDIO_DEVNULL}
_STDERR = dict(_STDOUT)
_STDERR[STDOUT] = STDIO_STDOUT
_PIDFD = WANT_PIDFD if sys.platform.startswith("linux") else 0
_waitpid = os.waitpid
_to_exitcode = os.waitstatus_to_exitcode
_close = os.close
# How long an interrupted run lets the child exit on its own (the SIGINT
# probably reached it too) before killing it: subprocess's value.
_SIGINT_WAIT = 0.25
_FLAGS = CLOSE_FDS | RESTORE_SIGNALS


def eligible(popenargs, kwargs):
    """Whether this run() call can take the direct path."""
    if len(popenargs) != 1 or not _KEYS.issuperset(kwargs):
        return False
    args = popenargs[0]
    if type(args) not in (list, tuple) or not args:
        return False
    g = kwargs.get
    try:
        if (g("stdin") not in _STDIN or g("stdout") not in _STDOUT
                or g("stderr") not in _STDERR):
            return False
    except TypeError:   # unhashable: a bad value, subprocess reports it
        return False
    if (g("text") is not None and g("universal_newlines") is not None
            and bool(g("text")) != bool(g("universal_newlines"))):
        return False    # subprocess's "Cannot disambiguate" error
    if g("encoding") is None and (g("text") or g("universal_newlines")
                                  or g("errors")):
        # Default encoding: subprocess may warn (-X warn_default_encoding).
        return not getattr(sys.flags, "warn_default_encoding", 0)
    return True


def _default_encoding():
    if _text_encoding is not None:     # Python >= 3.11
        return _text_encoding()
    import locale
    return locale.getpreferredencoding(False)


def _reap(pid, pidfd, kill):
    """Make sure the child is gone: kill it if asked, always reap it."""
    if kill:
        try:
            if pidfd >= 0:
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
            else:
                os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    try:
        return _waitpid(pid, 0)[1]
    except ChildProcessError:
        return 0


def _settle(pid, pidfd, exc):
    """Decide the child's fate once ``exc`` ends a run() early, as
    subprocess.run does: after a KeyboardInterrupt the child (which
    probably got the same ^C) has a moment to exit on its own; otherwise,
    or after that moment, it is killed. It is reaped either way (subprocess
    leaves that to a later _cleanup())."""
    if isinstance(exc, KeyboardInterrupt):
        reaped = None
        try:
            reaped = wait_reap(pid, pidfd, monotonic() + _SIGINT_WAIT)
        finally:
            if reaped is None:
                _reap(pid, pidfd, kill=True)
    else:
        _reap(pid, pidfd, kill=True)


def run(args, input=None, capture_output=False, timeout=None, check=False,
        stdin=None, stdout=None, stderr=None, env=None, cwd=None, text=None,
        encoding=None, errors=None, universal_newlines=None):
    """subprocess.run for the calls :func:`eligible` accepts."""
    if (input is None and not capture_output and timeout is None
            and stdout != PIPE and stderr != PIPE):
        return _run_no_pipes(args, check, _STDIN[stdin], _STDOUT[stdout],
                             _STDERR[stderr], env, cwd)
    if input is not None:
        if stdin is not None:
            raise ValueError("stdin and input arguments may not both be used.")
        stdin = PIPE
    if capture_output:
        if stdout is not None or stderr is not None:
            raise ValueError("stdout and stderr arguments may not be used "
                             "with capture_output.")
        stdout = stderr = PIPE
    text_mode = encoding or errors or text or universal_newlines
    if text_mode and encoding is None:
        encoding = _default_encoding()

    args_list, filename, exe, argv, envp = _prepare(args, cwd, env)
    cwd_b = None if cwd is None else fsencode(cwd)
    # subprocess's communicate() takes ``input`` one of two ways: with at
    # most one pipe and no timeout, through the stdin file object (only
    # when input is true); otherwise _save_input() encodes it in text mode
    # and the select loop takes memoryview(input), again only when true.
    # The same checks, with the same errors (before anything is started).
    lone_pipe = timeout is None and (stdin, stdout, stderr).count(PIPE) <= 1
    if input is not None:
        if not lone_pipe:
            if text_mode:
                input = input.encode(encoding, errors or "strict")
            _check_input(input)
        elif input and text_mode:
            if not isinstance(input, str):
                # Raises TextIOWrapper.write()'s TypeError, word for word.
                io.TextIOWrapper(io.BytesIO()).write(input)
            input = input.encode(encoding, errors or "strict")
        elif input:
            try:
                memoryview(input)
            except TypeError:
                # Raises BufferedWriter.write()'s TypeError, word for word
                # (a real BufferedWriter: PyPy's BytesIO.write() words it
                # differently).
                io.BufferedWriter(io.BytesIO()).write(input)
                raise
        if not input:
            input = None

    stdin_code = STDIO_PIPE if stdin == PIPE else _STDIN[stdin]
    if timeout is None:
        # One backend call: spawn, communicate, wait.
        t0 = monotonic()
        (pid, status, rusage, out, err, _, _, exc, fds) = launch_capture(
            exe, argv, envp, stdin_code, _STDOUT[stdout], _STDERR[stderr],
            cwd_b, cwd, _FLAGS, env, filename, input)
        if exc is not None:
            try:
                _settle(pid, -1, exc)
            finally:
                for fd in fds:
                    if fd >= 0:
                        _close(fd)
            try:
                raise exc
            finally:
                exc = None      # no reference cycle through the traceback
        duration = monotonic() - t0
    else:
        # A timeout that is no number fails here, with subprocess's
        # TypeError, not once a child and its pipes exist (they leaked).
        monotonic() + timeout
        t0 = monotonic()
        res = launch(exe, argv, envp, search=True, path_env=env,
                     stdin=stdin_code, stdout=_STDOUT[stdout],
                     stderr=_STDERR[stderr], cwd=cwd_b, cwd_for_error=cwd,
                     flags=_FLAGS | _PIDFD, filename=filename)
        pid, pidfd = res[0], res[1]
        fds = [res[2], res[3], res[4]]
        deadline = monotonic() + timeout
        out = err = None
        try:
            try:
                if fds[0] >= 0 or fds[1] >= 0 or fds[2] >= 0:
                    com = _backend.impl.Communicator(fds[0], fds[1], fds[2],
                                                     input)
                    # ``fds``: the loop closes each finished stream's fd
                    # and marks it -1 there; the finally closes the rest.
                    if not com.run(deadline, fds):
                        o, e = com.output()
                        raise _TimeoutExpired(args, timeout, output=o,
                                              stderr=e)
                    out, err = com.output()
                reaped = wait_reap(pid, pidfd, deadline)
                if reaped is None:
                    raise _TimeoutExpired(args, timeout)
                status, rusage = reaped
                duration = monotonic() - t0
            except BaseException as e:
                _settle(pid, pidfd, e)
                raise
        finally:
            for fd in fds:
                if fd >= 0:
                    _close(fd)
            if pidfd >= 0:
                _close(pidfd)

    retcode = _to_exitcode(status)
    if text_mode:
        # The stream's errors: TextIOWrapper(errors=None) means "strict".
        errors = errors or "strict"
        # subprocess reads a lone pipe through its TextIOWrapper, else
        # decodes what its select loop collected.
        decode = (_decode_like_stream if lone_pipe
                  else lambda data, enc, err: _translate_newlines(
                      None, data, enc, err))
        if out is not None:
            out = decode(out, encoding, errors)
        if err is not None:
            err = decode(err, encoding, errors)
    if check and retcode:
        raise _CalledProcessError(retcode, args, output=out, stderr=err)
    return CompletedProcess(args, retcode, out, err, rusage=rusage,
                            duration=duration)


def _prepare(args, cwd, env):
    """What subprocess's Popen does before its child starts, for run():
    reap the finished (_cleanup), audit, and encode the request -- where
    this subprocess would use os.posix_spawn, with its checks and errors.
    Returns (args_list, filename, exe, argv, envp)."""
    if _active or _active is None:
        _cleanup()
    args_list = list(args)
    filename = args_list[0]
    sys.audit("subprocess.Popen", filename, args_list, cwd, env)
    if _posix_spawns(filename, cwd):
        exe, argv, envp = _posix_spawn_args(filename, args_list, env)
        return args_list, os.fspath(filename), exe, argv, envp
    argv = encode_argv(args_list)
    return (args_list, filename, argv[0], argv,
            None if env is None else _encode_env(env))


def _run_no_pipes(args, check, stdin, stdout, stderr, env, cwd):
    """run() with no pipe and no timeout: one backend call starts the child
    and waits for it (text/encoding/errors have nothing to decode here).
    ``stdin``/``stdout``/``stderr`` are STDIO_* codes."""
    args_list, filename, exe, argv, envp = _prepare(args, cwd, env)
    t0 = monotonic()
    pid, status, rusage, _, _, exc = launch_wait(
        exe, argv, envp,
        stdin, stdout, stderr, None if cwd is None else fsencode(cwd), cwd,
        _FLAGS, env, filename)
    if exc is not None:
        # A signal handler raised during the wait: the child still runs.
        try:
            _settle(pid, -1, exc)
            raise exc
        finally:
            exc = None      # no reference cycle through the traceback
    duration = monotonic() - t0
    retcode = _to_exitcode(status)
    if check and retcode:
        raise _CalledProcessError(retcode, args)
    return CompletedProcess(args, retcode, None, None, rusage=rusage,
                            duration=duration)

"""The subprocess module's functions, served by fastspawn.

``run``, ``call``, ``check_call``, ``check_output``, ``getoutput`` and
``getstatusoutput`` are the running Python's own functions -- same code
object, defaults and docstrings -- rebound to a namespace in which ``Popen``
is fastspawn's. Their semantics therefore match subprocess's exactly, for
every Python version, with no copy of the logic. ``run`` first offers the
call to the direct path of _fastrun (no Popen object) when it qualifies;
check_output, getoutput and getstatusoutput go through ``run`` too. Exceptions and constants are
subprocess's very objects; ``CompletedProcess`` is a subclass of
subprocess's that adds the child's ``rusage`` and ``duration``.
"""
import subprocess

from . import _fastrun
from ._completed import CompletedProcess
from ._constants import STDIO_INHERIT
from ._popen import Popen, _CapturePopen, _last_usage
from ._rebind import rebind

__all__ = [
    "Popen", "run", "call", "check_call", "check_output", "getoutput",
    "getstatusoutput", "list2cmdline", "CompletedProcess",
    "CalledProcessError", "TimeoutExpired", "SubprocessError",
    "PIPE", "STDOUT", "DEVNULL",
]

PIPE = subprocess.PIPE
STDOUT = subprocess.STDOUT
DEVNULL = subprocess.DEVNULL
CalledProcessError = subprocess.CalledProcessError
TimeoutExpired = subprocess.TimeoutExpired
SubprocessError = subprocess.SubprocessError
list2cmdline = subprocess.list2cmdline

_FUNCTIONS = ("run", "call", "check_call", "check_output", "getoutput",
              "getstatusoutput")

# A private copy of subprocess's globals where the helpers find our Popen
# (and each other: check_call -> call, check_output -> run, ...).
_namespace = dict(vars(subprocess))
_namespace["Popen"] = _CapturePopen


def _completed(args, returncode, stdout=None, stderr=None):
    """CompletedProcess as the stdlib's run() builds it, plus what its
    Popen measured (handed over by _CapturePopen.__exit__, just before)."""
    usage = getattr(_last_usage, "value", None)
    _last_usage.value = None
    rusage, duration = usage if usage is not None else (None, None)
    return CompletedProcess(args, returncode, stdout, stderr,
                            rusage=rusage, duration=duration)


_namespace["CompletedProcess"] = _completed


def _rebind(func):
    new = rebind(func, _namespace)
    _namespace[func.__name__] = new
    return new


_popen_run = _rebind(subprocess.run)
_run_no_pipes = _fastrun._run_no_pipes


def run(*popenargs, input=None, capture_output=False, timeout=None,
        check=False, **kwargs):
    # The commonest calls, run([...]) with nothing but input/capture_output/
    # timeout/check, decided without eligible()'s general checks (which
    # accept them all as well).
    if (not kwargs and len(popenargs) == 1 and type(popenargs[0]) is list
            and popenargs[0]):
        if input is None and not capture_output and timeout is None:
            return _run_no_pipes(popenargs[0], check, STDIO_INHERIT,
                                 STDIO_INHERIT, STDIO_INHERIT, None, None)
        return _fastrun.run(popenargs[0], input, capture_output, timeout,
                            check)
    if _fastrun.eligible(popenargs, kwargs):
        return _fastrun.run(popenargs[0], input, capture_output, timeout,
                            check, **kwargs)
    return _popen_run(*popenargs, input=input, capture_output=capture_output,
                      timeout=timeout, check=check, **kwargs)


run.__doc__ = subprocess.run.__doc__
run.__wrapped__ = subprocess.run
_namespace["run"] = run
call = _rebind(subprocess.call)
check_call = _rebind(subprocess.check_call)
check_output = _rebind(subprocess.check_output)
getoutput = _rebind(subprocess.getoutput)
getstatusoutput = _rebind(subprocess.getstatusoutput)

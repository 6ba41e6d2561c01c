"""The subprocess module's functions, served by fastspawn.

``run``, ``call``, ``check_call``, ``check_output``, ``getoutput`` and
``getstatusoutput`` are the running Python's own functions -- same code
object, defaults and docstrings -- rebound to a namespace in which ``Popen``
is fastspawn's. Their semantics therefore match subprocess's exactly, for
every Python version, with no copy of the logic. Exceptions, constants and
``CompletedProcess`` are subprocess's very objects.
"""
import subprocess
import types

from ._popen import Popen, _CapturePopen

__all__ = [
    "Popen", "run", "call", "check_call", "check_output", "getoutput",
    "getstatusoutput", "list2cmdline", "CompletedProcess",
    "CalledProcessError", "TimeoutExpired", "SubprocessError",
    "PIPE", "STDOUT", "DEVNULL",
]

PIPE = subprocess.PIPE
STDOUT = subprocess.STDOUT
DEVNULL = subprocess.DEVNULL
CompletedProcess = subprocess.CompletedProcess
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


def _rebind(func):
    new = types.FunctionType(func.__code__, _namespace, func.__name__,
                             func.__defaults__, func.__closure__)
    new.__kwdefaults__ = func.__kwdefaults__
    new.__doc__ = func.__doc__
    new.__qualname__ = func.__qualname__
    new.__annotations__ = dict(func.__annotations__)
    new.__module__ = "fastspawn"
    new.__wrapped__ = func
    _namespace[func.__name__] = new
    return new


run = _rebind(subprocess.run)
call = _rebind(subprocess.call)
check_call = _rebind(subprocess.check_call)
check_output = _rebind(subprocess.check_output)
getoutput = _rebind(subprocess.getoutput)
getstatusoutput = _rebind(subprocess.getstatusoutput)

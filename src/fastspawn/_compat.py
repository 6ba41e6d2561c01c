"""subprocess internals that fastspawn hooks or mirrors and that differ
between Python versions, decided once, here, from the running interpreter
itself wherever it can tell (its signatures, code, flags and errors)
rather than from version numbers (PyPy and patched builds ship their own
subprocess.py):

* ``Popen._internal_poll``'s waitpid: a ``_waitpid=`` default argument up to
  3.12, the ``waitpid`` attribute of a ``_del_safe=`` namespace from 3.13
  (CPython gh-112736 folded ``_waitpid``, ``_WNOHANG`` and ``_ECHILD`` into
  it). :func:`poll_kwargs` hands the stdlib's poll fastspawn's waitpid (a
  wait4 that keeps the child's rusage) the way this interpreter takes it.
* fork_exec's errors for a bad fd, umask or process group (:func:`c_int`).
* subprocess's os.posix_spawn path, taken by default from 3.13 on glibc
  2.34+ (:func:`stdlib_posix_spawns`), and os.posix_spawn's checks and
  errors there (:func:`posix_spawn_args`).
* communicate()'s cast of a memoryview input (3.14, :func:`check_input`).

``_posixsubprocess.fork_exec``'s positional signature is decided in
_forkexec.py, next to the only call.
"""
import inspect
import operator
import os
import struct
import subprocess
import sys

__all__ = ["POLL_HOOK", "poll_kwargs", "c_int", "c_int_overflow",
           "STDLIB_POSIX_SPAWN", "stdlib_posix_spawns", "run_posix_spawns",
           "posix_spawn_args",
           "check_input", "POSIX_SPAWN_ENV_NONE"]

_POLL = inspect.signature(subprocess.Popen._internal_poll).parameters


class _DelSafe:
    """The stdlib's ``_del_safe`` namespace with another ``waitpid``; every
    other name (WNOHANG, ECHILD...) is the stdlib's own. Used from __del__:
    it refers to nothing outside itself."""

    __slots__ = ("waitpid", "_base")

    def __init__(self, waitpid, base):
        self.waitpid = waitpid
        self._base = base

    def __getattr__(self, name, _getattr=getattr):
        return _getattr(self._base, name)


if "_del_safe" in _POLL:
    #: How this interpreter's ``_internal_poll`` takes its waitpid.
    POLL_HOOK = "_del_safe"

    def poll_kwargs(waitpid, kwargs, _base=_POLL["_del_safe"].default,
                    _DelSafe=_DelSafe):
        """``_internal_poll``'s keyword arguments ``kwargs`` (what its
        caller passed) with ``waitpid`` in place of the stdlib's."""
        kwargs["_del_safe"] = _DelSafe(waitpid,
                                       kwargs.get("_del_safe", _base))
        return kwargs
elif "_waitpid" in _POLL:
    POLL_HOOK = "_waitpid"

    def poll_kwargs(waitpid, kwargs):
        """``_internal_poll``'s keyword arguments ``kwargs`` (what its
        caller passed) with ``waitpid`` in place of the stdlib's."""
        kwargs["_waitpid"] = waitpid
        return kwargs
else:   # an interpreter whose poll takes no waitpid: it reaps its own way
    POLL_HOOK = None

    def poll_kwargs(waitpid, kwargs):
        """``kwargs`` unchanged: this poll cannot be handed a waitpid (the
        child's rusage is then not recorded by poll())."""
        return kwargs


# ---- fork_exec's C int arguments ---------------------------------------------

# fork_exec's errors for an fd, umask or process group that is no C int are
# asked of fork_exec itself (_forkexec.probe_int_error: a call refused in
# its argument parsing). They differ: 3.9 "an integer is required (got type
# str)" / "integer argument expected, got float", later "'str' object
# cannot be interpreted as an integer"; "signed integer is greater than
# maximum" / "less than minimum" up to 3.12, "Python int too large to
# convert to C int" from 3.13 (Argument Clinic); beyond a C long the older
# converter says so. The range messages are asked once, here.
_INT_MAX = 2 ** 31 - 1
_INT_MIN = -2 ** 31
_LONG_BITS = 8 * struct.calcsize("l")
# (the first value of a range, the value asked about): above a C int,
# below it, above a C long, below it.
_INT_PROBES = ((1 << 31, 1 << 40), (-(1 << 31) - 1, -(1 << 40)),
               (1 << (_LONG_BITS - 1), 1 << 70),
               (-(1 << (_LONG_BITS - 1)) - 1, -(1 << 70)))


def _range_errors():
    from ._forkexec import probe_int_error
    found = []
    for first, value in _INT_PROBES:
        e = probe_int_error(value)
        if isinstance(e, OverflowError):
            found.append((first, str(e)))
    return found


def _probe(value):
    from ._forkexec import probe_int_error
    return probe_int_error(value)


_RANGE_ERRORS = _range_errors() if sys.implementation.name == "cpython" \
    else []   # PyPy converts its own way (_popen's _c_int)


def c_int_overflow(value):
    """The OverflowError fork_exec raises for ``value`` (an int outside the
    C int range) as a C int argument."""
    msg = "Python int too large to convert to C int"
    for first, probed in _RANGE_ERRORS:     # the narrower range first
        if value >= first if first > 0 else value <= first:
            msg = probed
    return OverflowError(msg)


def c_int(value, _index=operator.index):
    """``value`` as CPython's fork_exec takes a C int argument, with its
    errors: TypeError for a non-integer, OverflowError out of range."""
    try:
        value = _index(value)
    except TypeError:
        # This fork_exec's own words for this object (the call starts
        # nothing); if it takes the object after all (3.9 accepts
        # __int__), the stricter index rule stands.
        e = _probe(value)
        if isinstance(e, TypeError):
            raise e from None
        raise
    if value > _INT_MAX or value < _INT_MIN:
        raise c_int_overflow(value)
    return value


# ---- subprocess's os.posix_spawn path ------------------------------------------

# subprocess.Popen starts some children with os.posix_spawn instead of
# fork_exec (its _execute_child decides), and then its errors are
# os.posix_spawn's: its argument checks and messages, every failure naming
# the program. It does so where glibc's posix_spawn reports errors
# (subprocess._USE_POSIX_SPAWN: glibc >= 2.24, macOS) for a program path
# with a directory part and nothing that posix_spawn cannot express; with
# close_fds=True (the default) only from 3.13 on, where
# POSIX_SPAWN_CLOSEFROM exists (glibc >= 2.34). Its flags are read here.
_USE_POSIX_SPAWN = bool(getattr(subprocess, "_USE_POSIX_SPAWN", False))
#: Whether this subprocess may start a child with os.posix_spawn at all
#: (3.13+ on Linux): :func:`stdlib_posix_spawns` is False everywhere else.
STDLIB_POSIX_SPAWN = _USE_POSIX_SPAWN
_CLOSEFROM = bool(getattr(subprocess, "_HAVE_POSIX_SPAWN_CLOSEFROM", False))
_dirname = os.path.dirname


def stdlib_posix_spawns(executable, p):
    """Whether the running subprocess's Popen would start this child with
    os.posix_spawn: ``p`` maps _execute_child's parameter names to its
    arguments (without process_group before 3.11). The same test in the
    same order as subprocess (its TypeErrors too)."""
    return bool(_USE_POSIX_SPAWN
                and _dirname(executable)
                and p["preexec_fn"] is None
                and (not p["close_fds"] or _CLOSEFROM)
                and not p["pass_fds"]
                and p["cwd"] is None
                and (p["p2cread"] == -1 or p["p2cread"] > 2)
                and (p["c2pwrite"] == -1 or p["c2pwrite"] > 2)
                and (p["errwrite"] == -1 or p["errwrite"] > 2)
                and not p["start_new_session"]
                and p.get("process_group", -1) == -1
                and p["gid"] is None
                and p["gids"] is None
                and p["uid"] is None
                and p["umask"] < 0)


if _USE_POSIX_SPAWN and _CLOSEFROM:
    def run_posix_spawns(executable, cwd):
        """:func:`stdlib_posix_spawns` for run()'s direct path (close_fds,
        no pass_fds, stdio from pipes, /dev/null or inherited)."""
        if cwd is not None:
            return False
        if type(executable) is str:
            return "/" in executable    # what a non-empty dirname means
        return bool(_dirname(executable))
else:
    def run_posix_spawns(executable, cwd):
        """:func:`stdlib_posix_spawns` for run()'s direct path: never here
        (close_fds=True keeps this subprocess on fork_exec)."""
        return False


def _nul_in_path(path):
    # os.posix_spawn's path converter refuses it as every os function's
    # does, with the function's name where the interpreter adds one
    # ("posix_spawn: embedded null character in path" from 3.13; before,
    # "embedded null byte" for a str): ask os.stat, which refuses it
    # before any system call.
    try:
        os.stat(path)
    except ValueError as e:
        msg = str(e)
    else:   # pragma: no cover - no converter accepts a NUL
        msg = "embedded null byte"
    if msg.startswith("stat: "):
        msg = "posix_spawn: " + msg[6:]
    return ValueError(msg)


#: os.posix_spawn takes env=None (the C environ) from 3.13 on, and says so
#: in its TypeError for any other non-mapping.
POSIX_SPAWN_ENV_NONE = sys.version_info >= (3, 13)
_ENV_TYPE_ERROR = ("posix_spawn: environment must be a mapping object"
                   + (" or None" if POSIX_SPAWN_ENV_NONE else ""))


def _fsencode_checked(value):
    b = os.fsencode(value)
    if b"\0" in b:
        raise ValueError("embedded null byte")
    return b


def posix_spawn_args(executable, args, env):
    """``(exe, argv, envp)`` as bytes from what subprocess hands
    os.posix_spawn (``args`` a list, ``env`` a mapping or None), converted
    and refused as os.posix_spawn does, in its order: the path, then argv,
    then the environment."""
    path = os.fspath(executable)
    if ("\0" if type(path) is str else b"\0") in path:
        raise _nul_in_path(path)
    exe = os.fsencode(path)
    if not args:
        raise ValueError("posix_spawn: argv must not be empty")
    argv = [_fsencode_checked(a) for a in args]
    if not argv[0]:
        raise ValueError("posix_spawn: argv first element cannot be empty")
    envp = None
    if env is not None:
        if not hasattr(type(env), "__getitem__"):
            raise TypeError(_ENV_TYPE_ERROR)
        keys = list(env.keys())
        values = list(env.values())
        envp = []
        for k, v in zip(keys, values):
            k = _fsencode_checked(k)
            if not k or b"=" in k[1:]:
                raise ValueError("illegal environment variable name")
            envp.append(k + b"=" + _fsencode_checked(v))
    return exe, argv, envp


# ---- communicate()'s input -----------------------------------------------------

# From 3.14 subprocess's select loop writes a memoryview input through
# input.cast("b") (CPython gh-134453: byte offsets for multi-byte items),
# which refuses a non-contiguous view with a TypeError; before, os.write()
# refused it later with a BufferError. Read from its code.
_CASTS_INPUT = "cast" in subprocess.Popen._communicate.__code__.co_names


def check_input(input):
    """Refuse ``input`` (what the select loop of communicate() would write)
    where this subprocess's loop refuses it before writing anything."""
    if _CASTS_INPUT and input and isinstance(input, memoryview):
        input.cast("b")

"""The backend interface, described once: what the compiled ``_spawn_c`` and
the pure ``_spawn_py`` both provide -- functions with their parameters and
result types, classes with their methods and properties, constants -- and
what the results mean. tests/test_contract.py checks both backends against
it (signatures and behaviour); _spawn_c.pyi types the same interface for
mypy and is checked against it too. The constants themselves live in
_constants.py (generated from the C headers).

Results are plain tuples today; the NamedTuples below name their fields in
order (the fields of the later request/result objects).
"""
import inspect
import resource
import typing
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from . import _constants

__all__ = [
    "REQUEST", "RawRusage", "SpawnResult", "WaitResult", "CaptureResult",
    "Signature", "ClassSpec", "FUNCTIONS", "CLASSES", "CONSTANTS", "NAMES",
    "conforms", "check_result", "check_backend",
]

#: The spawn request, in the order every spawn function takes it: ``path``
#: (bytes, or the candidates of a PATH search, tried in order), ``argv``
#: and ``envp`` (bytes sequences; envp None inherits the C environ), the
#: child's fds 0-2 (an fd, or a STDIO_* code), ``pass_fds`` (sorted tuple),
#: ``cwd`` (bytes or None), ``flags`` (CLOSE_FDS | SETSID | ...),
#: ``pgroup``/``umask``/``uid``/``gid`` (-1: unchanged) and ``groups``
#: (None: unchanged).
REQUEST = ("path", "argv", "envp", "stdin", "stdout", "stderr", "pass_fds",
           "cwd", "flags", "pgroup", "umask", "uid", "gid", "groups")


class RawRusage:
    """Stands, in the result types, for the backend's own ``RawRusage``: a
    wait4() rusage whose ``value()`` is a ``resource.struct_rusage`` (and
    which pickles as that)."""


class SpawnResult(NamedTuple):
    """spawn(): a running child, or ``err_step != STEP_OK``: the child
    failed at that step with ``err_errno`` (it is reaped; pid and every fd
    are -1). Failures of the parent itself (pipe2, vfork) raise OSError and
    leave nothing open. The fds are the parent ends of the STDIO_PIPE
    streams (-1 elsewhere), never inheritable; pidfd is -1 unless
    WANT_PIDFD and the platform has them."""
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
      ``rusage`` (None when SIGCHLD is ignored and the status was lost;
      status is then 0, as subprocess reports it);
    * ``status`` None: a signal handler run during the wait raised ``exc``
      (KeyboardInterrupt...); the child runs on, the caller settles ``pid``
      and raises ``exc``. Never otherwise: both backends wait.
    """
    pid: int
    status: Optional[int]
    rusage: Optional[RawRusage]
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
    rusage: Optional[RawRusage]
    stdout: Optional[bytes]
    stderr: Optional[bytes]
    err_step: int
    err_errno: int
    exc: Optional[BaseException]
    fds: Optional[List[int]]


class Signature(NamedTuple):
    """A function's or method's parameters (names, in order, self left
    out; all positional-or-keyword), their defaults and its result type."""
    params: Tuple[str, ...]
    returns: Any = None
    defaults: Dict[str, Any] = {}


class ClassSpec(NamedTuple):
    """A class of the interface: its constructor (None: callers never make
    one), methods, and read-only properties with their types."""
    init: Optional[Signature]
    methods: Dict[str, Signature]
    properties: Dict[str, Any]


_Output = Tuple[Optional[bytes], Optional[bytes]]

FUNCTIONS = {
    #: Start ``path`` (never searched: the candidates are tried in order).
    "spawn": Signature(REQUEST, SpawnResult),
    "spawn_wait": Signature(REQUEST, WaitResult),
    "spawn_capture": Signature(REQUEST + ("input",), CaptureResult),
    #: The VIA_* mechanism spawn() would use for this request.
    "spawn_method": Signature(REQUEST, int),
    #: Wait (GIL released) until the child behind ``pidfd`` exits: True, or
    #: False once time.monotonic() passes ``deadline`` (None or NaN: none).
    "pidfd_wait": Signature(("pidfd", "deadline"), bool),
    #: os.wait4() with the rusage kept raw (the backend's RawRusage):
    #: (pid, status, rusage); (0, 0, None) for a WNOHANG wait that found
    #: nothing. EINTR is retried after the signal handlers ran (PEP 475);
    #: errors raise as os.wait4's (ChildProcessError for ECHILD).
    "wait4": Signature(("pid", "options"),
                       Tuple[int, int, Optional[RawRusage]]),
}

CLASSES = {
    "RawRusage": ClassSpec(
        None, {"value": Signature((), resource.struct_rusage)}, {}),
    # communicate() for one child: writes ``input`` to ``stdin_fd`` and
    # reads ``stdout_fd``/``stderr_fd`` (-1: none). run(deadline, on_close)
    # returns True once every stream is finished, False once
    # time.monotonic() passes ``deadline`` (call again to resume);
    # on_close(i) is called as stream i (0 stdin, 1 stdout, 2 stderr)
    # finishes, or on_close is the caller's list of the three fds: a
    # finished stream's fd is closed and its slot set to -1. output():
    # (stdout, stderr) so far, None for a stream not read (or, before the
    # end, one that gave nothing yet, not even EOF). A MemoryError while
    # reading leaves it usable (what a lost buffer held is lost).
    # One run() at a time: another thread's raises RuntimeError
    # (_comm_py.BUSY_MESSAGE); ``busy`` says whether one is running.
    # seed(k, data): output k (0 stdout, 1 stderr) begins with ``data``,
    # bytes the caller already read from that stream (a file object's
    # buffer); ValueError if k is not read or has output already.
    "Communicator": ClassSpec(
        Signature(("stdin_fd", "stdout_fd", "stderr_fd", "input")),
        {"run": Signature(("deadline", "on_close"), bool),
         "seed": Signature(("k", "data"), None),
         "output": Signature((), _Output)},
        {"finished": bool, "input_offset": int, "busy": bool}),
    # One poll loop over up to ``nslots`` running children (run_many()).
    # add() puts a child in a free slot; the loop owns its pipes (closed
    # at EOF, in drop() and in close()), the pidfd (-1: none) stays the
    # caller's. run(wake) returns (LOOP_EXITED, slot) once a child has
    # exited and its pipes are finished -- the loop has then reaped it:
    # its wait status is reaped[pid] (0 if SIGCHLD is ignored) until the
    # caller pops it --, (LOOP_EXPIRED, slot) once a slot's deadline
    # passed (once), (LOOP_WAKE, -1) once ``wake`` passed, (LOOP_IDLE, -1)
    # with no busy slot, (LOOP_NOTIFY, -1) once ``notify_fd`` is readable.
    # take(slot): (stdout, stderr) of a finished slot (b"" for an empty
    # pipe, None for none); the slot is free again. Children still in the
    # loop at close() are the caller's to reap.
    "RunLoop": ClassSpec(
        Signature(("nslots", "notify_fd"), defaults={"notify_fd": -1}),
        {"add": Signature(("slot", "pid", "pidfd", "stdout_fd", "stderr_fd",
                           "deadline"), None),
         "drop": Signature(("slot",), None),
         "run": Signature(("wake",), Tuple[int, int]),
         "take": Signature(("slot",), _Output),
         "close": Signature((), None)},
        {"reaped": Dict[int, int]}),
}

#: Module constants: the type of a backend-specific value, or the name of
#: the _constants value it must equal. FEATURES: a bit set of
#: (1 << VIA_*) and FEAT_*.
CONSTANTS = {
    "FEATURES": int,
    # Whether Popen.communicate() should read a lone output pipe through
    # Communicator (where that beats the file object's own read()).
    "LONE_PIPE_LOOP": bool,
    "LOOP_EXITED": "LOOP_EXITED",
    "LOOP_EXPIRED": "LOOP_EXPIRED",
    "LOOP_WAKE": "LOOP_WAKE",
    "LOOP_IDLE": "LOOP_IDLE",
    "LOOP_NOTIFY": "LOOP_NOTIFY",
}

#: What a backend exports (its __all__), no more, no less.
NAMES = frozenset(FUNCTIONS) | frozenset(CLASSES) | frozenset(CONSTANTS)


# ---- checking ---------------------------------------------------------------

def conforms(value, kind, backend):
    """Whether ``value`` is of the contract type ``kind`` (RawRusage: the
    backend's own class)."""
    if kind is Any:
        return True
    if kind is None or kind is type(None):
        return value is None
    if kind is RawRusage:
        return isinstance(value, backend.RawRusage)
    if isinstance(kind, type) and issubclass(kind, tuple) and hasattr(
            kind, "_fields"):
        # A result NamedTuple: a tuple of its fields, in order.
        hints = kind.__annotations__
        return (isinstance(value, tuple) and len(value) == len(kind._fields)
                and all(conforms(v, hints[f], backend)
                        for v, f in zip(value, kind._fields)))
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin is typing.Union:
        return any(conforms(value, a, backend) for a in args)
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return isinstance(value, tuple) and all(
                conforms(v, args[0], backend) for v in value)
        return (isinstance(value, tuple) and len(value) == len(args)
                and all(conforms(v, a, backend) for v, a in zip(value, args)))
    if origin is list:
        return isinstance(value, list) and all(
            conforms(v, args[0], backend) for v in value)
    if origin is dict:
        return isinstance(value, dict) and all(
            conforms(k, args[0], backend) and conforms(v, args[1], backend)
            for k, v in value.items())
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def _spec(name):
    cls, _, method = name.partition(".")
    if not method:
        return FUNCTIONS[name].returns
    if method in CLASSES[cls].properties:
        return CLASSES[cls].properties[method]
    return CLASSES[cls].methods[method].returns


def check_result(backend, name, value):
    """Problems (a list of strings, empty when none) with ``value`` as the
    result of ``name`` ("spawn", "RunLoop.run", "RunLoop.reaped"...)."""
    kind = _spec(name)
    if conforms(value, kind, backend):
        return []
    return ["%s.%s returned %r, not %s" % (backend.__name__, name, value,
                                           getattr(kind, "__name__", kind))]


def _signature_problems(where, func, sig, skip_self):
    try:
        got = inspect.signature(func)
    except (TypeError, ValueError):
        return ["%s: no signature to inspect" % where]
    params = list(got.parameters.values())
    if skip_self:
        params = params[1:]
    problems = []
    names = tuple(p.name for p in params)
    if names != sig.params:
        problems.append("%s takes %s, not %s" % (where, names, sig.params))
    for p in params:
        if p.kind is not p.POSITIONAL_OR_KEYWORD:
            problems.append("%s: %s is %s" % (where, p.name, p.kind))
        want = sig.defaults.get(p.name, p.empty)
        if p.default != want:
            problems.append("%s: %s defaults to %r, not %r" % (
                where, p.name, p.default, want))
    return problems


def check_backend(backend):
    """Problems (a list of strings, empty when none) with ``backend``'s
    names and signatures against the contract."""
    problems = []
    where = backend.__name__
    exported = set(getattr(backend, "__all__", ()))
    if exported != NAMES:
        problems.append("%s.__all__: missing %s, extra %s" % (
            where, sorted(NAMES - exported), sorted(exported - NAMES)))
    for name, sig in FUNCTIONS.items():
        func = getattr(backend, name, None)
        if func is None:
            continue            # reported as missing above
        problems += _signature_problems("%s.%s" % (where, name), func, sig,
                                        False)
    for name, spec in CLASSES.items():
        cls = getattr(backend, name, None)
        if cls is None:
            continue
        if spec.init is not None:
            problems += _signature_problems("%s.%s()" % (where, name), cls,
                                            spec.init, False)
        for meth, sig in spec.methods.items():
            func = getattr(cls, meth, None)
            if func is None:
                problems.append("%s.%s has no %s()" % (where, name, meth))
                continue
            problems += _signature_problems(
                "%s.%s.%s" % (where, name, meth), func, sig, True)
    for name, want in CONSTANTS.items():
        if not hasattr(backend, name):
            continue
        value = getattr(backend, name)
        if isinstance(want, str):
            if value != getattr(_constants, want):
                problems.append("%s.%s is %r, _constants.%s is %r" % (
                    where, name, value, want, getattr(_constants, want)))
        elif not conforms(value, want, backend):
            problems.append("%s.%s is %r, not %s" % (
                where, name, value, getattr(want, "__name__", want)))
    return problems

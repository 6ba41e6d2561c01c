"""The ``os``-style API: the spawn family named by the exec conventions
(l = args listed, v = args vector, p = PATH search, e = explicit
environment), ``system`` and ``popen``.

Signatures, return values and argument checks are those of ``os.spawn*``,
``os.system`` and ``os.popen``. One deliberate difference: a program that
cannot be executed raises ``FileNotFoundError``/``PermissionError``/...
instead of the child silently exiting with 127.
"""
import os
import signal
import subprocess
import threading

from ._encode import (
    EXECV_ARGV_TYPEERROR, encode_argv, encode_env, fsencode,
)
from ._launch import launch
from ._rebind import rebind

__all__ = [
    "P_WAIT", "P_NOWAIT", "P_NOWAITO",
    "spawnl", "spawnle", "spawnlp", "spawnlpe",
    "spawnv", "spawnve", "spawnvp", "spawnvpe",
    "system", "popen",
]

P_WAIT = os.P_WAIT
P_NOWAIT = os.P_NOWAIT
P_NOWAITO = os.P_NOWAITO

_waitpid = os.waitpid
_WIFSTOPPED = os.WIFSTOPPED
_to_exitcode = os.waitstatus_to_exitcode


def _wait_exitcode(pid):
    while True:
        _, sts = _waitpid(pid, 0)
        if not _WIFSTOPPED(sts):
            return _to_exitcode(sts)


_INHERIT = object()   # the non-e variants: the child inherits our environment


def _spawnvef(mode, file, args, env, search):
    # The checks os._spawnvef makes in the parent, with its messages.
    if not isinstance(args, (tuple, list)):
        raise TypeError("argv must be a tuple or a list")
    if not args or not args[0]:
        raise ValueError("argv first element cannot be empty")
    try:
        argv = encode_argv(args)
    except TypeError:
        if env is _INHERIT and EXECV_ARGV_TYPEERROR is not None:
            # os.execv's own message on this interpreter (PyPy).
            raise TypeError(EXECV_ARGV_TYPEERROR) from None
        raise
    if env is _INHERIT:
        env = envp = None
    else:
        # An e variant: env must be a mapping (os.spawnve would fail in
        # the child and return 127; this raises execve's TypeError).
        envp = encode_env(env)
    res = launch(fsencode(file), argv, envp, search=search, path_env=env,
                 filename=file)
    pid = res[0]
    if mode == P_NOWAIT:
        return pid
    return _wait_exitcode(pid)


def spawnv(mode, path, args):
    """spawnv(mode, path, args) -> integer: execute ``path`` with ``args``.

    P_NOWAIT returns the pid; P_WAIT the exit code, or -signal if killed."""
    return _spawnvef(mode, path, args, _INHERIT, False)


def spawnve(mode, path, args, env):
    """spawnve(mode, path, args, env): spawnv with the environment ``env``."""
    return _spawnvef(mode, path, args, env, False)


def spawnvp(mode, file, args):
    """spawnvp(mode, file, args): spawnv searching PATH for ``file``."""
    return _spawnvef(mode, file, args, _INHERIT, True)


def spawnvpe(mode, file, args, env):
    """spawnvpe(mode, file, args, env): spawnvp with the environment ``env``
    (whose PATH is the one searched)."""
    return _spawnvef(mode, file, args, env, True)


def spawnl(mode, path, *args):
    """spawnl(mode, path, *args): spawnv with the arguments listed."""
    return spawnv(mode, path, args)


def spawnle(mode, path, *args):
    """spawnle(mode, path, *args, env): spawnve, arguments listed, the
    environment last."""
    env = args[-1]
    return spawnve(mode, path, args[:-1], env)


def spawnlp(mode, file, *args):
    """spawnlp(mode, file, *args): spawnvp with the arguments listed."""
    return spawnvp(mode, file, args)


def spawnlpe(mode, file, *args):
    """spawnlpe(mode, file, *args, env): spawnvpe, arguments listed, the
    environment last."""
    env = args[-1]
    return spawnvpe(mode, file, args[:-1], env)


_SH = b"/bin/sh"


def _shell(command):
    return [b"sh", b"-c", fsencode(command)]


def system(command):
    """Run ``command`` with /bin/sh; return the wait status, like os.system.

    Like system(3), the caller ignores SIGINT and SIGQUIT while it waits
    (from the main thread, where Python can change dispositions), so that
    ^C stops the command, not the caller."""
    pid = launch(_SH, _shell(command), None)[0]
    saved = None
    if threading.current_thread() is threading.main_thread():
        saved = (signal.signal(signal.SIGINT, signal.SIG_IGN),
                 signal.signal(signal.SIGQUIT, signal.SIG_IGN))
    try:
        while True:
            try:
                return _waitpid(pid, 0)[1]
            except InterruptedError:  # pragma: no cover - PEP 475 retries
                continue
    finally:
        if saved is not None:
            signal.signal(signal.SIGINT, saved[0])
            signal.signal(signal.SIGQUIT, saved[1])


def _rebind_popen():
    """os.popen's own code (it differs between Python versions) with its
    ``import subprocess`` answered by a module whose Popen is fastspawn's:
    the same objects and close() statuses as os.popen, on fastspawn."""
    import builtins
    import types

    from ._popen import Popen

    shim = types.ModuleType("subprocess")
    shim.__dict__.update(vars(subprocess))
    shim.Popen = Popen
    real_import = builtins.__import__

    def _import(name, globals=None, locals=None, fromlist=(), level=0):
        if name == "subprocess" and level == 0:
            return shim
        return real_import(name, globals, locals, fromlist, level)

    namespace = dict(vars(os))
    namespace["__builtins__"] = dict(vars(builtins), __import__=_import)
    return rebind(os.popen, namespace,
                  doc="Open a pipe to or from ``cmd`` run by /bin/sh, "
                      "exactly like os.popen (its own code), on "
                      "fastspawn.Popen.")


popen = _rebind_popen()

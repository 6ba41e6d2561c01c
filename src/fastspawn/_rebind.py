"""Reusing the standard library's own code on fastspawn's objects.

Where fastspawn mirrors a stdlib function whose body differs between
Python versions (subprocess.run & co., os.popen), it does not copy that
body: it runs the running Python's own code object in a namespace where
the names it looks up (``Popen``, or the ``subprocess`` module it imports)
are fastspawn's. Behaviour then follows the interpreter, version by
version, with no second copy of the logic.
"""
import types

__all__ = ["rebind"]


def rebind(func, namespace, doc=None):
    """``func``'s code, defaults and metadata with ``namespace`` as its
    globals. The new function says it is fastspawn's and wraps ``func``."""
    new = types.FunctionType(func.__code__, namespace, func.__name__,
                             func.__defaults__, func.__closure__)
    new.__kwdefaults__ = func.__kwdefaults__
    new.__doc__ = func.__doc__ if doc is None else doc
    new.__qualname__ = func.__qualname__
    new.__annotations__ = dict(getattr(func, "__annotations__", {}))
    new.__module__ = "fastspawn"
    new.__wrapped__ = func  # type: ignore[attr-defined]  # no such slot
    return new

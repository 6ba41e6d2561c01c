"""subprocess internals that fastspawn hooks and that differ between Python
versions, decided once, here, from the running stdlib itself.

The decisions read the stdlib's own signatures, not version numbers (PyPy
and patched builds ship their own copies of subprocess.py).

* ``Popen._internal_poll``'s waitpid: a ``_waitpid=`` default argument up to
  3.12, the ``waitpid`` attribute of a ``_del_safe=`` namespace from 3.13
  (CPython gh-112736 folded ``_waitpid``, ``_WNOHANG`` and ``_ECHILD`` into
  it). :func:`poll_kwargs` hands the stdlib's poll fastspawn's waitpid (a
  wait4 that keeps the child's rusage) the way this interpreter takes it.

``_posixsubprocess.fork_exec``'s positional signature is decided the same
way in _forkexec.py, next to the only call.
"""
import inspect
import subprocess

__all__ = ["POLL_HOOK", "poll_kwargs"]

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

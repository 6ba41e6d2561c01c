"""Arguments and environments to the ``bytes`` the backends take, with the
validation (and messages) of ``os.execve``. Written once for both backends."""
import os
import sys

__all__ = ["fsencode", "encode_argv", "encode_env"]

_fsencode = os.fsencode
# What os.fsencode does to a str, without its two Python-level calls per
# argument (fspath, isinstance): run() pays this for every argument.
_FS_ENCODING = sys.getfilesystemencoding()
_FS_ERRORS = sys.getfilesystemencodeerrors()


def fsencode(value):
    """``os.fsencode`` plus exec's refusal of NUL bytes."""
    b = _fsencode(value)
    if b"\0" in b:
        raise ValueError("embedded null byte")
    return b


def encode_argv(args):
    """A list of bytes from a sequence of str/bytes/PathLike."""
    out = []
    for a in args:
        b = (a.encode(_FS_ENCODING, _FS_ERRORS) if type(a) is str
             else _fsencode(a))
        if b"\0" in b:
            raise ValueError("embedded null byte")
        out.append(b)
    return out


# PyPy's os.execv/os.execve (pypy/module/posix/interp_posix.py) differ from
# CPython's in how they refuse bad arguments: execv turns any TypeError of
# its argv into this one message, and execve reads the environment as
# ``env[k] for k in env.keys()`` (AttributeError for a non-mapping).
_PYPY = sys.implementation.name == "pypy"
EXECV_ARGV_TYPEERROR = ("execv() arg 2 must be an iterable of strings"
                        if _PYPY else None)


def encode_env(env):
    """``[b"KEY=VALUE", ...]`` from a mapping, checked like os.execve: a key
    must be non-empty and hold no '=' after its first character."""
    if _PYPY:
        items = [(k, env[k]) for k in env.keys()]
    else:
        try:
            items = env.items()
        except AttributeError:
            raise TypeError(
                "execve: environment must be a mapping object") from None
    out = []
    for k, v in items:
        k = _fsencode(k)
        v = _fsencode(v)
        if b"\0" in k or b"\0" in v:
            raise ValueError("embedded null byte")
        if not k or b"=" in k[1:]:
            raise ValueError("illegal environment variable name")
        out.append(k + b"=" + v)
    return out

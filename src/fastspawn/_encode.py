"""Arguments and environments to the ``bytes`` the backends take, with the
validation (and messages) of ``os.execve``. Written once for both backends."""
import os

__all__ = ["fsencode", "encode_argv", "encode_env"]

_fsencode = os.fsencode


def fsencode(value):
    """``os.fsencode`` plus exec's refusal of NUL bytes."""
    b = _fsencode(value)
    if b"\0" in b:
        raise ValueError("embedded null byte")
    return b


def encode_argv(args):
    """A list of bytes from a sequence of str/bytes/PathLike."""
    out = [_fsencode(a) for a in args]
    for b in out:
        if b"\0" in b:
            raise ValueError("embedded null byte")
    return out


def encode_env(env):
    """``[b"KEY=VALUE", ...]`` from a mapping, checked like os.execve: a key
    must be non-empty and hold no '=' after its first character."""
    try:
        items = env.items()
    except AttributeError:
        raise TypeError("execve: environment must be a mapping object") from None
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

"""The one place that decides how a program name becomes paths to exec.

The rule is ``os.execvp``'s: a name with a '/' is used as is; otherwise each
entry of PATH (from the child's environment, else ``os.environ``, else
``os.defpath``) is joined with the name and tried in order. The backends
try the candidates in the child (the C vfork child; CPython's fork_exec
child for the pure backend; posix_spawn with a stat() pre-check where
there is no vfork) and report os.execvp's error: the first other than
ENOENT/ENOTDIR, else the last.
"""
import os

from ._constants import STEP_CHDIR, STEP_EXEC, STEP_PREEXEC

__all__ = ["candidates", "child_error"]

_get_exec_path = os.get_exec_path
_fsencode = os.fsencode

# (PATH entries, name) -> candidates: a pure function of its key, so
# caching it changes nothing but the cost (the joins are most of it).
_cache = {}
# (os.environ's raw PATH value, name) -> candidates: the same, for the
# commonest case (no env given), without os.get_exec_path(), whose
# warnings.catch_warnings() costs more than the spawn's own Python code.
_environ_cache = {}
_CACHE_MAX = 256


def candidates(file, env):
    """Paths to try for ``file`` (bytes), as os.execvp would, in order.

    ``env`` is the child's environment mapping, or None for os.environ."""
    if b"/" in file:
        return (file,)
    if env is None:
        # os.environ's PATH as stored (bytes on POSIX): all that
        # get_exec_path(None) depends on. Looked up at every call, as
        # get_exec_path does (os.environ may be replaced).
        data = getattr(os.environ, "_data", None)
        if type(data) is dict:
            key = (data.get(b"PATH"), file)
            found = _environ_cache.get(key)
            if found is None:
                found = _search(file, None)
                if len(_environ_cache) >= _CACHE_MAX:
                    _environ_cache.clear()
                _environ_cache[key] = found
            return found
    return _search(file, env)


def _search(file, env):
    dirs = tuple(_get_exec_path(env))
    key = (dirs, file)
    found = _cache.get(key)
    if found is None:
        found = tuple(
            (d + b"/" + file if d and not d.endswith(b"/") else d + file)
            for d in map(_fsencode, dirs))
        if len(_cache) >= _CACHE_MAX:
            _cache.clear()
        _cache[key] = found
    return found


def child_error(step, err, filename, cwd, name_program=False):
    """The exception for a child that failed at ``step`` with ``err``,
    shaped like subprocess's: exec failures name the program, chdir
    failures the cwd, other steps nothing -- or, with ``name_program``
    (os.posix_spawn's errors), the program too."""
    if step == STEP_PREEXEC:
        import subprocess
        return subprocess.SubprocessError("Exception occurred in preexec_fn.")
    msg = os.strerror(err)
    if step == STEP_EXEC or (name_program and step != STEP_CHDIR):
        return OSError(err, msg, filename)
    if step == STEP_CHDIR:
        return OSError(err, msg, cwd)
    return OSError(err, msg)

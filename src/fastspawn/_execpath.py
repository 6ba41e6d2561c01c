"""The one place that decides how a program name becomes a path to exec.

The rule is ``os.execvp``'s: a name with a '/' is used as is; otherwise each
entry of PATH (from the child's environment, else ``os.defpath``) is tried in
order, and when all fail the first error other than ENOENT/ENOTDIR is
reported (else the last one). Both backends go through :func:`first_spawn`.
"""
import errno as _errno
import os

from ._constants import STEP_CHDIR, STEP_EXEC, STEP_OK, STEP_PREEXEC

__all__ = ["candidates", "first_spawn", "child_error"]

_SKIP = (_errno.ENOENT, _errno.ENOTDIR)
_join = os.path.join
_stat = os.stat


def candidates(file, env):
    """Paths to try for ``file`` (bytes), as os.execvp would, in order.

    ``env`` is the child's environment mapping, or None for os.environ."""
    if b"/" in file:
        return [file]
    return [_join(os.fsencode(d), file) for d in os.get_exec_path(env)]


def child_error(step, err, filename, cwd):
    """The exception for a child that failed at ``step`` with ``err``,
    shaped like subprocess's: exec failures name the program, chdir
    failures the cwd, other steps nothing."""
    if step == STEP_PREEXEC:
        import subprocess
        return subprocess.SubprocessError("Exception occurred in preexec_fn.")
    msg = os.strerror(err)
    if step == STEP_EXEC:
        return OSError(err, msg, filename)
    if step == STEP_CHDIR:
        return OSError(err, msg, cwd)
    return OSError(err, msg)


def first_spawn(spawn, paths, args, filename, cwd):
    """Call ``spawn(path, *args)`` for each of ``paths`` until one runs.

    ``spawn`` is a backend's spawn (or _forkexec.fork_exec): it returns the
    SpawnResult tuple. Candidates that do not exist are skipped with a
    stat() instead of a whole failed spawn; which error wins is os.execvp's.
    Raises the chosen error naming ``filename`` (the name the user gave).
    """
    if len(paths) == 1:
        res = spawn(paths[0], *args)
        if res[6] != STEP_OK:
            raise child_error(res[6], res[7], filename, cwd)
        return res
    first = last = 0
    for path in paths:
        if path[:1] == b"/":
            # A path that does not exist fails exec with ENOENT/ENOTDIR:
            # learn that from stat() rather than a whole failed spawn.
            # (Relative entries depend on the child's cwd: always tried.)
            try:
                _stat(path)
            except OSError as e:
                if e.errno in _SKIP:
                    last = e.errno
                    continue
        res = spawn(path, *args)
        step = res[6]
        if step == STEP_OK:
            return res
        if step != STEP_EXEC:
            raise child_error(step, res[7], filename, cwd)
        last = res[7]
        if not first and last not in _SKIP:
            first = last
    if cwd is not None and not first:
        # Nothing was spawned for real: a bad cwd must still win over the
        # missing program, as chdir() comes before exec in the child.
        res = spawn(paths[-1], *args)
        if res[6] == STEP_OK:
            return res
        if res[6] != STEP_EXEC:
            raise child_error(res[6], res[7], filename, cwd)
    raise child_error(STEP_EXEC, first or last or _errno.ENOENT, filename, cwd)

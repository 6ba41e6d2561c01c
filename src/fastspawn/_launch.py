"""The launch layer every public API calls: picks the mechanism (the live
backend, or the interpreter's fork machinery when Python must run in the
child), applies the PATH rule, and raises child failures as exceptions."""
from . import _backend, _execpath

__all__ = ["launch"]

_candidates = _execpath.candidates
_first_spawn = _execpath.first_spawn


def launch(file, argv, envp, *, search=False, path_env=None,
           stdin=-1, stdout=-1, stderr=-1, pass_fds=(), cwd=None,
           cwd_for_error=None, flags=0, pgroup=-1, umask=-1, uid=-1,
           gid=-1, groups=None, preexec_fn=None, filename=None):
    """Start ``file`` (bytes) with ``argv``/``envp`` (bytes lists; envp None
    inherits). With ``search``, PATH is searched as os.execvp does, in
    ``path_env`` (the child's env mapping; None: os.environ).

    Returns the backend's SpawnResult tuple for a running child; raises
    OSError (or SubprocessError for a failing preexec_fn) otherwise, naming
    ``filename`` (default: ``file``) / ``cwd_for_error`` (default: cwd).
    """
    if preexec_fn is not None:
        from ._forkexec import fork_exec

        def spawn(path, *args):
            return fork_exec(path, *args, preexec_fn)
    else:
        spawn = _backend.impl.spawn
    paths = _candidates(file, path_env) if search else [file]
    return _first_spawn(
        spawn, paths,
        (argv, envp, stdin, stdout, stderr, pass_fds, cwd, flags, pgroup,
         umask, uid, gid, groups),
        file if filename is None else filename,
        cwd if cwd_for_error is None else cwd_for_error)

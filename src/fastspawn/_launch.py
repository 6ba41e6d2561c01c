"""The launch layer every public API calls: picks the mechanism (the live
backend, or the interpreter's fork machinery when Python must run in the
child), applies the PATH rule, and raises child failures as exceptions."""
from . import _backend, _execpath
from ._constants import STEP_OK

__all__ = ["launch", "start", "launch_capture", "launch_wait"]

_candidates = _execpath.candidates
_child_error = _execpath.child_error


def launch(file, argv, envp, *, search=False, path_env=None,
           stdin=-1, stdout=-1, stderr=-1, pass_fds=(), cwd=None,
           cwd_for_error=None, flags=0, pgroup=-1, umask=-1, uid=-1,
           gid=-1, groups=None, preexec_fn=None, filename=None,
           name_program=False):
    """Start ``file`` (bytes) with ``argv``/``envp`` (bytes lists; envp None
    inherits). With ``search``, PATH is searched as os.execvp does, in
    ``path_env`` (the child's env mapping; None: os.environ).

    Returns the backend's SpawnResult tuple for a running child; raises
    OSError (or SubprocessError for a failing preexec_fn) otherwise, naming
    ``filename`` (default: ``file``) / ``cwd_for_error`` (default: cwd);
    with ``name_program`` every failure of the child names ``filename``
    (as os.posix_spawn's do).
    """
    return start(_candidates(file, path_env) if search else file, argv,
                 envp, stdin, stdout, stderr, pass_fds, cwd, flags, pgroup,
                 umask, uid, gid, groups, preexec_fn,
                 file if filename is None else filename,
                 cwd if cwd_for_error is None else cwd_for_error,
                 name_program)


def start(paths, argv, envp, stdin, stdout, stderr, pass_fds, cwd, flags,
          pgroup, umask, uid, gid, groups, preexec_fn, filename,
          cwd_for_error, name_program=False):
    """:func:`launch` with every argument given, in order (Popen's path):
    ``paths`` is one path or the PATH candidates (_execpath.candidates)."""
    if preexec_fn is None:
        res = _backend.impl.spawn(paths, argv, envp, stdin, stdout, stderr,
                                  pass_fds, cwd, flags, pgroup, umask, uid,
                                  gid, groups)
    else:
        from ._forkexec import fork_exec
        res = fork_exec(paths, argv, envp, stdin, stdout, stderr, pass_fds,
                        cwd, flags, pgroup, umask, uid, gid, groups,
                        preexec_fn)
    if res[6] != STEP_OK:
        raise _child_error(res[6], res[7], filename, cwd_for_error,
                           name_program)
    return res


def launch_wait(file, argv, envp, stdin, stdout, stderr, cwd, cwd_for_error,
                flags, path_env, filename):
    """:func:`launch` with a PATH search, no pipes and nothing that needs
    Python in the child, through the backend's spawn_wait(): returns its
    result (_contract.WaitResult): when its ``exc`` is set, the caller
    settles the still-running child and raises it."""
    res = _backend.impl.spawn_wait(_candidates(file, path_env), argv, envp,
                                   stdin, stdout, stderr, (), cwd, flags, -1,
                                   -1, -1, -1, None)
    if res[3] != STEP_OK:
        raise _child_error(res[3], res[4], filename, cwd_for_error)
    try:
        return res
    finally:
        del res     # see launch_capture


def launch_capture(file, argv, envp, stdin, stdout, stderr, cwd,
                   cwd_for_error, flags, path_env, filename, input):
    """:func:`launch` with a PATH search and nothing that needs Python in
    the child, through the backend's spawn_capture(): the child is started,
    ``input`` written, its output read and the child reaped in one call.
    Returns spawn_capture()'s tuple (_contract.CaptureResult): when its
    ``exc`` is set, the caller settles the still-running child and closes
    the fds."""
    res = _backend.impl.spawn_capture(_candidates(file, path_env), argv,
                                      envp, stdin, stdout, stderr, (), cwd,
                                      flags, -1, -1, -1, -1, None, input)
    if res[5] != STEP_OK:
        raise _child_error(res[5], res[6], filename, cwd_for_error)
    # Returned without this frame keeping it: the exception it may hold has
    # a traceback whose frames reach this one (f_back), a cycle that would
    # keep all they hold (a MemoryError's buffers) until the cyclic GC.
    try:
        return res
    finally:
        del res

# cython: language_level=3, boundscheck=False, wraparound=False
"""The compiled fastspawn backend: a thin binding of csrc/fs_spawn.c.

Arguments arrive already encoded and validated (fastspawn._encode); this
module only turns them into the C request, spawns with the GIL released and
converts the result. Interface: _spawn_c.pyi (shared with _spawn_py).
"""
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from libc.errno cimport errno
from libc.string cimport memset
from posix.types cimport gid_t

from ._fs_spawn cimport *

from . import _constants as _k

__all__ = ["FEATURES", "spawn", "spawn_method"]

# The header and the Python constants are one contract: refuse to load on
# any mismatch rather than misbehave.
if (FS_STDIO_INHERIT, FS_STDIO_PIPE, FS_STDIO_DEVNULL, FS_STDIO_STDOUT,
        FS_VIA_POSIX_SPAWN, FS_VIA_VFORK, FS_VIA_FORK,
        FS_STEP_OK, FS_STEP_EXEC, FS_STEP_CHDIR, FS_STEP_OTHER,
        FS_CLOSE_FDS, FS_SETSID, FS_RESTORE_SIGNALS, FS_WANT_PIDFD,
        FS_FORCE_VFORK) != (
        _k.STDIO_INHERIT, _k.STDIO_PIPE, _k.STDIO_DEVNULL, _k.STDIO_STDOUT,
        _k.VIA_POSIX_SPAWN, _k.VIA_VFORK, _k.VIA_FORK,
        _k.STEP_OK, _k.STEP_EXEC, _k.STEP_CHDIR, _k.STEP_OTHER,
        _k.CLOSE_FDS, _k.SETSID, _k.RESTORE_SIGNALS, _k.WANT_PIDFD,
        _k.FORCE_VFORK):
    raise ImportError("fastspawn: fs_spawn.h and _constants.py disagree")

FEATURES = fs_features()


cdef char **_to_argv(seq) except? NULL:
    """NULL-terminated char* array pointing into the bytes objects of
    ``seq`` (which must stay alive while it is used); PyMem_Free it."""
    cdef Py_ssize_t i, n = len(seq)
    cdef char **arr = <char **>PyMem_Malloc((n + 1) * sizeof(char *))
    if arr == NULL:
        raise MemoryError()
    for i in range(n):
        item = seq[i]
        if type(item) is not bytes:
            PyMem_Free(arr)
            raise TypeError("expected bytes, got %s" % type(item).__name__)
        arr[i] = PyBytes_AS_STRING(item)
    arr[n] = NULL
    return arr


cdef class _Request:
    """Owns the C request and everything its pointers point into."""
    cdef fs_request req
    cdef char **argv
    cdef char **envp
    cdef int *pass_fds
    cdef gid_t *groups
    cdef object keep        # Python objects the pointers borrow from

    def __cinit__(self):
        memset(&self.req, 0, sizeof(fs_request))
        self.argv = NULL
        self.envp = NULL
        self.pass_fds = NULL
        self.groups = NULL

    def __dealloc__(self):
        PyMem_Free(self.argv)
        PyMem_Free(self.envp)
        PyMem_Free(self.pass_fds)
        PyMem_Free(self.groups)

    cdef int fill(self, bytes path, argv, envp, int stdin, int stdout,
                  int stderr, tuple pass_fds, cwd, int flags, int pgroup,
                  int umask, int uid, int gid, groups) except -1:
        cdef Py_ssize_t i
        argv = tuple(argv)
        envp = None if envp is None else tuple(envp)
        self.keep = (path, argv, envp, cwd)
        self.req.path = PyBytes_AS_STRING(path)
        self.argv = _to_argv(argv)
        self.req.argv = self.argv
        if envp is not None:
            self.envp = _to_argv(envp)
            self.req.envp = self.envp
        self.req.stdio[0] = stdin
        self.req.stdio[1] = stdout
        self.req.stdio[2] = stderr
        if pass_fds:
            self.pass_fds = <int *>PyMem_Malloc(len(pass_fds) * sizeof(int))
            if self.pass_fds == NULL:
                raise MemoryError()
            for i in range(len(pass_fds)):
                self.pass_fds[i] = pass_fds[i]
            self.req.pass_fds = self.pass_fds
            self.req.n_pass_fds = len(pass_fds)
        if cwd is not None:
            if type(cwd) is not bytes:
                raise TypeError("cwd must be bytes")
            self.req.cwd = PyBytes_AS_STRING(cwd)
        self.req.flags = flags
        self.req.pgroup = pgroup
        self.req.umask = umask
        self.req.uid = uid
        self.req.gid = gid
        self.req.n_groups = -1
        if groups is not None:
            groups = tuple(groups)
            self.groups = <gid_t *>PyMem_Malloc((len(groups) or 1) * sizeof(gid_t))
            if self.groups == NULL:
                raise MemoryError()
            for i in range(len(groups)):
                self.groups[i] = <gid_t>groups[i]
            self.req.groups = self.groups
            self.req.n_groups = len(groups)
        return 0


def spawn(bytes path, argv, envp, int stdin, int stdout, int stderr,
          tuple pass_fds, cwd, int flags, int pgroup, int umask, int uid,
          int gid, groups):
    """See _spawn_c.pyi."""
    cdef _Request r = _Request()
    cdef fs_result res
    cdef int rc, err
    r.fill(path, argv, envp, stdin, stdout, stderr, pass_fds, cwd, flags,
           pgroup, umask, uid, gid, groups)
    with nogil:
        rc = fs_spawn(&r.req, &res)
        err = errno
    if rc != 0:
        raise OSError(err, _strerror(err))
    return (res.pid, res.pidfd, res.pipes[0], res.pipes[1], res.pipes[2],
            res.method, res.err_step, res.err_errno)


def spawn_method(bytes path, argv, envp, int stdin, int stdout, int stderr,
                 tuple pass_fds, cwd, int flags, int pgroup, int umask,
                 int uid, int gid, groups):
    """See _spawn_c.pyi."""
    cdef _Request r = _Request()
    r.fill(path, argv, envp, stdin, stdout, stderr, pass_fds, cwd, flags,
           pgroup, umask, uid, gid, groups)
    return fs_spawn_method(&r.req)


cdef object _strerror(int err):
    import os
    return os.strerror(err)

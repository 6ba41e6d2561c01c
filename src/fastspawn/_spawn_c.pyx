# cython: language_level=3, boundscheck=False, wraparound=False
"""The compiled fastspawn backend: a thin binding of csrc/fs_spawn.c.

Arguments arrive already encoded and validated (fastspawn._encode); this
module only turns them into the C request, spawns with the GIL released and
converts the result. Interface: _spawn_c.pyi (shared with _spawn_py).
"""
from cpython.buffer cimport PyBUF_SIMPLE, PyObject_GetBuffer, PyBuffer_Release
from cpython.bytes cimport (PyBytes_AS_STRING, PyBytes_FromStringAndSize,
                            PyBytes_GET_SIZE)
from cpython.exc cimport PyErr_CheckSignals, PyErr_SetFromErrno
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from libc.errno cimport EINTR, errno
from libc.string cimport memset
from posix.types cimport gid_t

from ._fs_spawn cimport *
from ._fs_io cimport *

from . import _constants as _k

__all__ = ["FEATURES", "spawn", "spawn_method", "Communicator", "pidfd_wait"]

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


cdef extern from "Python.h":
    int _PyBytes_Resize(PyObject **obj, Py_ssize_t newsize) except -1

# First size of an output buffer; it then doubles. glibc serves big blocks
# with mmap and grows them with mremap, so doubling never copies them.
DEF FIRST_CAPACITY = 32768


cdef class Communicator:
    """communicate() for one child: writes ``input`` to ``stdin_fd`` and
    reads ``stdout_fd``/``stderr_fd`` (-1: none) into bytes objects that
    grow in place and become the results without a final copy.

    ``run(deadline, on_close)`` loops in C with the GIL released until all
    streams are finished (returns True) or time.monotonic() passes
    ``deadline`` (returns False; call again to resume). ``on_close(i)`` is
    called as stream i (0 stdin, 1 stdout, 2 stderr) finishes, so the
    caller can close the file object that owns that fd.
    """
    cdef fs_comm c
    cdef Py_buffer view
    cdef bint has_view
    cdef PyObject *buf[2]
    cdef bint wanted[2]
    cdef readonly bint finished

    def __cinit__(self, int stdin_fd, int stdout_fd, int stderr_fd, input):
        memset(&self.c, 0, sizeof(fs_comm))
        self.buf[0] = NULL
        self.buf[1] = NULL
        self.has_view = False
        self.finished = False
        self.c.fd[0] = stdin_fd
        self.c.fd[1] = stdout_fd
        self.c.fd[2] = stderr_fd
        self.wanted[0] = stdout_fd >= 0
        self.wanted[1] = stderr_fd >= 0
        if stdin_fd >= 0 and input is not None:
            PyObject_GetBuffer(input, &self.view, PyBUF_SIMPLE)
            self.has_view = True
            self.c.in_buf = <const char *>self.view.buf
            self.c.in_len = <size_t>self.view.len
        if fs_comm_start(&self.c) != 0:
            PyErr_SetFromErrno(OSError)

    def __dealloc__(self):
        if self.has_view:
            PyBuffer_Release(&self.view)
        Py_XDECREF(self.buf[0])
        Py_XDECREF(self.buf[1])

    cdef int _grow(self, int k) except -1:
        cdef Py_ssize_t cap = <Py_ssize_t>self.c.cap[k]
        cdef Py_ssize_t new_cap = cap * 2 if cap else FIRST_CAPACITY
        if self.buf[k] == NULL:
            obj = PyBytes_FromStringAndSize(NULL, new_cap)
            self.buf[k] = <PyObject *>obj
            Py_INCREF(obj)
        else:
            _PyBytes_Resize(&self.buf[k], new_cap)
        self.c.out[k] = PyBytes_AS_STRING(<object>self.buf[k])
        self.c.cap[k] = <size_t>new_cap
        return 0

    def run(self, deadline, on_close):
        cdef double dl = -1.0 if deadline is None else <double>deadline
        cdef int ev, err
        while True:
            with nogil:
                ev = fs_communicate(&self.c, dl)
                err = errno
            if ev == FS_COMM_DONE:
                self.finished = True
                return True
            if ev == FS_COMM_TIMEOUT:
                return False
            if ev == FS_COMM_GROW:
                self._grow(self.c.event_stream - 1)
            elif ev == FS_COMM_CLOSED:
                if self.c.event_stream == 0 and self.has_view:
                    PyBuffer_Release(&self.view)
                    self.has_view = False
                on_close(self.c.event_stream)
            elif ev == FS_COMM_EINTR:
                _check_signals()
            else:
                raise OSError(err, _strerror(err))

    @property
    def input_offset(self):
        return self.c.in_off

    def output(self):
        """(stdout, stderr) so far: bytes, or None for a stream not read.
        Once finished, the buffers themselves are returned (no copy)."""
        return (self._take(0), self._take(1))

    cdef object _take(self, int k):
        if not self.wanted[k]:
            return None
        if self.buf[k] == NULL:
            return b""
        if self.finished:
            # Trim in place (realloc shrinks without copying big blocks).
            if self.c.cap[k] != self.c.len[k]:
                _PyBytes_Resize(&self.buf[k], <Py_ssize_t>self.c.len[k])
                self.c.cap[k] = self.c.len[k]
                self.c.out[k] = PyBytes_AS_STRING(<object>self.buf[k])
            return <object>self.buf[k]
        return PyBytes_FromStringAndSize(self.c.out[k], <Py_ssize_t>self.c.len[k])

def pidfd_wait(int pidfd, deadline):
    """Wait (GIL released) until the child behind ``pidfd`` exits: True, or
    False once time.monotonic() passes ``deadline`` (None: no deadline)."""
    cdef double dl = -1.0 if deadline is None else <double>deadline
    cdef int r, err
    while True:
        with nogil:
            r = fs_pidfd_wait(pidfd, dl)
            err = errno
        if r >= 0:
            return r == 1
        if err != EINTR:
            raise OSError(err, _strerror(err))
        _check_signals()


cdef int _check_signals() except -1:
    # Run Python signal handlers; KeyboardInterrupt & co. propagate.
    if PyErr_CheckSignals() != 0:
        return -1
    return 0


cdef object _strerror(int err):
    import os
    return os.strerror(err)

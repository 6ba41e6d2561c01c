# cython: language_level=3, boundscheck=False, wraparound=False
"""The compiled fastspawn backend: a thin binding of csrc/fs_spawn.c.

Arguments arrive already encoded and validated (fastspawn._encode); this
module only turns them into the C request, spawns with the GIL released and
converts the result. Interface: _contract.py (shared with _spawn_py; typed
in _spawn_c.pyi).
"""
cimport cython
from cpython.buffer cimport (PyBUF_SIMPLE, PyObject_CheckBuffer,
                             PyObject_GetBuffer, PyBuffer_Release)
from cpython.bytes cimport (PyBytes_AS_STRING, PyBytes_FromStringAndSize,
                            PyBytes_GET_SIZE)
from cpython.exc cimport PyErr_CheckSignals, PyErr_SetFromErrno
from cpython.mem cimport PyMem_Malloc, PyMem_Free
from cpython.object cimport PyObject, Py_TYPE
from cpython.ref cimport Py_INCREF, Py_XDECREF
from libc.errno cimport EINTR, EINVAL, errno
from libc.string cimport memcpy, memset
from posix.resource cimport rusage
from posix.types cimport gid_t, pid_t
from posix.wait cimport wait4 as c_wait4

from ._fs_spawn cimport *
from ._fs_io cimport *

from . import _constants as _k
from ._comm_py import BUSY_MESSAGE as _BUSY_MESSAGE

__all__ = ["FEATURES", "spawn", "spawn_wait", "spawn_capture", "spawn_method",
           "RawRusage", "wait4", "Communicator", "pidfd_wait",
           "LONE_PIPE_LOOP"]

# _constants.py is generated from the headers this was compiled with
# (scripts/gen_constants.py): refuse to load beside a stale one rather than
# misbehave.
from ._fs_loop cimport *
include "_constants.pxi"
if any(getattr(_k, _name, None) != _value for _name, _value in _C_VALUES):
    raise ImportError("fastspawn: the csrc headers and _constants.py "
                      "disagree (scripts/gen_constants.py)")

FEATURES = fs_features()

# Popen.communicate() of a lone pipe reads it through Communicator: one
# buffer that becomes the result (the file object's read() joins chunks).
LONE_PIPE_LOOP = True


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
    cdef char **paths
    cdef char **argv
    cdef char **envp
    cdef int *pass_fds
    cdef gid_t *groups
    cdef object keep        # Python objects the pointers borrow from

    def __cinit__(self):
        memset(&self.req, 0, sizeof(fs_request))
        self.paths = NULL
        self.argv = NULL
        self.envp = NULL
        self.pass_fds = NULL
        self.groups = NULL

    def __dealloc__(self):
        PyMem_Free(self.paths)
        PyMem_Free(self.argv)
        PyMem_Free(self.envp)
        PyMem_Free(self.pass_fds)
        PyMem_Free(self.groups)

    cdef int fill(self, path, argv, envp, int stdin, int stdout,
                  int stderr, tuple pass_fds, cwd, int flags, int pgroup,
                  int umask, long long uid, long long gid, groups) except -1:
        cdef Py_ssize_t i
        argv = tuple(argv)
        envp = None if envp is None else tuple(envp)
        # One path, or the candidates of a PATH search (tried in order).
        paths = (path,) if type(path) is bytes else tuple(path)
        if not paths:
            raise ValueError("no path to execute")
        self.keep = (paths, argv, envp, cwd)
        self.paths = _to_argv(paths)
        self.req.paths = self.paths
        self.req.n_paths = len(paths)
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


def spawn(path, argv, envp, int stdin, int stdout, int stderr,
          tuple pass_fds, cwd, int flags, int pgroup, int umask, long long uid,
          long long gid, groups):
    """See fastspawn._contract."""
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


# os.wait4()'s result type; fields converted as CPython's resource module
# does (seconds as float for the two times, ints for the rest).
from resource import struct_rusage as _struct_rusage


cdef object _rusage_to_py(const rusage *ru):
    return _struct_rusage((
        ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 0.000001,
        ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 0.000001,
        ru.ru_maxrss, ru.ru_ixrss, ru.ru_idrss, ru.ru_isrss,
        ru.ru_minflt, ru.ru_majflt, ru.ru_nswap, ru.ru_inblock,
        ru.ru_oublock, ru.ru_msgsnd, ru.ru_msgrcv, ru.ru_nsignals,
        ru.ru_nvcsw, ru.ru_nivcsw))


@cython.final
cdef class RawRusage:
    """A wait4() ``struct rusage`` kept as it came from the kernel (one small
    object instead of the seventeen of a struct_rusage); ``value()`` makes
    the resource.struct_rusage, which CompletedProcess does when asked."""
    cdef rusage ru

    def value(self):
        return _rusage_to_py(&self.ru)

    def __reduce__(self):
        return self.value().__reduce__()


cdef RawRusage _raw_rusage(const rusage *ru):
    cdef RawRusage raw = RawRusage.__new__(RawRusage)
    raw.ru = ru[0]
    return raw


cdef tuple _reap(pid_t pid, int waited, int *status, rusage *ru):
    """(status, rusage) of child ``pid`` once reaped, going on from a first
    fs_reap() that gave ``waited``: after an interrupted wait4 the signal
    handlers run here (returning to the interpreter first would run them
    before the caller holds the pid), and an exception one raises
    propagates with the child still running. (0, None) when SIGCHLD is
    ignored and the status was lost."""
    while waited == 0:
        PyErr_CheckSignals()
        with nogil:
            waited = fs_reap(pid, status, ru)
    if waited > 0:
        return (status[0], _raw_rusage(ru))
    return (0, None)


def wait4(pid_t pid, int options):
    """os.wait4() with the rusage kept raw: ``(pid, status, RawRusage)``
    (``(0, 0, None)`` for a WNOHANG wait that found nothing). EINTR is
    retried after the signal handlers ran (PEP 475); other errors raise
    OSError (ChildProcessError for ECHILD) as os.wait4 does."""
    cdef int status = 0, err
    cdef rusage ru
    cdef pid_t got
    while True:
        with nogil:
            got = c_wait4(pid, &status, options, &ru)
            err = errno
        if got >= 0:
            break
        if err != EINTR:
            raise OSError(err, _strerror(err))
        PyErr_CheckSignals()
    if got == 0:
        return (0, 0, None)
    return (got, status, _raw_rusage(&ru))


def spawn_wait(path, argv, envp, int stdin, int stdout, int stderr,
               tuple pass_fds, cwd, int flags, int pgroup, int umask,
               long long uid, long long gid, groups):
    """See fastspawn._contract."""
    cdef _Request r = _Request()
    cdef fs_result res
    cdef rusage ru
    cdef int rc, err, status = 0, waited = 0
    r.fill(path, argv, envp, stdin, stdout, stderr, pass_fds, cwd, flags,
           pgroup, umask, uid, gid, groups)
    with nogil:
        rc = fs_spawn_wait(&r.req, &res, &status, &ru, &waited)
        err = errno
    if rc != 0:
        raise OSError(err, _strerror(err))
    if res.err_step != FS_STEP_OK:
        return (-1, None, None, res.err_step, res.err_errno, None)
    try:
        st, usage = _reap(res.pid, waited, &status, &ru)
    except BaseException as exc:
        # The caller decides the child's fate and re-raises.
        return (res.pid, None, None, FS_STEP_OK, 0, exc)
    return (res.pid, st, usage, FS_STEP_OK, 0, None)


def spawn_method(path, argv, envp, int stdin, int stdout, int stderr,
                 tuple pass_fds, cwd, int flags, int pgroup, int umask,
                 long long uid, long long gid, groups):
    """See fastspawn._contract."""
    cdef _Request r = _Request()
    r.fill(path, argv, envp, stdin, stdout, stderr, pass_fds, cwd, flags,
           pgroup, umask, uid, gid, groups)
    return fs_spawn_method(&r.req)


cdef extern from "Python.h":
    int _PyBytes_Resize(PyObject **obj, Py_ssize_t newsize) except -1

# First size of an output buffer; it then doubles. glibc serves big blocks
# with mmap and grows them with mremap, so doubling never copies them.
DEF FIRST_CAPACITY = 32768


# ---- output buffers: bytes objects the C loops read into -------------------
#
# One stream's buffer is four fields: the bytes object (*buf, NULL: none
# yet) and the loop's view of it (*out, *cap, *length). _PyBytes_Resize
# frees the object when it fails, so every resize goes through these two,
# which then reset the stream to "no buffer": no pointer into freed memory
# is left for a later read, and nothing returns it.

cdef inline void _forget_buffer(char **out, size_t *cap, size_t *length):
    out[0] = NULL
    cap[0] = 0
    length[0] = 0


cdef int _grow_buffer(PyObject **buf, char **out, size_t *cap,
                      size_t *length) except -1:
    """Make room in a full buffer: the first one, or the buffer doubled in
    place. On MemoryError the stream's buffer is gone (what it held is
    lost) and the next growth starts a new one."""
    cdef Py_ssize_t new_cap = (<Py_ssize_t>cap[0] * 2 if cap[0]
                               else FIRST_CAPACITY)
    if buf[0] == NULL:
        obj = PyBytes_FromStringAndSize(NULL, new_cap)
        buf[0] = <PyObject *>obj
        Py_INCREF(obj)
    else:
        try:
            _PyBytes_Resize(buf, new_cap)
        except MemoryError:
            _forget_buffer(out, cap, length)
            raise
    out[0] = PyBytes_AS_STRING(<object>buf[0])
    cap[0] = <size_t>new_cap
    return 0


cdef int _trim_buffer(PyObject **buf, char **out, size_t *cap,
                      size_t *length) except -1:
    """Shrink the buffer to what was read (in place: realloc shrinks big
    blocks without copying), so that it can be the result itself."""
    if cap[0] == length[0]:
        return 0
    try:
        _PyBytes_Resize(buf, <Py_ssize_t>length[0])
    except MemoryError:
        _forget_buffer(out, cap, length)
        raise
    out[0] = PyBytes_AS_STRING(<object>buf[0])
    cap[0] = length[0]
    return 0


cdef class Communicator:
    """Communicator(stdin_fd, stdout_fd, stderr_fd, input)
--

communicate() for one child: writes ``input`` to ``stdin_fd`` and
    reads ``stdout_fd``/``stderr_fd`` (-1: none) into bytes objects that
    grow in place and become the results without a final copy.

    ``run(deadline, on_close)`` loops in C with the GIL released until all
    streams are finished (returns True) or time.monotonic() passes
    ``deadline`` (returns False; call again to resume). ``on_close(i)`` is
    called as stream i (0 stdin, 1 stdout, 2 stderr) finishes, so the
    caller can close the file object that owns that fd; or ``on_close`` is
    the caller's list of the three fds, and a finished stream's fd is
    closed in the loop itself and its slot set to -1.
    """
    cdef fs_comm c
    cdef Py_buffer view
    cdef bint has_view
    cdef PyObject *buf[2]
    cdef bint wanted[2]
    cdef readonly bint finished
    # A run() in progress: a second (communicate() from another thread)
    # raises instead of sharing ``c`` with it.
    cdef readonly bint busy
    # spawn_capture()'s clone child, which may still be in our memory:
    # before run() goes back to Python code (signal handlers may touch
    # os.environ, which the child may be reading), it waits for it to go.
    cdef fs_clone *clone

    def __cinit__(self, int stdin_fd, int stdout_fd, int stderr_fd, input):
        memset(&self.c, 0, sizeof(fs_comm))
        self.buf[0] = NULL
        self.buf[1] = NULL
        self.has_view = False
        self.finished = False
        self.busy = False
        self.clone = NULL
        if stdin_fd >= 0:
            self._take_input(input)
        self._attach(stdin_fd, stdout_fd, stderr_fd)

    cdef int _take_input(self, input) except -1:
        """Hold ``input``'s buffer (None: nothing to write). This may run
        Python code (a __buffer__ method), so spawn_capture() does it before
        the child exists."""
        if input is None:
            return 0
        if not PyObject_CheckBuffer(input):
            # subprocess's message: it takes memoryview(input).
            raise TypeError("memoryview: a bytes-like object is "
                            "required, not '%s'"
                            % (<bytes>Py_TYPE(input).tp_name).decode())
        PyObject_GetBuffer(input, &self.view, PyBUF_SIMPLE)
        self.has_view = True
        self.c.in_buf = <const char *>self.view.buf
        self.c.in_len = <size_t>self.view.len
        return 0

    cdef int _attach(self, int stdin_fd, int stdout_fd,
                     int stderr_fd) except -1:
        """The child's pipes (-1: none); runs no Python code."""
        cdef int err
        self.c.fd[0] = stdin_fd
        self.c.fd[1] = stdout_fd
        self.c.fd[2] = stderr_fd
        self.wanted[0] = stdout_fd >= 0
        self.wanted[1] = stderr_fd >= 0
        if fs_comm_start(&self.c) != 0:
            err = errno
            if self.clone != NULL:
                # Raising allocates (and may run the GC): not beside a
                # clone child that has not left yet.
                with nogil:
                    fs_clone_wait(self.clone)
            raise OSError(err, _strerror(err))
        return 0

    def __dealloc__(self):
        if self.has_view:
            PyBuffer_Release(&self.view)
        Py_XDECREF(self.buf[0])
        Py_XDECREF(self.buf[1])

    cdef int _grow(self, int k) except -1:
        _grow_buffer(&self.buf[k], &self.c.out[k], &self.c.cap[k],
                     &self.c.len[k])
        # What fs_communicate read while the buffer was full (after a
        # failed growth: the first bytes of the next buffer).
        memcpy(self.c.out[k] + self.c.len[k], self.c.spill[k],
               self.c.spill_len[k])
        self.c.len[k] += self.c.spill_len[k]
        self.c.spill_len[k] = 0
        return 0

    def seed(self, int k, data):
        """Begin output ``k`` (0 stdout, 1 stderr) with ``data``, bytes the
        caller already read from that stream (a file object's buffer)."""
        cdef Py_ssize_t n, cap = FIRST_CAPACITY
        if k < 0 or k > 1 or not self.wanted[k]:
            raise ValueError("seed: no such output stream")
        if (self.buf[k] != NULL or self.c.len[k] or self.c.spill_len[k]
                or self.c.cap[k]):
            raise ValueError("seed: the stream has output already")
        n = len(data)
        if n == 0:
            return
        while cap < n:
            cap *= 2
        obj = PyBytes_FromStringAndSize(NULL, cap)
        Py_INCREF(obj)
        self.buf[k] = <PyObject *>obj
        self.c.out[k] = PyBytes_AS_STRING(obj)
        self.c.cap[k] = <size_t>cap
        memcpy(self.c.out[k], PyBytes_AS_STRING(data), n)
        self.c.len[k] = <size_t>n

    cdef int _closed_here(self, list fds) except -1:
        """Bookkeeping for the streams fs_communicate closed itself."""
        cdef int i
        for i in range(3):
            if self.c.closed & (1 << i):
                fds[i] = -1
                if i == 0 and self.has_view:
                    PyBuffer_Release(&self.view)
                    self.has_view = False
        self.c.closed = 0
        return 0

    def run(self, deadline, on_close):
        # The test-and-set is one step: under the GIL by itself, without
        # it (free-threaded builds) in this object's critical section.
        with cython.critical_section(self):
            if self.busy:
                raise RuntimeError(_BUSY_MESSAGE)
            self.busy = True
        try:
            return self._run(deadline, on_close)
        finally:
            self.busy = False

    cdef object _run(self, object deadline, object on_close):
        cdef double dl = _deadline(deadline, False)
        cdef int ev, err
        cdef list fds = None
        if type(on_close) is list:
            # The caller's [stdin, stdout, stderr] fds: each finished one is
            # closed in the loop and its slot set to -1 here.
            fds = <list>on_close
            if len(fds) != 3:
                raise ValueError("on_close: a list of three fds")
            self.c.close_fds = 1
            # Raw pipes the caller made (no pipesize asked for): one that
            # carries a lot may be enlarged.
            self.c.enlarge_pipes = 1
        else:
            self.c.close_fds = 0
            self.c.enlarge_pipes = 0
        while True:
            with nogil:
                ev = fs_communicate(&self.c, dl)
                err = errno
                if self.clone != NULL:
                    # Costs nothing once it has exec'd (a load of 0); a
                    # child fed by stdin alone may not have yet.
                    fs_clone_wait(self.clone)
            if fds is not None:
                self._closed_here(fds)
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
        """(stdout, stderr) so far: bytes, or None for a stream not read
        (or, before the end, one that has given nothing yet, not even EOF).
        Once finished, the buffers themselves are returned (no copy)."""
        return (self._take(0), self._take(1))

    cdef object _take(self, int k):
        if not self.wanted[k]:
            return None
        if (not self.finished and self.c.len[k] == 0
                and self.c.spill_len[k] == 0 and self.c.fd[k + 1] >= 0):
            # Nothing read yet, not even EOF: subprocess's TimeoutExpired
            # carries None then (b"" once the stream has ended).
            return None
        if self.buf[k] == NULL:
            # A small output: all of it is in the spill.
            return PyBytes_FromStringAndSize(self.c.spill[k],
                                             <Py_ssize_t>self.c.spill_len[k])
        if self.finished:
            _trim_buffer(&self.buf[k], &self.c.out[k], &self.c.cap[k],
                         &self.c.len[k])
            return <object>self.buf[k]
        return PyBytes_FromStringAndSize(self.c.out[k], <Py_ssize_t>self.c.len[k])

def spawn_capture(path, argv, envp, int stdin, int stdout, int stderr,
                  tuple pass_fds, cwd, int flags, int pgroup, int umask,
                  long long uid, long long gid, groups, input):
    """See fastspawn._contract."""
    cdef _Request r
    cdef fs_result res
    cdef fs_clone *cl = NULL
    cdef rusage ru
    cdef int rc, err = 0, step, status = 0, waited = 0
    cdef Communicator com
    if flags & FS_WANT_PIDFD:
        raise OSError(EINVAL, _strerror(EINVAL))
    r = _Request()
    r.fill(path, argv, envp, stdin, stdout, stderr, pass_fds, cwd, flags,
           pgroup, umask, uid, gid, groups)
    # Everything that allocates Python objects or may run Python code
    # (input's __buffer__, a GC pass and its finalizers) comes first.
    com = Communicator(-1, -1, -1, None)
    if stdin == FS_STDIO_PIPE:
        com._take_input(input)
    fds = [-1, -1, -1]
    exc = None
    # Linux: the child is a clone beside us (fs_spawn.c). Until it has
    # exec'd it reads ``r`` and os.environ's C array, so no Python code may
    # run on this thread until Communicator.run() has waited for that, and
    # every way out of here first waits for it.
    with nogil:
        rc = fs_spawn_clone(&r.req, &res, &cl)
        err = errno
    if rc == FS_CLONE_UNAVAILABLE:
        with nogil:
            rc = fs_spawn(&r.req, &res)
            err = errno
    if rc != 0:
        raise OSError(err, _strerror(err))
    if res.err_step != FS_STEP_OK:
        return (-1, None, None, None, None, res.err_step, res.err_errno,
                None, None)
    try:
        fds[0] = res.pipes[0]
        fds[1] = res.pipes[1]
        fds[2] = res.pipes[2]
        com.clone = cl
        com._attach(res.pipes[0], res.pipes[1], res.pipes[2])
        com.run(None, fds)
        out, err_out = com.output()
        with nogil:
            waited = fs_reap(res.pid, &status, &ru)
            if cl != NULL:
                if waited == 1:
                    fs_clone_reaped(cl)
                else:
                    fs_clone_wait(cl)     # _reap() may run signal handlers
        st, usage = _reap(res.pid, waited, &status, &ru)
        if cl != NULL:
            fs_clone_reaped(cl)
    except BaseException as e:
        exc = e
    if cl != NULL:
        com.clone = NULL
        with nogil:
            step = fs_clone_left(cl, &err)
        if step != FS_STEP_OK and exc is None:
            # It failed before or at exec (and is reaped): as fs_spawn()
            # reports it. The loop closed every pipe at its EOF.
            return (-1, None, None, None, None, step, err, None, None)
    if exc is not None:
        # The caller decides the child's fate, closes the fds, re-raises.
        return (res.pid, None, None, None, None, FS_STEP_OK, 0, exc, fds)
    return (res.pid, st, usage, out, err_out, FS_STEP_OK, 0, None, None)


def pidfd_wait(int pidfd, deadline):
    """Wait (GIL released) until the child behind ``pidfd`` exits: True, or
    False once time.monotonic() passes ``deadline`` (None: no deadline)."""
    cdef double dl = _deadline(deadline, True)
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


cdef double _deadline(object deadline, bint nan_is_none) except? -2.0:
    """A time.monotonic() deadline as fs_io.c takes it: -1.0 for none
    (None). Any deadline in the past becomes 0.0, however far back: fs_io.c
    reads every negative value as "no deadline" (timeout=-1e9 must expire,
    not block). NaN, which C cannot compare, is subprocess's ValueError
    (from its PollSelector) -- or no deadline, as in subprocess's wait()."""
    cdef double d
    if deadline is None:
        return -1.0
    d = <double>deadline
    if d != d:
        if nan_is_none:
            return -1.0
        raise ValueError("cannot convert float NaN to integer")
    return d if d > 0.0 else 0.0


cdef int _check_signals() except -1:
    # Run Python signal handlers; KeyboardInterrupt & co. propagate.
    if PyErr_CheckSignals() != 0:
        return -1
    return 0


cdef object _strerror(int err):
    import os
    return os.strerror(err)


# ---- run_many()'s event loop (csrc/fs_loop.c) --------------------------------

__all__ = __all__ + ["RunLoop", "LOOP_EXITED", "LOOP_EXPIRED", "LOOP_WAKE",
                     "LOOP_IDLE", "LOOP_NOTIFY"]

#: RunLoop.run() events (_constants.LOOP_*).
LOOP_EXITED = FS_LOOP_EXITED
LOOP_EXPIRED = FS_LOOP_EXPIRED
LOOP_WAKE = FS_LOOP_WAKE
LOOP_IDLE = FS_LOOP_IDLE
LOOP_NOTIFY = FS_LOOP_NOTIFY


cdef class RunLoop:
    """RunLoop(nslots, notify_fd=-1)
--

One poll loop over up to ``nslots`` running children (run_many()).

    ``add(slot, pid, pidfd, stdout_fd, stderr_fd, deadline)`` puts a child
    in a free slot; the loop then owns ``stdout_fd``/``stderr_fd`` (-1:
    none) and closes them at EOF, in ``drop()`` and in ``close()``. The
    pidfd (-1: none; exits are then found with waitid(WNOWAIT) checks)
    stays the caller's, as does reaping.

    ``run(wake)`` loops in C with the GIL released and returns
    ``(LOOP_EXITED, slot)`` once a child has exited and its pipes are
    finished, ``(LOOP_EXPIRED, slot)`` once a slot's ``deadline``
    (time.monotonic() seconds, None: none) passed (reported once),
    ``(LOOP_WAKE, -1)`` once time.monotonic() passes ``wake`` (None: none)
    and ``(LOOP_IDLE, -1)`` when no slot is busy. With a ``notify_fd``
    (-1: none) it returns ``(LOOP_NOTIFY, -1)`` once that fd is readable,
    busy slots or not (the caller drains it): other threads that start
    children wake the loop that way. Output buffers grow in
    place and ``take(slot)`` returns them without a copy, freeing the slot.
    A child reported LOOP_EXITED is reaped here, its wait status left in
    ``reaped`` for the caller (see _contract). Not for use from several
    threads at once.
    """
    cdef fs_loop l
    cdef PyObject **bufs            # 2 per slot: stdout, stderr
    cdef unsigned char *wanted      # 2 per slot
    cdef Py_ssize_t n
    cdef bint running
    cdef Py_ssize_t exited          # LOOP_EXITED slot not reaped yet, -1
    cdef pid_t exited_pid           # ... and its child
    #: {pid: wait status} of the children reported LOOP_EXITED.
    cdef readonly dict reaped

    def __cinit__(self, Py_ssize_t nslots, int notify_fd=-1):
        cdef Py_ssize_t i
        self.reaped = {}
        self.exited = -1
        self.bufs = NULL
        self.wanted = NULL
        self.running = False
        if nslots < 1:
            raise ValueError("nslots must be at least 1")
        if fs_loop_init(&self.l, <size_t>nslots) != 0:
            raise MemoryError()
        self.n = nslots
        self.l.notify_fd = notify_fd
        self.bufs = <PyObject **>PyMem_Malloc(2 * nslots * sizeof(PyObject *))
        self.wanted = <unsigned char *>PyMem_Malloc(2 * nslots)
        if self.bufs == NULL or self.wanted == NULL:
            raise MemoryError()
        for i in range(2 * nslots):
            self.bufs[i] = NULL
            self.wanted[i] = 0

    def __dealloc__(self):
        cdef Py_ssize_t i
        fs_loop_destroy(&self.l)
        if self.bufs != NULL:
            for i in range(2 * self.n):
                Py_XDECREF(self.bufs[i])
            PyMem_Free(self.bufs)
        PyMem_Free(self.wanted)

    cdef int _check(self, Py_ssize_t slot) except -1:
        if self.running:
            raise RuntimeError("RunLoop is running in another thread")
        if self.l.slots == NULL:
            raise ValueError("RunLoop is closed")
        if slot < 0 or slot >= self.n:
            raise IndexError("slot out of range")
        return 0

    def add(self, Py_ssize_t slot, int pid, int pidfd, int stdout_fd,
            int stderr_fd, deadline):
        self._check(slot)
        if self.l.slots[slot].state != FS_SLOT_FREE:
            raise ValueError("slot %d is not free" % slot)
        fs_loop_add(&self.l, <size_t>slot, pid, pidfd, stdout_fd, stderr_fd,
                    _deadline(deadline, True))
        self.wanted[2 * slot] = stdout_fd >= 0
        self.wanted[2 * slot + 1] = stderr_fd >= 0

    def drop(self, Py_ssize_t slot):
        """Close the slot's pipes now; what was read is kept."""
        self._check(slot)
        fs_loop_drop(&self.l, <size_t>slot)

    cdef int _grow(self, size_t slot, int k) except -1:
        cdef fs_slot *s = &self.l.slots[slot]
        return _grow_buffer(&self.bufs[2 * slot + k], &s.out[k], &s.cap[k],
                            &s.len[k])

    cdef int _reap_exited(self) except -1:
        """Reap the child of the LOOP_EXITED slot (it has exited: the wait
        ends at once, unless a signal handler raises -- then the next run()
        comes back here first)."""
        cdef rusage ru
        cdef int status = 0
        st, _ = _reap(self.exited_pid, 0, &status, &ru)
        self.reaped[self.exited_pid] = st
        self.exited = -1
        return 0

    def run(self, wake):
        cdef double dl = _deadline(wake, True)
        cdef int ev, err
        cdef Py_ssize_t slot
        self._check(0)
        if self.exited >= 0:
            slot = self.exited
            self._reap_exited()
            return (FS_LOOP_EXITED, slot)
        while True:
            self.running = True
            with nogil:
                ev = fs_loop_run(&self.l, dl)
                err = errno
            self.running = False
            if ev == FS_LOOP_EXITED:
                slot = <Py_ssize_t>self.l.event_slot
                self.exited = slot
                self.exited_pid = self.l.slots[slot].pid
                self._reap_exited()
                return (ev, slot)
            if ev == FS_LOOP_EXPIRED:
                return (ev, <Py_ssize_t>self.l.event_slot)
            if (ev == FS_LOOP_WAKE or ev == FS_LOOP_IDLE
                    or ev == FS_LOOP_NOTIFY):
                return (ev, -1)
            if ev == FS_LOOP_GROW:
                self._grow(self.l.event_slot, self.l.event_stream)
            elif ev == FS_LOOP_EINTR:
                _check_signals()
            else:
                raise OSError(err, _strerror(err))

    def take(self, Py_ssize_t slot):
        """(stdout, stderr) of a finished slot (bytes, or None for a pipe
        it did not have); the slot is free again."""
        cdef int k
        cdef fs_slot *s
        cdef PyObject **b
        self._check(slot)
        s = &self.l.slots[slot]
        if s.state != FS_SLOT_DONE:
            raise ValueError("slot %d has not finished" % slot)
        if slot == self.exited:
            self._reap_exited()     # its reaping was interrupted
        out = [None, None]
        for k in range(2):
            b = &self.bufs[2 * slot + k]
            if not self.wanted[2 * slot + k]:
                continue
            if b[0] == NULL:
                out[k] = b""
                continue
            _trim_buffer(b, &s.out[k], &s.cap[k], &s.len[k])
            out[k] = <object>b[0]
            Py_XDECREF(b[0])
            b[0] = NULL
        fs_loop_drop(&self.l, <size_t>slot)
        memset(s, 0, sizeof(fs_slot))
        s.state = FS_SLOT_FREE
        s.fd[0] = -1
        s.fd[1] = -1
        return (out[0], out[1])

    def close(self):
        """Close every pipe still open; the loop cannot be used after."""
        if self.running:
            raise RuntimeError("RunLoop is running in another thread")
        fs_loop_destroy(&self.l)

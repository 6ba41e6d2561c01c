"""``fastspawn.run_many()``: run many commands, at most ``jobs`` at a time.

One event loop drives every running child: the backend's ``RunLoop``
(csrc/fs_loop.c, GIL released: poll() over the children's pidfds and
pipes, reading into per-child buffers; the pure twin uses a selector). The
loop returns to Python only when a child is finished (the loop has reaped
it: its status is in ``RunLoop.reaped``), when a per-command timeout
passes, or when a buffer must grow; Python then takes the child's status
and output, puts the next command in its slot and goes back into the loop.
No thread per child, no Popen object per child.

Starting a command blocks until the child has exec()ed (vfork semantics:
hundreds of microseconds), which would make one thread the bottleneck for
short commands. So up to ``_spawners()`` threads (min(jobs, cpus,
MAX_SPAWNERS)) do the starts, hand the children over through a queue and
wake the loop through a pipe (the RunLoop's notify fd); with one CPU or
``jobs=1`` the calling thread starts them itself.
"""
import os
import queue
import signal
import subprocess
import sys
import threading
from time import monotonic
from typing import Any, Iterable, Iterator, List, Mapping, Optional, Sequence

from . import _backend
from ._constants import (
    CLOSE_FDS, LOOP_EXITED as _EXITED, LOOP_EXPIRED as _EXPIRED,
    LOOP_IDLE as _IDLE, LOOP_NOTIFY as _NOTIFY, RESTORE_SIGNALS, WANT_PIDFD,
)
from ._encode import encode_argv
from ._launch import launch
from ._pipeline import _decoder, _encode_cwd, _stdio
from ._popen import _encode_env

__all__ = ["run_many", "run_many_iter", "ManyResult"]

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
_CalledProcessError = subprocess.CalledProcessError
_TimeoutExpired = subprocess.TimeoutExpired

#: At most this many threads start commands at once (never more than
#: os.cpu_count() or jobs; 1: the calling thread starts them itself).
MAX_SPAWNERS = 4

_PIDFD = WANT_PIDFD if sys.platform.startswith("linux") else 0
_FLAGS = CLOSE_FDS | RESTORE_SIGNALS | _PIDFD
_pidfd_send_signal = getattr(signal, "pidfd_send_signal", None)
_to_exitcode = os.waitstatus_to_exitcode
# How often the progress bar is redrawn at most (and at least, for the
# clock), in seconds.
_PROGRESS_EVERY = 0.1


class ManyResult(subprocess.CompletedProcess):
    """The outcome of one command of :func:`run_many`.

    A ``subprocess.CompletedProcess`` (``args``, ``returncode``,
    ``stdout``, ``stderr``, ``check_returncode()``) plus ``index``, the
    command's position in the input, and ``timed_out``: True when the
    command ran past its ``timeout`` and was killed (its ``returncode`` is
    then ``-SIGKILL`` and ``check_returncode()`` raises
    ``subprocess.TimeoutExpired``).
    """

    def __init__(self, args: Any, returncode: int, stdout: Any = None,
                 stderr: Any = None, index: int = 0, timed_out: bool = False,
                 timeout: Optional[float] = None) -> None:
        super().__init__(args, returncode, stdout, stderr)
        self.index = index
        self.timed_out = timed_out
        self._timeout = timeout

    def __repr__(self):
        r = super().__repr__()
        extra = ", index=%d" % self.index
        if self.timed_out:
            extra += ", timed_out=True"
        return r[:-1] + extra + ")"

    @property
    def failed(self) -> bool:
        """True when the command timed out or exited with a non-zero
        status."""
        return self.timed_out or self.returncode != 0

    def error(self) -> Optional[subprocess.SubprocessError]:
        """The exception ``check_returncode()`` raises, or None."""
        if self.timed_out:
            return _TimeoutExpired(self.args, self._timeout,
                                   output=self.stdout, stderr=self.stderr)
        if self.returncode:
            return _CalledProcessError(self.returncode, self.args,
                                       self.stdout, self.stderr)
        return None

    def check_returncode(self) -> None:
        """Raise TimeoutExpired or CalledProcessError if the command
        failed."""
        e = self.error()
        if e is not None:
            raise e


class _Job:
    __slots__ = ("index", "args", "pid", "pidfd", "timed_out")

    def __init__(self, index, args, pid, pidfd):
        self.index = index
        self.args = args
        self.pid = pid
        self.pidfd = pidfd
        self.timed_out = False


def _kill(job):
    try:
        if job.pidfd >= 0 and _pidfd_send_signal is not None:
            _pidfd_send_signal(job.pidfd, signal.SIGKILL)
        else:
            os.kill(job.pid, signal.SIGKILL)   # not reaped yet: still ours
    except ProcessLookupError:
        pass


def _reap(job, reaped):
    status = reaped.pop(job.pid, None)
    if status is None:
        while True:
            try:
                status = os.waitpid(job.pid, 0)[1]
                break
            except ChildProcessError:
                status = 0       # SIGCHLD ignored: status lost (bpo-15756)
                break
            except InterruptedError:   # pragma: no cover - PEP 475 retries
                continue
    if job.pidfd >= 0:
        os.close(job.pidfd)
        job.pidfd = -1
    return status


class _Progress:
    """A one-line progress bar on a terminal; nothing elsewhere."""

    def __init__(self, stream, total):
        self.stream = stream
        self.total = total
        self.done = self.failed = self.running = 0
        self.start = monotonic()
        self.last = 0.0
        self.drawn = False

    @staticmethod
    def wanted(progress):
        """The stream to draw on for ``progress`` (True or a stream), or
        None when it is not a terminal."""
        if not progress:
            return None
        stream = sys.stderr if progress is True else progress
        try:
            if stream is not None and stream.isatty():
                return stream
        except (AttributeError, ValueError, OSError):
            pass
        return None

    def _width(self):
        try:
            return os.get_terminal_size(self.stream.fileno()).columns
        except (AttributeError, ValueError, OSError):
            return 80

    def draw(self, force=False):
        now = monotonic()
        if not force and now - self.last < _PROGRESS_EVERY:
            return
        self.last = now
        tail = " %d/%s" % (self.done, "?" if self.total is None
                           else self.total)
        tail += "  %d running" % self.running
        if self.failed:
            tail += "  %d failed" % self.failed
        tail += "  %.1fs" % (now - self.start)
        width = self._width() - 1
        bar = ""
        if self.total:
            n = max(10, min(40, width - len(tail) - 2))
            full = n * self.done // self.total
            bar = "[" + "#" * full + "-" * (n - full) + "]"
        line = (bar + tail)[:width]
        try:
            self.stream.write("\r" + line + "\x1b[K")
            self.stream.flush()
            self.drawn = True
        except (OSError, ValueError):
            pass

    def close(self):
        self.draw(force=True)
        if self.drawn:
            try:
                self.stream.write("\n")
                self.stream.flush()
            except (OSError, ValueError):
                pass


def _check_jobs(jobs):
    if jobs is None:
        return os.cpu_count() or 1
    if isinstance(jobs, bool) or not isinstance(jobs, int):
        raise TypeError("jobs must be an int or None, not %s"
                        % type(jobs).__name__)
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    return jobs


def _command(cmd, index):
    if isinstance(cmd, (str, bytes)) or not isinstance(cmd, (list, tuple)):
        raise TypeError("run_many: command %d must be a list or tuple of "
                        "arguments, not %s" % (index, type(cmd).__name__))
    if not cmd:
        raise ValueError("run_many: command %d is empty" % index)
    return cmd


class _Runner:
    """The scheduler behind run_many() and run_many_iter()."""

    def __init__(self, commands, jobs, capture_output, stdin, stdout,
                 stderr, timeout, check, fail_fast, cwd, env, text,
                 encoding, errors, progress):
        if capture_output:
            if stdout is not None or stderr is not None:
                raise ValueError("stdout and stderr arguments may not be "
                                 "used with capture_output.")
            stdout = stderr = PIPE
        self.jobs = _check_jobs(jobs)
        self.stdio = (_stdio(stdin, "stdin", allow_pipe=False),
                      _stdio(stdout, "stdout"),
                      _stdio(stderr, "stderr"))
        if timeout is not None:
            timeout = float(timeout)
        self.timeout = timeout
        self.check = check
        self.fail_fast = fail_fast
        self.env = env
        self.envp = None if env is None else _encode_env(env)
        self.cwd = cwd
        self.cwd_b = _encode_cwd(cwd)
        self.decode = _decoder(text, encoding, errors)
        try:
            self.total = len(commands)
        except TypeError:
            self.total = None
        self.commands = iter(commands)
        self.progress_stream = _Progress.wanted(progress)
        self.cancelled = False

    def _prepare(self, cmd, index):
        """Check, audit and encode a command (in the calling thread)."""
        args = _command(cmd, index)
        args_list = list(args)
        sys.audit("subprocess.Popen", args_list[0], args_list, self.cwd,
                  self.env)
        return encode_argv(args_list), args_list[0]

    def _launch(self, cmd, index, prepared):
        """Start a prepared command: (job, stdout_fd, stderr_fd)."""
        argv, name = prepared
        s = self.stdio
        res = launch(argv[0], argv, self.envp, search=True,
                     path_env=self.env, stdin=s[0], stdout=s[1],
                     stderr=s[2], cwd=self.cwd_b, cwd_for_error=self.cwd,
                     flags=_FLAGS, filename=name)
        return _Job(index, cmd, res[0], res[1]), res[3], res[4]

    def _spawner(self, todo, done, wfd):
        """A spawning thread: starts what ``todo`` says, hands the result
        to ``done`` and wakes the loop through ``wfd``."""
        while True:
            item = todo.get()
            if item is None:
                return
            slot, index, cmd, prepared = item
            res = err = None
            if not self.cancelled:
                try:
                    res = self._launch(cmd, index, prepared)
                except BaseException as e:     # handed to the loop thread
                    err = e
            done.put((slot, res, err))
            try:
                os.write(wfd, b"\0")
            except BlockingIOError:
                pass            # the loop is awake already

    def results(self):
        """Yield each ManyResult as its command finishes.

        The commands are started by up to _spawners() threads (the calling
        thread when that is 1): a start blocks until the child has
        exec()ed, and several of those in flight keep more children
        running. The loop -- and everything else -- stays in the calling
        thread; the spawners wake it through a pipe."""
        nslots = self.jobs
        if self.total is not None:
            nslots = max(1, min(nslots, self.total))
        nspawn = _spawners(nslots)
        rfd = wfd = -1
        if nspawn > 1:
            rfd, wfd = os.pipe()
            os.set_blocking(rfd, False)
            os.set_blocking(wfd, False)
        try:
            loop = _backend.impl.RunLoop(nslots, rfd)
        except BaseException:
            if rfd >= 0:
                os.close(rfd)
                os.close(wfd)
            raise
        reaped = loop.reaped
        free = list(range(nslots - 1, -1, -1))
        running = {}
        threads = []
        todo = done = None
        if nspawn > 1:
            todo, done = queue.SimpleQueue(), queue.SimpleQueue()
        pending = 0             # handed to spawners, not collected yet
        orphans = []            # started, never added to the loop
        index = 0
        more = True
        first_failure = None
        prog = None
        if self.progress_stream is not None:
            prog = _Progress(self.progress_stream, self.total)
        wake = None
        timeout = self.timeout
        decode = self.decode

        def deadline():
            return None if timeout is None else monotonic() + timeout

        try:
            while True:
                while more and free:
                    try:
                        cmd = next(self.commands)
                    except StopIteration:
                        more = False
                        break
                    prepared = self._prepare(cmd, index)
                    slot = free.pop()
                    if todo is None:
                        job, out_fd, err_fd = self._launch(cmd, index,
                                                           prepared)
                        running[slot] = job
                        loop.add(slot, job.pid, job.pidfd, out_fd, err_fd,
                                 deadline())
                    else:
                        if pending >= len(threads) < nspawn:
                            t = threading.Thread(
                                target=self._spawner, args=(todo, done, wfd),
                                name="fastspawn-run_many", daemon=True)
                            t.start()
                            threads.append(t)
                        todo.put((slot, index, cmd, prepared))
                        pending += 1
                    index += 1
                if prog is not None:
                    prog.running = len(running)
                    prog.draw()
                    wake = monotonic() + _PROGRESS_EVERY
                if not running and not pending:
                    break
                ev, slot = loop.run(wake)
                if ev == _EXITED:
                    job = running.pop(slot)
                    out, err = loop.take(slot)
                    free.append(slot)
                    rc = _to_exitcode(_reap(job, reaped))
                    if decode is not None:
                        out, err = decode(out), decode(err)
                    r = ManyResult(job.args, rc, out, err, job.index,
                                   job.timed_out, timeout)
                    if prog is not None:
                        prog.done += 1
                        prog.running = len(running)
                        if r.failed:
                            prog.failed += 1
                    if r.failed:
                        if self.fail_fast:
                            more = False
                            raise r.error()
                        if first_failure is None:
                            first_failure = r
                    yield r
                elif ev == _NOTIFY:
                    _drain(rfd)
                    while True:
                        try:
                            slot, res, exc = done.get_nowait()
                        except queue.Empty:
                            break
                        pending -= 1
                        if exc is not None:
                            free.append(slot)
                            raise exc
                        job, out_fd, err_fd = res
                        running[slot] = job
                        loop.add(slot, job.pid, job.pidfd, out_fd, err_fd,
                                 deadline())
                elif ev == _EXPIRED:
                    job = running[slot]
                    job.timed_out = True
                    _kill(job)
                    # A grandchild may hold the pipes open: stop reading.
                    loop.drop(slot)
                elif ev == _IDLE:   # pragma: no cover - running is empty
                    break
        finally:
            if threads:
                # Nothing new starts; what is in flight finishes, then the
                # threads stop and every child they started is collected.
                self.cancelled = True
                for _ in threads:
                    todo.put(None)
                for t in threads:
                    t.join()
                while True:
                    try:
                        slot, res, exc = done.get_nowait()
                    except queue.Empty:
                        break
                    if res is not None:
                        job, out_fd, err_fd = res
                        orphans.append(job)
                        for fd in (out_fd, err_fd):
                            if fd >= 0:
                                os.close(fd)
            for job in running.values():
                _kill(job)
            for job in orphans:
                _kill(job)
            loop.close()
            for job in running.values():
                _reap(job, reaped)
            for job in orphans:
                _reap(job, reaped)
            if rfd >= 0:
                os.close(rfd)
                os.close(wfd)
            if prog is not None:
                prog.running = 0
                prog.close()
        if self.check and first_failure is not None:
            raise first_failure.error()


def _drain(fd):
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _spawners(nslots):
    """How many threads start commands for a loop of ``nslots`` slots."""
    return max(1, min(nslots, os.cpu_count() or 1, MAX_SPAWNERS))


def _runner(commands, jobs, kw):
    return _Runner(commands, jobs, **kw)


def run_many(commands: Iterable[Sequence[Any]], jobs: Optional[int] = None,
             *, capture_output: bool = False, stdin: Any = DEVNULL,
             stdout: Any = None, stderr: Any = None,
             timeout: Optional[float] = None, check: bool = False,
             fail_fast: bool = False, cwd: Any = None,
             env: Optional[Mapping[Any, Any]] = None,
             text: Optional[bool] = None, encoding: Optional[str] = None,
             errors: Optional[str] = None,
             progress: Any = False) -> List["ManyResult"]:
    """Run every command of ``commands`` (an iterable of argument lists,
    consumed lazily), at most ``jobs`` at a time (default:
    ``os.cpu_count()``), and return their :class:`ManyResult` objects in
    input order.

    One event loop (in C, with the GIL released) waits for all running
    children at once and reads their output; a slot that frees up gets the
    next command at once.

    ``capture_output``/``stdout``/``stderr``/``cwd``/``env``/``text``/
    ``encoding``/``errors`` apply to every command and mean what they mean
    for ``subprocess.run``. ``stdin`` defaults to ``DEVNULL`` (as with
    ``xargs``: parallel commands must not compete for the terminal);
    ``None`` inherits it. There is no ``input``.

    ``timeout`` applies to each command, counted from its start: one that
    runs longer is killed (SIGKILL) and reported with ``timed_out=True``.

    Failures (a non-zero exit or a timeout):

    * by default every command runs and the failures are in the results;
    * ``check=True`` raises, once every command finished, the
      ``CalledProcessError``/``TimeoutExpired`` of the first failing
      command (in input order); its ``results`` attribute holds every
      result, in input order;
    * ``fail_fast=True`` raises at the first failure: the running commands
      are killed, no new one starts; ``results`` holds those finished.

    A command that cannot be started (a missing program, a bad ``cwd``)
    raises its ``OSError`` at once, as ``xargs`` stops; a command that is
    not a non-empty list/tuple raises ``TypeError``/``ValueError``. Either
    way the running commands are killed and reaped first.

    ``progress=True`` draws a progress bar on stderr when it is a terminal
    (nothing otherwise); a text stream may be given instead of True.
    """
    runner = _runner(commands, jobs, dict(
        capture_output=capture_output, stdin=stdin, stdout=stdout,
        stderr=stderr, timeout=timeout, check=False, fail_fast=fail_fast,
        cwd=cwd, env=env, text=text, encoding=encoding, errors=errors,
        progress=progress))
    done = []
    try:
        for r in runner.results():
            done.append(r)
    except (_CalledProcessError, _TimeoutExpired) as e:
        done.sort(key=_by_index)
        e.results = done
        raise
    done.sort(key=_by_index)
    if check:
        for r in done:
            if r.failed:
                e = r.error()
                e.results = done
                raise e
    return done


def _by_index(r):
    return r.index


def run_many_iter(commands: Iterable[Sequence[Any]],
                  jobs: Optional[int] = None, *,
                  capture_output: bool = False, stdin: Any = DEVNULL,
                  stdout: Any = None, stderr: Any = None,
                  timeout: Optional[float] = None, check: bool = False,
                  fail_fast: bool = False, cwd: Any = None,
                  env: Optional[Mapping[Any, Any]] = None,
                  text: Optional[bool] = None,
                  encoding: Optional[str] = None,
                  errors: Optional[str] = None,
                  progress: Any = False) -> Iterator["ManyResult"]:
    """Like :func:`run_many`, but an iterator that yields each
    :class:`ManyResult` as its command finishes (``result.index`` tells
    which it was).

    Arguments are checked at once; commands start at the first ``next()``.
    With ``check=True`` the first failure (in completion order) is raised
    after the last result was yielded; with ``fail_fast=True`` it is
    raised instead of being yielded. Closing the iterator early (``break``
    out of a ``for`` loop, or ``close()``) kills and reaps the commands
    still running.
    """
    runner = _runner(commands, jobs, dict(
        capture_output=capture_output, stdin=stdin, stdout=stdout,
        stderr=stderr, timeout=timeout, check=check, fail_fast=fail_fast,
        cwd=cwd, env=env, text=text, encoding=encoding, errors=errors,
        progress=progress))
    return runner.results()

"""Stress: many threads spawning at once, mixing captures, stdin input,
timeouts, errors and every spawn mechanism, while other threads hold the
GIL in pure-Python loops and one thread os.fork()s now and then (its child
exits at once). Every output must be right, nothing may deadlock, and at
the end no fd may have been added and no child left behind.

The quick variant (4 threads x 50 spawns) runs with the normal suite; the
full one (8 threads x 2,000 spawns) is marked ``stress`` and deselected
unless FASTSPAWN_STRESS=1 (or ``-m stress``):

    FASTSPAWN_STRESS=1 python -m pytest -q -m stress tests/test_stress.py
"""
import collections
import errno
import faulthandler
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import warnings

import pytest

import fastspawn
from fastspawn import _comm_py
from fastspawn import _constants as K
from fastspawn._launch import launch
from fsfault import children, fds_exhausted, open_fds

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
STDOUT = subprocess.STDOUT

pytestmark = pytest.mark.filterwarnings(
    # 3.12+: "This process is multi-threaded, use of fork() may lead to
    # deadlocks in the child." -- the forked child only calls os._exit().
    "ignore:.*fork.*:DeprecationWarning")


def _payload(rng):
    n = rng.choice((0, 1, 4096, 65536, 65537, rng.randrange(1 << 17)))
    return rng.randbytes(n) if hasattr(rng, "randbytes") else os.urandom(n)


# ---------------------------------------------------------------------------
# the operations; each checks its own result and raises AssertionError


def op_run_capture(rng, tok):
    r = fastspawn.run(["echo", tok], capture_output=True)
    assert (r.returncode, r.stdout, r.stderr) == (0, tok.encode() + b"\n",
                                                  b""), r


def op_run_input(rng, tok):
    data = _payload(rng)
    r = fastspawn.run(["cat"], input=data, capture_output=True,
                      timeout=60 if rng.random() < 0.5 else None)
    assert r.returncode == 0 and r.stdout == data and r.stderr == b""


def op_popen_communicate(rng, tok):
    data = _payload(rng)
    p = fastspawn.Popen(["sh", "-c", "cat; echo %s >&2" % tok], stdin=PIPE,
                        stdout=PIPE, stderr=PIPE)
    out, err = p.communicate(data, timeout=60)
    assert (p.returncode, out, err) == (0, data, tok.encode() + b"\n")


def op_check_output_text(rng, tok):
    out = fastspawn.check_output(["printf", "%s\\r\\nx\\ry" % tok],
                                 text=True)
    assert out == "%s\nx\ny" % tok, out


def op_merged(rng, tok):
    r = fastspawn.run(["sh", "-c", "echo %s; echo %s >&2" % (tok, tok)],
                      stdout=PIPE, stderr=STDOUT)
    assert r.stdout == (tok.encode() + b"\n") * 2


def op_timeout(rng, tok):
    try:
        fastspawn.run(["sleep", "10"], capture_output=True, timeout=0.05)
    except subprocess.TimeoutExpired as e:
        assert e.timeout == 0.05
    else:
        raise AssertionError("no timeout")


def op_communicate_timeout_resume(rng, tok):
    p = fastspawn.Popen(["sh", "-c", "sleep 0.05; echo %s" % tok],
                        stdout=PIPE)
    try:
        out, _ = p.communicate(timeout=0.001)
    except subprocess.TimeoutExpired:
        out, _ = p.communicate(timeout=60)
    assert out == tok.encode() + b"\n" and p.returncode == 0


def op_wait_timeout(rng, tok):
    p = fastspawn.Popen(["sleep", "0.01"])
    assert p.wait(timeout=60) == 0


def op_kill(rng, tok):
    p = fastspawn.Popen(["sleep", "10"], stdout=DEVNULL)
    p.kill()
    assert p.wait(timeout=60) == -signal.SIGKILL


def op_missing(rng, tok):
    try:
        fastspawn.run(["/nonexistent/prog-" + tok], capture_output=True)
    except FileNotFoundError as e:
        assert e.filename == "/nonexistent/prog-" + tok
    else:
        raise AssertionError("no error")


def op_not_on_path(rng, tok):
    try:
        fastspawn.Popen(["no-such-program-" + tok], stdout=PIPE)
    except FileNotFoundError as e:
        assert e.errno == errno.ENOENT
    else:
        raise AssertionError("no error")


def op_bad_cwd(rng, tok):
    try:
        fastspawn.Popen(["true"], cwd="/nonexistent/" + tok, stdout=PIPE)
    except FileNotFoundError as e:
        assert e.filename == "/nonexistent/" + tok
    else:
        raise AssertionError("no error")


def op_exit_code(rng, tok):
    code = rng.randrange(256)
    r = fastspawn.run(["sh", "-c", "exit %d" % code])
    assert r.returncode == code
    try:
        fastspawn.check_call(["sh", "-c", "exit %d" % code])
    except subprocess.CalledProcessError as e:
        assert code != 0 and e.returncode == code
    else:
        assert code == 0


def op_vfork_path(rng, tok):
    # umask: the C backend's vfork child / the pure backend's fork_exec
    p = fastspawn.Popen(["sh", "-c", "umask; echo %s" % tok], stdout=PIPE,
                        umask=0o27)
    out, _ = p.communicate(timeout=60)
    assert out == b"0027\n" + tok.encode() + b"\n", out


def op_pass_fds(rng, tok):
    r, w = os.pipe()
    try:
        try:
            p = fastspawn.Popen(
                ["sh", "-c", "echo %s > /proc/self/fd/%d" % (tok, w)],
                pass_fds=[w], close_fds=True)
        finally:
            os.close(w)
        assert p.wait(timeout=60) == 0
        assert os.read(r, 100) == tok.encode() + b"\n"
    finally:
        os.close(r)


def op_spawnv(rng, tok):
    assert fastspawn.spawnv(fastspawn.P_WAIT, "/bin/sh",
                            ["sh", "-c", "exit 3"]) == 3
    pid = fastspawn.spawnvp(fastspawn.P_NOWAIT, "true", ["true"])
    assert os.waitpid(pid, 0)[1] == 0


def op_system(rng, tok):
    assert fastspawn.system("exit 2") == 2 << 8


def op_large_output(rng, tok):
    n = rng.randrange(1 << 18, 1 << 20)
    r = fastspawn.run(["head", "-c", str(n), "/dev/zero"],
                      capture_output=True)
    assert r.stdout == bytes(n)


def op_launch_each_mechanism(rng, tok):
    # The public API takes the backend's default mechanism; drive the
    # others (posix_spawn where it fits, a forced vfork) through the
    # launch layer with pipes, a pidfd and close_fds.
    flags = K.CLOSE_FDS | K.WANT_PIDFD | rng.choice(
        (K.PREFER_POSIX_SPAWN, K.FORCE_VFORK, 0))
    res = launch(b"sh", [b"sh", b"-c", b"cat; echo %s >&2" % tok.encode()],
                 None, search=True, stdin=K.STDIO_PIPE, stdout=K.STDIO_PIPE,
                 stderr=K.STDIO_PIPE, flags=flags)
    pid, pidfd, w, r1, r2 = res[:5]
    try:
        data = _payload(rng)[:60000]        # fits in the pipe: no deadlock
        os.write(w, data) if data else None
        os.close(w)
        w = -1
        out = _read_all(r1)
        err = _read_all(r2)
    finally:
        for fd in (w, r1, r2, pidfd):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        status = os.waitpid(pid, 0)[1]
    assert (status, out, err) == (0, data, tok.encode() + b"\n")


def _read_all(fd):
    chunks = []
    while True:
        b = os.read(fd, 65536)
        if not b:
            return b"".join(chunks)
        chunks.append(b)


def op_popen_os(rng, tok):
    with fastspawn.popen("echo %s" % tok) as f:
        assert f.read() == tok + "\n"


OPS = [
    (op_run_capture, 10), (op_run_input, 8), (op_popen_communicate, 8),
    (op_check_output_text, 4), (op_merged, 3), (op_timeout, 1),
    (op_communicate_timeout_resume, 1), (op_wait_timeout, 2), (op_kill, 2),
    (op_missing, 3), (op_not_on_path, 2), (op_bad_cwd, 2),
    (op_exit_code, 3), (op_vfork_path, 3), (op_pass_fds, 2), (op_spawnv, 2),
    (op_system, 1), (op_large_output, 1), (op_popen_os, 1),
    (op_launch_each_mechanism, 4),
]


# ---------------------------------------------------------------------------
# the harness


def stress(nthreads, per_thread, hogs=2, fork_every=0.02, limit=600,
           seed=None):
    """Run the mix; returns a summary dict. Fails on any wrong result,
    hang (no progress for ``limit`` seconds), fd growth or child left."""
    seed = random.randrange(1 << 30) if seed is None else seed
    base_fds = open_fds()
    funcs = [f for f, _ in OPS]
    weights = [w for _, w in OPS]
    errors = []
    counts = collections.Counter()
    lock = threading.Lock()
    stop = threading.Event()
    forks = [0]
    progress = [time.monotonic()]

    def worker(tid):
        rng = random.Random(seed * 1000 + tid)
        for i in range(per_thread):
            f = rng.choices(funcs, weights)[0]
            tok = "t%dx%d" % (tid, i)
            try:
                f(rng, tok)
            except BaseException:
                with lock:
                    errors.append("%s (seed %d, thread %d, #%d):\n%s" % (
                        f.__name__, seed, tid, i, traceback.format_exc()))
            with lock:
                counts[f.__name__] += 1
                progress[0] = time.monotonic()

    def hog():
        x = 0
        while not stop.is_set():
            for j in range(20000):      # pure Python: holds the GIL
                x += j * j

    def forker():
        while not stop.is_set():
            pid = os.fork()
            if pid == 0:  # pragma: no cover - child
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            assert status == 0
            forks[0] += 1
            stop.wait(fork_every)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        helpers = [threading.Thread(target=hog, daemon=True)
                   for _ in range(hogs)]
        if fork_every is not None:
            helpers.append(threading.Thread(target=forker, daemon=True))
        workers = [threading.Thread(target=worker, args=(t,), daemon=True)
                   for t in range(nthreads)]
        t0 = time.monotonic()
        for t in helpers + workers:
            t.start()
        try:
            for t in workers:
                while t.is_alive():
                    t.join(1.0)
                    if time.monotonic() - progress[0] > limit:
                        raise AssertionError(
                            "no progress for %ds: deadlock?\n%s"
                            % (limit, _all_stacks()))
        finally:
            stop.set()
            for t in helpers:
                t.join(30)
        elapsed = time.monotonic() - t0
    assert not errors, "%d failures, first:\n%s" % (len(errors), errors[0])
    assert sum(counts.values()) == nthreads * per_thread
    assert open_fds() == base_fds, sorted(open_fds() - base_fds)
    kids = children()
    assert kids == [], kids
    return {"spawn_ops": sum(counts.values()), "forks": forks[0],
            "elapsed": elapsed, "counts": dict(counts), "seed": seed}


def _all_stacks():
    with tempfile.TemporaryFile("w+") as f:
        faulthandler.dump_traceback(f, all_threads=True)
        f.seek(0)
        return f.read()


def _report(summary, capsys=None):
    line = ("stress: %(spawn_ops)d operations, %(forks)d forks in "
            "%(elapsed).1fs (seed %(seed)d)" % summary)
    sys.stderr.write(line + "\n")
    return line


# ---------------------------------------------------------------------------


def test_stress_quick():
    """4 threads x 50 operations (normal suite)."""
    s = stress(4, 50)
    _report(s)
    assert s["forks"] > 0


@pytest.mark.stress
def test_stress_full():
    """8 threads x 2,000 operations, 2 GIL hogs, a forking thread."""
    s = stress(8, 2000, limit=120)
    _report(s)
    assert s["forks"] > 0
    # Every kind of operation ran many times.
    assert min(s["counts"].values()) > 100, s["counts"]


@pytest.mark.stress
def test_stress_full_with_fd_pressure():
    """Many threads around a low fd limit: EMFILE is the only failure
    allowed, and nothing leaks."""
    base = open_fds()
    results = collections.Counter()
    lock = threading.Lock()

    def worker(tid):
        mine = collections.Counter()    # += on a shared one loses counts
        for i in range(300):            # without a GIL (3.13t)
            try:
                r = fastspawn.run(["cat"], input=b"%d" % i,
                                  capture_output=True, timeout=60)
                assert r.stdout == b"%d" % i
                mine["ok"] += 1
            except OSError as e:
                assert e.errno == errno.EMFILE, e
                mine["emfile"] += 1
        with lock:
            results.update(mine)

    # 28 free fds for 8 threads that need up to 7 each (3 pipes, a pidfd).
    with fds_exhausted(28):
        threads = [threading.Thread(target=worker, args=(t,))
                   for t in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert not any(t.is_alive() for t in threads)
    assert open_fds() == base
    assert sum(results.values()) == 8 * 300
    assert results["ok"] > 0 and results["emfile"] > 0, dict(results)
    sys.stderr.write("fd pressure: %r\n" % dict(results))


# ---------------------------------------------------------------------------
# shared state under threads: what a free-threaded build (3.13t/3.14t) runs
# without the GIL's help, exercised on every version -- the install() swap,
# the PATH-candidate caches (many PATHs, so they are cleared under load),
# one Popen waited for, polled and signalled from several threads at once,
# and communicate() entered twice at once.


def _shared_state_stress(nthreads, per_thread, seed):
    import shutil
    dirs = [os.path.dirname(shutil.which(p)) for p in ("sh", "echo")]
    base = os.pathsep.join(sorted(set(dirs)))
    errors = []
    lock = threading.Lock()
    stop = threading.Event()
    swaps = [0]

    def swapper():
        while not stop.is_set():
            fastspawn.install()
            fastspawn.uninstall()
            swaps[0] += 1

    def shared_popen(rng, tok):
        p = fastspawn.Popen(["sh", "-c", "sleep 0.0%d" % rng.randrange(5)])
        codes = []

        def waiter(how):
            if how == "wait":
                codes.append(p.wait(timeout=60))
            elif how == "poll":
                while p.poll() is None:
                    time.sleep(0.001)
                codes.append(p.returncode)
            else:
                p.send_signal(0)    # alive or reaped: never an error
                codes.append(p.wait())
        ts = [threading.Thread(target=waiter, args=(how,))
              for how in ("wait", "poll", "signal", "wait")]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        assert codes == [0, 0, 0, 0], codes
        assert p.rusage is not None

    def swapped_subprocess(rng, tok):
        # subprocess itself, fastspawn swapped in or out meanwhile: the
        # result is the same either way.
        out = subprocess.run(["echo", tok], stdout=PIPE).stdout
        assert out == tok.encode() + b"\n"

    def many_paths(rng, tok):
        # A PATH of its own per call (with padding entries): the candidate
        # caches fill and are cleared while other threads read them.
        pad = os.pathsep.join("/nonexistent/%d" % rng.randrange(400)
                              for _ in range(rng.randrange(3)))
        env = {"PATH": pad + os.pathsep + base if pad else base}
        r = fastspawn.run(["echo", tok], env=env, capture_output=True)
        assert r.stdout == tok.encode() + b"\n"
        if rng.random() < 0.3:
            old = os.environ.get("PATH")
            assert fastspawn.run(["true"]).returncode == 0
            assert os.environ.get("PATH") == old

    def twice_communicate(rng, tok):
        p = fastspawn.Popen(["sh", "-c", "sleep 0.05; echo %s" % tok],
                            stdout=PIPE)
        got = []

        def com():
            try:
                got.append(p.communicate(timeout=60)[0])
            except RuntimeError as e:
                got.append(str(e))
        ts = [threading.Thread(target=com) for _ in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        assert tok.encode() + b"\n" in got, got
        for g in got:
            assert g in (tok.encode() + b"\n",
                         _comm_py.BUSY_MESSAGE), got
        p.wait()

    ops = [shared_popen, swapped_subprocess, many_paths, many_paths,
           twice_communicate]

    def worker(tid):
        rng = random.Random(seed * 1000 + tid)
        for i in range(per_thread):
            f = rng.choice(ops)
            try:
                f(rng, "s%dx%d" % (tid, i))
            except BaseException:
                with lock:
                    errors.append("%s (seed %d, thread %d, #%d):\n%s" % (
                        f.__name__, seed, tid, i, traceback.format_exc()))

    saved = subprocess.Popen, subprocess.run
    base_fds = open_fds()
    helper = threading.Thread(target=swapper, daemon=True)
    workers = [threading.Thread(target=worker, args=(t,))
               for t in range(nthreads)]
    helper.start()
    for t in workers:
        t.start()
    try:
        for t in workers:
            t.join(600)
            assert not t.is_alive(), "hung:\n" + _all_stacks()
    finally:
        stop.set()
        helper.join(30)
        fastspawn.uninstall()
    assert not errors, "%d failures, first:\n%s" % (len(errors), errors[0])
    assert (subprocess.Popen, subprocess.run) == saved
    assert open_fds() == base_fds, sorted(open_fds() - base_fds)
    assert children() == []
    return swaps[0]


def test_shared_state_threads_quick():
    """4 threads x 15 shared-state operations (normal suite)."""
    assert _shared_state_stress(4, 15, random.randrange(1 << 30)) > 0


@pytest.mark.stress
def test_shared_state_threads_full():
    """8 threads x 300 shared-state operations."""
    assert _shared_state_stress(8, 300, random.randrange(1 << 30)) > 0

"""fastspawn.run_many() / run_many_iter(): bounded parallel fan-out on one
event loop (C: csrc/fs_loop.c; pure: a selector). Every test runs on both
backends and must leave no fd open and no child behind."""
import io
import os
import pty
import signal
import subprocess
import sys
import time

import pytest

import fastspawn
from fastspawn import PIPE, STDOUT, DEVNULL, _backend, _runmany
from fastspawn import run_many, run_many_iter

PY = sys.executable


@pytest.fixture(params=["inline", "threads"])
def spawn_mode(request, monkeypatch):
    """Commands started by the calling thread, or by 3 spawner threads
    (whatever os.cpu_count() says)."""
    n = 1 if request.param == "inline" else 3
    monkeypatch.setattr(_runmany, "_spawners", lambda nslots: min(n, nslots))
    return request.param


def test_results_in_input_order(spawn_mode):
    cmds = [["sh", "-c", "sleep 0.%d; echo %d" % (5 - i, i)]
            for i in range(5)]
    rs = run_many(cmds, jobs=5, capture_output=True)
    assert [r.stdout for r in rs] == [b"%d\n" % i for i in range(5)]
    assert [r.index for r in rs] == list(range(5))
    assert [r.args for r in rs] == cmds
    assert all(r.returncode == 0 and not r.timed_out and not r.failed
               for r in rs)
    assert all(isinstance(r, subprocess.CompletedProcess) for r in rs)
    assert "index=0" in repr(rs[0])


def test_iter_yields_in_completion_order(spawn_mode):
    cmds = [["sleep", "0.6"], ["true"], ["sh", "-c", "sleep 0.2"]]
    order = [r.index for r in run_many_iter(cmds, jobs=3)]
    assert order == [1, 2, 0]


def test_empty():
    assert run_many([]) == []
    assert list(run_many_iter(iter([]))) == []


def test_jobs_bound_concurrency(spawn_mode):
    cmds = [["sh", "-c", "date +%s%N; sleep 0.2; date +%s%N"]
            for _ in range(8)]
    t0 = time.monotonic()
    rs = run_many(cmds, jobs=3, capture_output=True, check=True)
    elapsed = time.monotonic() - t0
    events = []
    for r in rs:
        a, b = map(int, r.stdout.split())
        events += [(a, 1), (b, -1)]
    events.sort()
    live = peak = 0
    for _, d in events:
        live += d
        peak = max(peak, live)
    assert peak <= 3
    assert peak >= 2             # it did run in parallel
    assert elapsed < 8 * 0.2     # faster than one at a time


def test_jobs_default_is_cpu_count(monkeypatch):
    seen = []
    real = _backend.impl.RunLoop

    def spy(n, notify_fd=-1):
        seen.append(n)
        return real(n, notify_fd)
    monkeypatch.setattr(_backend.impl, "RunLoop", spy)
    run_many(iter([["true"]] * 3))      # no len(): all slots
    assert seen == [os.cpu_count()]
    run_many([["true"]] * 200, jobs=1000)
    assert seen[-1] == 200


def test_many_short_commands(spawn_mode):
    rs = run_many([["true"]] * 150 + [["false"]], jobs=4)
    assert len(rs) == 151
    assert [r.returncode for r in rs] == [0] * 150 + [1]


def test_generator_consumed_lazily(spawn_mode):
    pulled = []

    def gen():
        for i in range(10):
            pulled.append(i)
            yield ["sleep", "0.05"]
    it = run_many_iter(gen(), jobs=2)
    assert pulled == []               # nothing starts before next()
    first = next(it)
    assert first.returncode == 0
    assert len(pulled) <= 4
    rest = list(it)
    assert len(rest) == 9 and len(pulled) == 10


def test_failures_collected_by_default():
    rs = run_many([["true"], ["sh", "-c", "exit 4"], ["false"], ["true"]])
    assert [r.returncode for r in rs] == [0, 4, 1, 0]
    assert [r.failed for r in rs] == [False, True, True, False]
    with pytest.raises(subprocess.CalledProcessError):
        rs[1].check_returncode()
    assert rs[0].error() is None


def test_check_raises_first_failure_in_input_order(spawn_mode):
    cmds = [["true"], ["sh", "-c", "sleep 0.3; exit 4"],
            ["sh", "-c", "exit 5"], ["true"]]
    with pytest.raises(subprocess.CalledProcessError) as ei:
        run_many(cmds, jobs=4, check=True, capture_output=True)
    e = ei.value
    assert e.returncode == 4 and e.cmd == cmds[1]
    assert [r.returncode for r in e.results] == [0, 4, 5, 0]


def test_iter_check_raises_after_all_results():
    got = []
    with pytest.raises(subprocess.CalledProcessError) as ei:
        for r in run_many_iter([["false"], ["true"], ["true"]], jobs=1,
                               check=True):
            got.append(r.index)
    assert sorted(got) == [0, 1, 2]
    assert ei.value.cmd == ["false"]


def test_fail_fast_kills_the_rest(spawn_mode):
    cmds = [["sleep", "30"], ["sh", "-c", "sleep 0.2; exit 3"],
            ["sleep", "30"], ["true"], ["true"]]
    t0 = time.monotonic()
    with pytest.raises(subprocess.CalledProcessError) as ei:
        run_many(cmds, jobs=2, fail_fast=True)
    assert time.monotonic() - t0 < 5
    assert ei.value.returncode == 3
    assert ei.value.cmd == cmds[1]
    assert ei.value.results == []    # the sleep was killed, not finished
    # conftest: the sleep is killed and reaped; nothing after it started.


def test_fail_fast_iter(spawn_mode):
    it = run_many_iter([["true"], ["false"], ["sleep", "30"]], jobs=1,
                       fail_fast=True)
    assert next(it).index == 0
    with pytest.raises(subprocess.CalledProcessError):
        next(it)


def test_per_command_timeout(spawn_mode):
    t0 = time.monotonic()
    rs = run_many([["sleep", "30"], ["echo", "x"], ["sleep", "30"]],
                  jobs=3, timeout=0.3, capture_output=True)
    assert time.monotonic() - t0 < 5
    assert [r.timed_out for r in rs] == [True, False, True]
    assert rs[0].returncode == -signal.SIGKILL
    assert rs[1].stdout == b"x\n"
    with pytest.raises(subprocess.TimeoutExpired) as ei:
        rs[0].check_returncode()
    assert ei.value.timeout == 0.3


def test_timeout_is_per_command_not_total():
    # 6 commands of 0.2 s, 2 at a time: 0.6 s in total, each < 1 s.
    rs = run_many([["sleep", "0.2"]] * 6, jobs=2, timeout=1.0)
    assert not any(r.timed_out for r in rs)


def test_timeout_check_raises_timeout_expired():
    with pytest.raises(subprocess.TimeoutExpired) as ei:
        run_many([["true"], ["sh", "-c", "echo part; exec sleep 30"]],
                 timeout=0.3, check=True, capture_output=True)
    assert ei.value.output == b"part\n"
    assert len(ei.value.results) == 2


def test_timeout_with_grandchild_holding_the_pipe():
    t0 = time.monotonic()
    rs = run_many([["sh", "-c", "sleep 3 & echo started; exec sleep 30"]],
                  timeout=0.3, capture_output=True)
    assert time.monotonic() - t0 < 2.5
    assert rs[0].timed_out and rs[0].stdout == b"started\n"


def test_big_outputs_from_many_children(spawn_mode):
    n = 1 << 20
    code = "import sys; sys.stdout.buffer.write(bytes([%d]) * %d)"
    rs = run_many([[PY, "-c", code % (i, n + i)] for i in range(6)],
                  jobs=6, capture_output=True)
    for i, r in enumerate(rs):
        assert r.stdout == bytes([i]) * (n + i)
        assert r.stderr == b""


def test_stderr_separate_and_merged():
    cmd = ["sh", "-c", "echo out; echo err >&2"]
    r, = run_many([cmd], capture_output=True)
    assert (r.stdout, r.stderr) == (b"out\n", b"err\n")
    r, = run_many([cmd], stdout=PIPE, stderr=STDOUT)
    assert sorted(r.stdout.split()) == [b"err", b"out"] and r.stderr is None
    r, = run_many([cmd], stdout=DEVNULL, stderr=PIPE)
    assert (r.stdout, r.stderr) == (None, b"err\n")


def test_output_to_file(tmp_path):
    path = tmp_path / "log"
    with open(path, "wb") as f:
        run_many([["echo", "a"], ["echo", "b"]], jobs=1, stdout=f)
    assert path.read_bytes() == b"a\nb\n"


def test_text_mode():
    rs = run_many([["printf", "a\\r\\nb"]], capture_output=True, text=True)
    assert rs[0].stdout == "a\nb" and rs[0].stderr == ""


def test_stdin_default_devnull_and_inherit():
    r, = run_many([["wc", "-c"]], capture_output=True)
    assert r.stdout.strip() == b"0"
    rfd, wfd = os.pipe()
    try:
        os.write(wfd, b"abc")
        os.close(wfd)
        wfd = -1
        r, = run_many([["wc", "-c"]], stdin=rfd, capture_output=True)
        assert r.stdout.strip() == b"3"
    finally:
        os.close(rfd)
        if wfd >= 0:
            os.close(wfd)


def test_cwd_and_env(tmp_path):
    rs = run_many([["sh", "-c", "pwd; echo $FS_Y"]] * 2, cwd=tmp_path,
                  env={"FS_Y": "yy", "PATH": os.environ["PATH"]},
                  capture_output=True)
    real = os.path.realpath(tmp_path).encode()
    assert all(r.stdout.split() == [real, b"yy"] for r in rs)


def test_missing_program_raises_and_kills_running(spawn_mode):
    t0 = time.monotonic()
    with pytest.raises(FileNotFoundError) as ei:
        run_many([["sleep", "30"], ["fastspawn-no-such-prog"], ["true"]],
                 jobs=2)
    assert ei.value.filename == "fastspawn-no-such-prog"
    assert time.monotonic() - t0 < 5


def test_bad_cwd():
    with pytest.raises(FileNotFoundError) as ei:
        run_many([["true"]], cwd="/nonexistent-fs-dir")
    assert ei.value.filename == "/nonexistent-fs-dir"


@pytest.mark.parametrize("bad, exc", [
    ("true", TypeError), (b"true", TypeError), (None, TypeError),
    (3, TypeError), ([], ValueError), (["tr\0ue"], ValueError),
])
def test_bad_command(bad, exc, spawn_mode):
    with pytest.raises(exc):
        run_many([["sleep", "30"], bad], jobs=2)


def test_bad_arguments():
    with pytest.raises(ValueError):
        run_many([["true"]], jobs=0)
    with pytest.raises(TypeError):
        run_many([["true"]], jobs="2")
    with pytest.raises(TypeError):
        run_many([["true"]], jobs=True)
    with pytest.raises(ValueError):
        run_many([["true"]], capture_output=True, stdout=PIPE)
    with pytest.raises(ValueError):
        run_many([["true"]], stdin=PIPE)
    with pytest.raises(TypeError):
        run_many([["true"]], stdout="log.txt")
    with pytest.raises(TypeError):
        run_many(42)
    with pytest.raises(ValueError):            # checked before next()
        run_many_iter([["true"]], jobs=-1)


def test_closing_the_iterator_kills_the_running(spawn_mode):
    it = run_many_iter([["true"], ["sleep", "30"], ["sleep", "30"]],
                       jobs=3)
    t0 = time.monotonic()
    assert next(it).index == 0
    it.close()
    assert time.monotonic() - t0 < 5
    # conftest: both sleeps are killed and reaped.


def test_interrupt_kills_and_reaps(spawn_mode):
    class Boom(Exception):
        pass

    def handler(signum, frame):
        raise Boom()

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    try:
        with pytest.raises(Boom):
            run_many([["sleep", "30"]] * 3, jobs=2, capture_output=True)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_without_pidfds(monkeypatch, spawn_mode):
    # Exits found with waitid(WNOWAIT) polls (old kernels, macOS).
    monkeypatch.setattr(_runmany, "_FLAGS",
                        _runmany._FLAGS & ~fastspawn._constants.WANT_PIDFD)
    t0 = time.monotonic()
    rs = run_many([["sh", "-c", "echo %d" % i] for i in range(20)]
                  + [["sleep", "30"]], jobs=4, capture_output=True,
                  timeout=1.0)
    assert [r.stdout for r in rs[:20]] == [b"%d\n" % i for i in range(20)]
    assert rs[20].timed_out
    assert time.monotonic() - t0 < 5


def test_without_pidfds_or_waitid(monkeypatch):
    # The pure loop's last resort: it reaps, the status is handed over.
    monkeypatch.setattr(_runmany, "_FLAGS",
                        _runmany._FLAGS & ~fastspawn._constants.WANT_PIDFD)
    from fastspawn import _comm_py
    monkeypatch.setattr(_comm_py, "_waitid", None)
    rs = run_many([["sh", "-c", "exit %d" % i] for i in range(6)], jobs=3)
    assert [r.returncode for r in rs] == list(range(6))


def test_progress_silent_when_not_a_tty(capfd):
    run_many([["true"]] * 5, progress=True)
    assert capfd.readouterr().err == ""
    run_many([["true"]] * 2, progress=io.StringIO())


def _pty_stream():
    master, slave = pty.openpty()
    return master, os.fdopen(slave, "w")


def _drain(master):
    data = b""
    os.set_blocking(master, False)
    while True:
        try:
            chunk = os.read(master, 65536)
        except (BlockingIOError, OSError):
            break
        if not chunk:
            break
        data += chunk
    return data


def test_progress_on_a_tty(monkeypatch):
    master, stream = _pty_stream()
    try:
        monkeypatch.setattr(sys, "stderr", stream)
        run_many([["sleep", "0.15"]] * 6 + [["false"]], jobs=3,
                 progress=True)
        out = _drain(master)
    finally:
        stream.close()
        os.close(master)
    assert b"7/7" in out and b"1 failed" in out and b"[" in out
    assert out.endswith(b"\r\n") or out.endswith(b"\n")


def test_progress_unknown_total():
    master, stream = _pty_stream()
    try:
        list(run_many_iter(iter([["true"]] * 3), progress=stream))
        out = _drain(master)
    finally:
        stream.close()
        os.close(master)
    assert b"3/?" in out


def test_runloop_direct_misuse():
    loop = _backend.impl.RunLoop(2)
    try:
        with pytest.raises(IndexError):
            loop.add(5, 1, -1, -1, -1, None)
        with pytest.raises(ValueError):
            loop.take(0)
        assert loop.run(None) == (fastspawn._constants.LOOP_IDLE, -1)
        t = time.monotonic()
        assert loop.run(t) == (fastspawn._constants.LOOP_WAKE, -1)
    finally:
        loop.close()
    with pytest.raises(ValueError):
        _backend.impl.RunLoop(0)


def test_exported():
    assert fastspawn.run_many is run_many
    assert fastspawn.run_many_iter is run_many_iter
    for name in ("run_many", "run_many_iter", "ManyResult"):
        assert name in fastspawn.__all__


def test_spawner_threads_stop(spawn_mode):
    import threading
    before = threading.active_count()
    run_many([["true"]] * 20, jobs=4)
    it = run_many_iter([["sleep", "30"]] * 6, jobs=4)
    it.close()                          # never started: nothing to stop
    it = run_many_iter([["true"]] + [["sleep", "30"]] * 6, jobs=4)
    next(it)
    it.close()
    assert threading.active_count() == before


def test_spawner_error_collects_children_in_flight(monkeypatch):
    # Several starts in flight when one fails: every child started by the
    # other spawner threads is killed and reaped (conftest checks).
    monkeypatch.setattr(_runmany, "_spawners", lambda nslots: 3)
    cmds = [["sleep", "30"]] * 5 + [["fastspawn-no-such-prog"]] + \
        [["sleep", "30"]] * 5
    for _ in range(5):
        with pytest.raises(FileNotFoundError):
            run_many(cmds, jobs=8)


def test_spawners_default(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 16)
    assert _runmany._spawners(2) == 2
    assert _runmany._spawners(100) == _runmany.MAX_SPAWNERS
    monkeypatch.setattr(os, "cpu_count", lambda: None)
    assert _runmany._spawners(100) == 1


def test_runloop_notify_fd():
    r, w = os.pipe()
    loop = _backend.impl.RunLoop(1, r)
    try:
        # No busy slot, but a notify fd: it waits for it (here: the wake).
        t = time.monotonic() + 0.05
        assert loop.run(t) == (fastspawn._constants.LOOP_WAKE, -1)
        os.write(w, b"x")
        assert loop.run(None) == (fastspawn._constants.LOOP_NOTIFY, -1)
        assert loop.run(None) == (fastspawn._constants.LOOP_NOTIFY, -1)   # not drained
        os.read(r, 1)
        assert loop.run(time.monotonic()) == (fastspawn._constants.LOOP_WAKE, -1)
    finally:
        loop.close()
        os.close(r)
        os.close(w)

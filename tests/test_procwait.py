"""_procwait: the deadline waits, including the polling fallback used where
there is neither a pidfd nor kqueue (e.g. PyPy: no os.pidfd_open, and no
os.waitid either, so the fallback reaps with wait4(WNOHANG))."""
import os
import time

import fastspawn
from fastspawn import _procwait


def _start(*argv):
    p = fastspawn.Popen(list(argv))
    pid = p.pid
    # Take the child over: this test reaps it through _procwait.
    p.returncode = 0
    p._fs_close_pidfd()
    return pid


def test_wait_reap_polling_exit(monkeypatch):
    monkeypatch.setattr(_procwait, "EVENT_DRIVEN", False)
    pid = _start("sh", "-c", "exit 3")
    status, rusage = _procwait.wait_reap(pid, -1, time.monotonic() + 10)
    assert os.waitstatus_to_exitcode(status) == 3
    assert rusage.ru_maxrss > 0


def test_wait_reap_polling_timeout(monkeypatch):
    monkeypatch.setattr(_procwait, "EVENT_DRIVEN", False)
    pid = _start("sleep", "5")
    t = time.monotonic()
    assert _procwait.wait_reap(pid, -1, t + 0.1) is None
    assert time.monotonic() - t < 2
    os.kill(pid, 9)
    status, _ = _procwait.wait_reap(pid, -1, None)
    assert os.waitstatus_to_exitcode(status) == -9


def test_wait_reap_child_reaped_elsewhere(monkeypatch):
    monkeypatch.setattr(_procwait, "EVENT_DRIVEN", False)
    pid = _start("true")
    os.waitpid(pid, 0)
    assert _procwait.wait_reap(pid, -1, time.monotonic() + 1) == (0, None)


def test_run_timeout_without_pidfd_or_kqueue(monkeypatch):
    """run(timeout=) on a platform with neither event source."""
    monkeypatch.setattr(_procwait, "EVENT_DRIVEN", False)
    from fastspawn import _fastrun
    monkeypatch.setattr(_fastrun, "_PIDFD", 0)
    assert fastspawn.run(["sh", "-c", "exit 4"], timeout=10).returncode == 4
    t = time.monotonic()
    try:
        fastspawn.run(["sleep", "5"], timeout=0.2)
    except fastspawn.TimeoutExpired as e:
        assert e.timeout == 0.2
    else:
        raise AssertionError("no TimeoutExpired")
    assert time.monotonic() - t < 3

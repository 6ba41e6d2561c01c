"""Resource usage of waited children: CompletedProcess.rusage/.duration and
Popen.rusage/.duration (wait4), on every path that reaps."""
import resource
import subprocess
import sys

import pytest

import fastspawn

BURN = [sys.executable, "-c",
        "import time\nt = time.process_time()\n"
        "while time.process_time() - t < 0.05: pass"]


def _check(usage, duration, min_cpu=0.0):
    assert isinstance(usage, resource.struct_rusage)
    assert usage.ru_utime + usage.ru_stime >= min_cpu
    assert usage.ru_maxrss > 0
    assert isinstance(duration, float) and duration > 0


def test_run_direct_path_has_rusage():
    r = fastspawn.run(BURN, capture_output=True)
    assert isinstance(r, subprocess.CompletedProcess)
    assert type(r) is fastspawn.CompletedProcess
    _check(r.rusage, r.duration, min_cpu=0.04)
    assert r.duration >= 0.04


def test_run_popen_path_has_rusage():
    # bufsize= is not a direct-path argument: the stdlib run() on Popen.
    r = fastspawn.run(BURN, bufsize=-1)
    _check(r.rusage, r.duration, min_cpu=0.04)


def test_run_repr_unchanged():
    r = fastspawn.run(["true"])
    assert repr(r) == "CompletedProcess(args=['true'], returncode=0)"


@pytest.mark.parametrize("how", ["wait", "poll", "communicate", "with"])
def test_popen_rusage_after_reap(how):
    p = fastspawn.Popen(BURN, stdout=subprocess.PIPE)
    assert p.rusage is None and p.duration is None
    if how == "wait":
        p.wait()
        p.stdout.close()
    elif how == "poll":
        p.stdout.read()
        p.stdout.close()
        while p.poll() is None:
            pass
    elif how == "communicate":
        p.communicate()
    else:
        with p:
            pass
    _check(p.rusage, p.duration, min_cpu=0.04)


def test_popen_wait_timeout_then_rusage():
    p = fastspawn.Popen(["sleep", "0.05"])
    assert p.wait(timeout=5) == 0
    _check(p.rusage, p.duration)
    assert p.duration >= 0.04


def test_check_output_and_call_paths():
    assert fastspawn.check_output(["echo", "x"]) == b"x\n"
    assert fastspawn.call(["true"]) == 0

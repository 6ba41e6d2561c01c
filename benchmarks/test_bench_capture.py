"""Capturing output: small (scenario 2), large (scenario 3: 256 MiB through
stdout, through stdout+stderr, and a 64 MiB stdin->stdout round trip),
run() with and without a timeout (scenario 4), and the peak memory of a
512 MiB capture, measured in a fresh interpreter per contender (scenario 7).

The large captures write zeros from a tiny C producer (``head -c`` without a
compiler). "256 MiB through stdout+stderr" is 256 MiB in all, half on each
stream, so both rows move the same number of bytes.
"""
import os
import shutil
import subprocess

import pytest

from fastspawn import _bench

from benchutil import FC, FP, MiB, SP, fastspawn_call, measure, record

ECHO = ["echo", "hi"]


def call(name, make_fs, sp_fn):
    if name == SP:
        return sp_fn
    return fastspawn_call(name, make_fs)


# ---- scenario 2: small capture ----------------------------------------------

@pytest.mark.benchmark(group="2a small capture: run(['echo','hi'], "
                             "capture_output=True)")
@pytest.mark.parametrize("name", [FC, FP, SP])
def test_run_capture_small(benchmark, name):
    fn = call(name, lambda m: lambda: m.run(ECHO, capture_output=True),
              lambda: subprocess.run(ECHO, capture_output=True))
    assert measure(benchmark, fn).stdout == b"hi\n"


@pytest.mark.benchmark(group="2b small capture: check_output(['echo','hi'])")
@pytest.mark.parametrize("name", [FC, FP, SP])
def test_check_output_small(benchmark, name):
    fn = call(name, lambda m: lambda: m.check_output(ECHO),
              lambda: subprocess.check_output(ECHO))
    assert measure(benchmark, fn) == b"hi\n"


@pytest.mark.benchmark(group="2c small capture: popen('echo hi').read()")
@pytest.mark.parametrize("name", [FC, FP, "os.popen"])
def test_popen_small(benchmark, name):
    def read(popen):
        with popen("echo hi") as f:
            return f.read()
    if name == "os.popen":
        fn = lambda: read(os.popen)  # noqa: E731
    else:
        fn = fastspawn_call(name, lambda m: lambda: read(m.popen))
    assert measure(benchmark, fn) == "hi\n"


# ---- scenario 3: large captures ---------------------------------------------

BIG = 256 * MiB
LARGE = {"rounds": 5, "warmup_rounds": 1, "iterations": 1}


def _capture(name, argv, nbytes, **kw):
    fn = call(name, lambda m: lambda: m.run(argv, **kw),
              lambda: subprocess.run(argv, **kw))

    def checked():
        r = fn()
        got = len(r.stdout) + (len(r.stderr) if r.stderr else 0)
        assert got == nbytes and r.returncode == 0
    return checked


@pytest.mark.benchmark(group="3a large capture: 256 MiB through stdout")
@pytest.mark.parametrize("name", [FC, FP, SP])
def test_capture_256m_stdout(benchmark, tools, name):
    fn = _capture(name, tools.producer_argv(BIG, 0), BIG,
                  stdout=subprocess.PIPE)
    measure(benchmark, fn, pedantic=LARGE, nbytes=BIG)


@pytest.mark.benchmark(group="3b large capture: 256 MiB through "
                             "stdout+stderr (128 MiB each)")
@pytest.mark.parametrize("name", [FC, FP, SP])
def test_capture_256m_stdout_stderr(benchmark, tools, name):
    fn = _capture(name, tools.producer_argv(BIG // 2, BIG // 2), BIG,
                  capture_output=True)
    measure(benchmark, fn, pedantic=LARGE, nbytes=BIG)


ROUNDTRIP = 64 * MiB


@pytest.mark.benchmark(group="3c round trip: 64 MiB stdin->stdout "
                             "(cat, communicate)")
@pytest.mark.parametrize("name", [FC, FP, SP])
def test_roundtrip_64m(benchmark, name):
    data = bytes(ROUNDTRIP)
    cat = shutil.which("cat") or "/bin/cat"
    PIPE = subprocess.PIPE

    def make(popen):
        def fn():
            with popen([cat], stdin=PIPE, stdout=PIPE) as p:
                out, _ = p.communicate(data)
            assert len(out) == ROUNDTRIP
        return fn
    fn = call(name, lambda m: make(m.Popen), make(subprocess.Popen))
    measure(benchmark, fn, pedantic=LARGE, nbytes=2 * ROUNDTRIP)


# ---- scenario 4: timeout latency --------------------------------------------

SLEEP = ["sleep", "0.02"]


@pytest.mark.benchmark(group="4 run(['sleep','0.02']) with timeout=5 vs "
                             "without")
@pytest.mark.parametrize("timeout", [None, 5], ids=["no-timeout", "timeout"])
@pytest.mark.parametrize("name", [FC, FP, SP])
def test_run_timeout(benchmark, name, timeout):
    kw = {} if timeout is None else {"timeout": timeout}
    fn = call(name, lambda m: lambda: m.run(SLEEP, **kw),
              lambda: subprocess.run(SLEEP, **kw))
    benchmark.extra_info["timeout"] = timeout
    measure(benchmark, fn, pedantic={"rounds": 30, "warmup_rounds": 2})


# ---- scenario 7: peak memory --------------------------------------------------

PEAK = 512 * MiB


@pytest.mark.parametrize("streams", ["stdout", "stdout+stderr"])
@pytest.mark.parametrize("name", [FC, FP, SP])
def test_peak_rss_512m(benchmark, tools, name, streams):
    """RSS growth of one 512 MiB capture in a fresh interpreter (its VmHWM,
    reset just before; ru_maxrss where /proc is missing), over the output
    size. The benchmark time is the whole child interpreter's."""
    if name == FC and _bench._backend.c_impl is None:
        pytest.skip("the C backend is not built")
    benchmark.group = f"7 peak RSS of a 512 MiB capture ({streams})"
    argv = (tools.producer_argv(PEAK, 0) if streams == "stdout"
            else tools.producer_argv(PEAK // 2, PEAK // 2))
    result = {}

    def fn():
        result.update(_bench.rss_growth(name, argv))
    benchmark.pedantic(fn, rounds=1, iterations=1)
    assert result["output"] == PEAK
    info = benchmark.extra_info
    info["output_bytes"] = PEAK
    info["rss_growth_bytes"] = result["growth"]
    info["rss_growth_over_output"] = result["growth"] / PEAK
    info["capture_wall_s"] = result["wall"]
    info["measured_with"] = result["how"]
    record(benchmark)

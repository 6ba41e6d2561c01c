"""Helpers for the benchmark modules (imported as ``benchutil``: pytest puts
this directory on sys.path, as tests/ does for fsutil)."""
import statistics
import time

import pytest

from fastspawn import _bench

SP, FC, FP = _bench.SP, _bench.FC, _bench.FP
FASTSPAWN = [FC, FP]
MiB, GiB = _bench.MiB, _bench.GiB

#: (group, test name, extra_info) of every benchmark run in this session,
#: for the parent-CPU summary that conftest prints at the end.
RESULTS = []


def fastspawn_call(name, make):
    """The contender ``name`` ("fastspawn-c"/"fastspawn-py") for ``make``
    (fastspawn module -> zero-argument call); skips when not built."""
    fn = _bench.fastspawn_contenders(make).get(name)
    if fn is None:
        pytest.skip(f"{name}: the C backend is not built")
    return fn


def measure(benchmark, fn, pedantic=None, nbytes=None):
    """Benchmark ``fn`` and record the parent's CPU time per call (and,
    with ``nbytes``, the throughput) in extra_info."""
    cpu, wall = [], []
    pt, pc = time.process_time, time.perf_counter

    def timed():
        c0 = pt()
        w0 = pc()
        r = fn()
        wall.append(pc() - w0)
        cpu.append(pt() - c0)
        return r

    if pedantic:
        result = benchmark.pedantic(timed, **pedantic)
    else:
        result = benchmark(timed)
    if cpu:
        info = benchmark.extra_info
        info["parent_cpu_median_us"] = statistics.median(cpu) * 1e6
        info["parent_cpu_mean_us"] = statistics.fmean(cpu) * 1e6
        info["parent_cpu_min_us"] = min(cpu) * 1e6
        info["calls"] = len(cpu)
        if nbytes:
            info["bytes"] = nbytes
            info["throughput_MiBps_median"] = (
                nbytes / _bench.MiB / statistics.median(wall))
    record(benchmark)
    return result


def record(benchmark):
    RESULTS.append((benchmark.group or "", benchmark.name,
                    benchmark.extra_info))

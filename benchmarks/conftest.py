"""Shared fixtures for the pytest-benchmark suite (``pip install .[bench]``).

    python -m pytest benchmarks/                       # wall time, every scenario
    python -m pytest benchmarks/ --benchmark-timer=time.process_time
    python -m pytest benchmarks/test_gate.py           # the gate's self-test only

Each scenario is one benchmark group, so one table shows its contenders side
by side: fastspawn with the C backend ("fastspawn-c"), with the pure one
("fastspawn-py"), subprocess, and where they apply os.spawnv, os.fork +
os.execv, os.posix_spawn, os.system and os.popen. Every benchmark also
records the parent's CPU time per call (time.process_time(): user + system
of the benchmarking process, children excluded) in ``extra_info``
(parent_cpu_median_us, ...), which is what matters where the parent's cost
is the point.

The helper programs (a static ``true``, the C floor, an output producer)
are compiled once per session with ``cc`` (fastspawn._bench.Tools); the
static-``true`` benchmarks skip with the reason when that is impossible.

The regression gate itself is ``python -m fastspawn bench --gate``
(thresholds: benchmarks/gate.toml); test_gate.py shows it can fail.
"""
import os

import pytest

import fastspawn
from fastspawn import _backend, _bench

MiB = _bench.MiB

try:
    import pytest_benchmark  # noqa: F401
except ImportError:  # the CLI and the gate work without it; these do not
    collect_ignore_glob = ["test_bench_*.py"]


def pytest_report_header(config):
    return (f"fastspawn {fastspawn.__version__}, C backend built: "
            f"{_backend.c_impl is not None}, cpus: {os.cpu_count()}")


def pytest_terminal_summary(terminalreporter):
    """pytest-benchmark's tables show wall time; this one shows what the
    parent paid in CPU (and the peak RSS ratios), group by group."""
    import benchutil
    if not benchutil.RESULTS:
        return
    tr = terminalreporter
    tr.section("parent CPU per call (median, time.process_time) and "
               "peak RSS")
    groups = {}
    for group, name, info in benchutil.RESULTS:
        groups.setdefault(group, []).append((name, info))
    for group in sorted(groups):
        tr.write_line(group)
        for name, info in groups[group]:
            if "parent_cpu_median_us" in info:
                v = info["parent_cpu_median_us"]
                extra = (f"  {info['throughput_MiBps_median']:8.0f} MiB/s"
                         if "throughput_MiBps_median" in info else "")
                tr.write_line(f"    {name:60s} {v:10.1f} us{extra}")
            elif "rss_growth_over_output" in info:
                tr.write_line(
                    f"    {name:60s} RSS growth "
                    f"{info['rss_growth_bytes'] / MiB:7.0f} MiB = "
                    f"{info['rss_growth_over_output']:.2f}x output")


@pytest.fixture(scope="session")
def tools(tmp_path_factory):
    return _bench.Tools(str(tmp_path_factory.mktemp("bench-tools")))


@pytest.fixture(scope="session")
def static_true(tools):
    if not tools.static_true:
        pytest.skip("no static `true`: " + "; ".join(tools.notes))
    return tools.static_true


@pytest.fixture(autouse=True)
def _restore_backend():
    saved = _backend.impl
    yield
    _backend.impl = saved

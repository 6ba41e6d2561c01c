"""spawn + wait of /bin/true: fastspawn (C, pure) against os.spawnv,
os.fork+os.execv and subprocess.run, side by side in one table.

    python -m pytest benchmarks/test_bench_spawn.py
    python -m pytest benchmarks/test_bench_spawn.py --benchmark-timer=time.process_time

(the second reports the parent's CPU time, which wall time hides: exec
itself costs hundreds of microseconds on small machines)."""
import os
import subprocess

import pytest

import fastspawn

from conftest import use_backend

TRUE = "/bin/true"
ARGV = ["true"]


def _fork_exec():
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.execv(TRUE, ARGV)
        finally:
            os._exit(127)
    os.waitpid(pid, 0)


CONTENDERS = {
    "fastspawn-c": lambda: fastspawn.spawnv(fastspawn.P_WAIT, TRUE, ARGV),
    "fastspawn-py": lambda: fastspawn.spawnv(fastspawn.P_WAIT, TRUE, ARGV),
    "os.spawnv": lambda: os.spawnv(os.P_WAIT, TRUE, ARGV),
    "fork+execv": _fork_exec,
    "subprocess.run": lambda: subprocess.run(ARGV, executable=TRUE),
}


def _run(benchmark, name):
    fn = CONTENDERS[name]
    backend = {"fastspawn-c": "c", "fastspawn-py": "py"}.get(name)
    if backend is None:
        benchmark(fn)
        return
    with use_backend(backend):
        benchmark(fn)


@pytest.mark.benchmark(group="spawn+wait /bin/true")
@pytest.mark.parametrize("name", list(CONTENDERS))
def test_spawn_wait_true(benchmark, name):
    _run(benchmark, name)


@pytest.fixture(scope="module", params=[0.5, 2.0], ids=["0.5GiB", "2GiB"])
def big_heap(request):
    """A parent with a large resident heap (every page touched)."""
    size = int(request.param * (1 << 30))
    heap = b"\1" * size
    yield heap
    del heap


@pytest.mark.benchmark(group="spawn+wait from a large parent")
@pytest.mark.parametrize("name", ["fastspawn-c", "fastspawn-py", "os.spawnv",
                                  "subprocess.run"])
def test_spawn_wait_big_parent(benchmark, big_heap, name):
    benchmark.extra_info["heap_bytes"] = len(big_heap)
    _run(benchmark, name)

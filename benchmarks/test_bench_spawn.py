"""Spawn + wait: a tiny static binary and /bin/true (scenario 1), from a
parent with a large resident heap (scenario 5), and a fan-out of 200
concurrent Popen (scenario 6).

Each group is one table: fastspawn's C and pure backends against
subprocess, os.spawnv, os.fork+os.execv, os.posix_spawn and os.system,
wherever the call applies. The parent's CPU per call is in extra_info;
``--benchmark-timer=time.process_time`` makes it the measured quantity.
"""
import os
import shutil
import subprocess

import pytest

from fastspawn import _bench

from benchutil import FC, FP, GiB, SP, fastspawn_call, measure

BIN_TRUE = shutil.which("true") or "/bin/true"


def _posix_spawn(path, argv):
    os.waitpid(os.posix_spawn(path, argv, os.environ), 0)


def contender(name, path):
    """The zero-argument call behind a contender id (skips if missing)."""
    argv = [path]
    backend, _, api = name.partition(".")
    if backend in (FC, FP):
        make = {
            "run": lambda m: lambda: m.run(argv),
            "spawnv": lambda m: lambda: m.spawnv(m.P_WAIT, path, argv),
            "system": lambda m: lambda: m.system(path),
        }[api]
        return fastspawn_call(backend, make)
    return {
        SP + ".run": lambda: subprocess.run(argv),
        "os.spawnv": lambda: os.spawnv(os.P_WAIT, path, argv),
        "fork+execv": lambda: _bench.fork_execv(path, argv),
        "os.posix_spawn": lambda: _posix_spawn(path, argv),
        "os.system": lambda: os.system(path),
    }[name]


SPAWN_WAIT = [FC + ".run", FP + ".run", SP + ".run",
              FC + ".spawnv", FP + ".spawnv", "os.spawnv", "fork+execv",
              "os.posix_spawn"]
SYSTEM = [FC + ".system", FP + ".system", "os.system"]


@pytest.mark.benchmark(group="1a spawn+wait: static true (cc -O2 -static)")
@pytest.mark.parametrize("name", SPAWN_WAIT)
def test_spawn_wait_static(benchmark, static_true, name):
    measure(benchmark, contender(name, static_true))


@pytest.mark.benchmark(group="1b spawn+wait: /bin/true")
@pytest.mark.parametrize("name", SPAWN_WAIT)
def test_spawn_wait_bin_true(benchmark, name):
    measure(benchmark, contender(name, BIN_TRUE))


@pytest.mark.benchmark(group="1c system(): /bin/sh -c static true")
@pytest.mark.parametrize("name", SYSTEM)
def test_system_static(benchmark, static_true, name):
    measure(benchmark, contender(name, static_true))


# ---- scenario 5: a parent with a large resident heap ------------------------

HEAPS = [0.5, 1.0, 2.0]


@pytest.fixture(scope="module", params=HEAPS,
                ids=[f"{g:g}GiB" for g in HEAPS])
def big_heap(request):
    """This process with a large resident heap: every page touched."""
    heap = b"\1" * int(request.param * GiB)
    yield heap
    del heap


BIG_PARENT = [FC + ".run", FP + ".run", SP + ".run", "fork+execv",
              "os.spawnv"]


@pytest.mark.parametrize("name", BIG_PARENT)
def test_spawn_wait_big_parent(benchmark, big_heap, static_true, name):
    benchmark.group = (f"5 spawn+wait static true from a "
                       f"{len(big_heap) / GiB:g} GiB parent")
    benchmark.extra_info["heap_bytes"] = len(big_heap)
    measure(benchmark, contender(name, static_true))


# ---- scenario 6: fan-out ------------------------------------------------------

FANOUT = 200


def _fanout(popen, argv):
    procs = [popen(argv) for _ in range(FANOUT)]
    for p in procs:
        p.wait()


@pytest.mark.benchmark(group=f"6 fan-out: {FANOUT} concurrent Popen, then "
                             "wait all")
@pytest.mark.parametrize("name", [FC, FP, SP])
def test_fanout(benchmark, static_true, name):
    argv = [static_true]
    if name == SP:
        fn = lambda: _fanout(subprocess.Popen, argv)  # noqa: E731
    else:
        fn = fastspawn_call(name, lambda m: lambda: _fanout(m.Popen, argv))
    measure(benchmark, fn, pedantic={"rounds": 10, "warmup_rounds": 1})

"""Beyond subprocess: pipelines and parallel fan-out, against what people
write today.

    python -m pytest benchmarks/test_bench_beyond.py
    python -m pytest benchmarks/test_bench_beyond.py -k "not 1GiB"  # no 1 GiB

Groups (one table each):

* ``pipeline stream 1GiB``: ``head -c 1G /dev/zero | cat | wc -c`` through
  fastspawn.pipeline (C and pure backends), ``subprocess.check_output(...,
  shell=True)`` and hand-chained ``subprocess.Popen``. No Python is in the
  data path of any of them: this shows fastspawn adds nothing to it. The
  size is in the test id (``1GiB``; ``FASTSPAWN_BENCH_STREAM_MIB`` changes
  it), 3 rounds. ``fastspawn-c-pipe_size=1MiB`` shows pipeline()'s
  ``pipe_size`` option (Linux: 1 MiB pipes between the stages).
* ``pipeline small``: ``echo | tr | cat`` with capture: the cost of setting
  up and tearing down a 3-stage pipeline.
* ``fan-out 1000 x true``: 1,000 ``/bin/true`` with at most os.cpu_count()
  alive at once: fastspawn.run_many (C and pure) against
  ThreadPoolExecutor + subprocess.run, asyncio.create_subprocess_exec with
  a semaphore, and ``xargs -P``.
* ``fan-out 200 x capture``: 200 ``echo`` with their output captured.

Every benchmark records the parent's CPU time per round
(time.process_time(), children excluded) in ``extra_info``
(``parent_cpu_ms``).
"""
import asyncio
import contextlib
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import fastspawn
from fastspawn import _backend

TRUE = "/bin/true"
JOBS = os.cpu_count() or 1
N_TRUE = 1000
N_CAPTURE = 200
STREAM_MIB = int(os.environ.get("FASTSPAWN_BENCH_STREAM_MIB", "1024"))


@contextlib.contextmanager
def backend(name):
    impl = {"c": _backend.c_impl, "py": _backend.py_impl}[name]
    if impl is None:
        pytest.skip("C backend not built")
    saved = _backend.impl
    _backend.impl = impl
    try:
        yield
    finally:
        _backend.impl = saved


def run(benchmark, fn, rounds, backend_name=None, check=None):
    cpu = []

    def timed():
        c0 = time.process_time()
        r = fn()
        cpu.append(time.process_time() - c0)
        return r

    ctx = backend(backend_name) if backend_name else contextlib.nullcontext()
    with ctx:
        r = benchmark.pedantic(timed, rounds=rounds, iterations=1,
                               warmup_rounds=1 if rounds > 3 else 0)
    cpu.sort()
    benchmark.extra_info["parent_cpu_ms"] = round(cpu[len(cpu) // 2] * 1e3,
                                                  2)
    if check is not None:
        check(r)
    return r


# ---- pipelines --------------------------------------------------------------

def _stream_stages():
    return (["head", "-c", "%dM" % STREAM_MIB, "/dev/zero"], ["cat"],
            ["wc", "-c"])


def _pipeline_fastspawn():
    return fastspawn.pipeline(*_stream_stages(), stdout=subprocess.PIPE,
                              check=True).stdout


def _pipeline_fastspawn_big_pipes():
    return fastspawn.pipeline(*_stream_stages(), stdout=subprocess.PIPE,
                              check=True, pipe_size=1 << 20).stdout


def _pipeline_shell():
    return subprocess.check_output(
        "head -c %dM /dev/zero | cat | wc -c" % STREAM_MIB, shell=True)


def _chain_popen(stages, capture=True, input=None):
    procs = []
    prev = subprocess.PIPE if input is not None else None
    for i, cmd in enumerate(stages):
        last = i == len(stages) - 1
        p = subprocess.Popen(cmd, stdin=prev,
                             stdout=subprocess.PIPE if (not last or capture)
                             else None)
        if procs:
            procs[-1].stdout.close()   # only the next stage holds it now
        procs.append(p)
        prev = p.stdout
    first = procs[0]
    if input is not None:
        first.stdin.write(input)
        first.stdin.close()
    out = procs[-1].stdout.read()
    procs[-1].stdout.close()
    for p in procs:
        if p.wait():
            raise subprocess.CalledProcessError(p.returncode, p.args)
    return out


def _pipeline_popen():
    return _chain_popen(_stream_stages())


STREAM = {
    "fastspawn-c": ("c", _pipeline_fastspawn),
    "fastspawn-py": ("py", _pipeline_fastspawn),
    "fastspawn-c-pipe_size=1MiB": ("c", _pipeline_fastspawn_big_pipes),
    "subprocess-shell": (None, _pipeline_shell),
    "subprocess-Popen-chain": (None, _pipeline_popen),
}


@pytest.mark.benchmark(group="pipeline stream %dMiB" % STREAM_MIB)
@pytest.mark.parametrize("size", ["%dMiB" % STREAM_MIB
                                  if STREAM_MIB != 1024 else "1GiB"])
@pytest.mark.parametrize("name", list(STREAM))
def test_pipeline_stream(benchmark, name, size):
    be, fn = STREAM[name]
    want = STREAM_MIB << 20

    def check(out):
        assert int(out) == want
    run(benchmark, fn, rounds=3, backend_name=be, check=check)
    benchmark.extra_info["MiB_per_s"] = round(
        STREAM_MIB / benchmark.stats.stats.median, 1)


SMALL = (["echo", "hello"], ["tr", "a-z", "A-Z"], ["cat"])


def _small_fastspawn():
    return fastspawn.pipeline(*SMALL, capture_output=True).stdout


def _small_shell():
    return subprocess.run("echo hello | tr a-z A-Z | cat", shell=True,
                          capture_output=True).stdout


def _small_popen():
    return _chain_popen(SMALL)


SMALL_CONTENDERS = {
    "fastspawn-c": ("c", _small_fastspawn),
    "fastspawn-py": ("py", _small_fastspawn),
    "subprocess-shell": (None, _small_shell),
    "subprocess-Popen-chain": (None, _small_popen),
}


@pytest.mark.benchmark(group="pipeline small echo|tr|cat")
@pytest.mark.parametrize("name", list(SMALL_CONTENDERS))
def test_pipeline_small(benchmark, name):
    be, fn = SMALL_CONTENDERS[name]

    def check(out):
        assert out == b"HELLO\n"
    run(benchmark, fn, rounds=30, backend_name=be, check=check)


# ---- fan-out ----------------------------------------------------------------

def _many_fastspawn():
    rs = fastspawn.run_many([[TRUE]] * N_TRUE, jobs=JOBS)
    assert len(rs) == N_TRUE and not any(r.returncode for r in rs)


def _many_threads():
    with ThreadPoolExecutor(JOBS) as ex:
        rs = list(ex.map(lambda _: subprocess.run([TRUE]), range(N_TRUE)))
    assert not any(r.returncode for r in rs)


def _many_asyncio():
    async def main():
        sem = asyncio.Semaphore(JOBS)

        async def one():
            async with sem:
                p = await asyncio.create_subprocess_exec(TRUE)
                return await p.wait()
        return await asyncio.gather(*(one() for _ in range(N_TRUE)))
    rcs = asyncio.run(main())
    assert not any(rcs)


def _many_xargs():
    subprocess.run(["xargs", "-0", "-n", "1", "-P", str(JOBS), TRUE],
                   input=b"x\0" * N_TRUE, check=True)


FANOUT = {
    "fastspawn-run_many-c": ("c", _many_fastspawn),
    "fastspawn-run_many-py": ("py", _many_fastspawn),
    "ThreadPoolExecutor+subprocess.run": (None, _many_threads),
    "asyncio+semaphore": (None, _many_asyncio),
    "xargs -P": (None, _many_xargs),
}


@pytest.mark.benchmark(group="fan-out %d x true, jobs=%d" % (N_TRUE, JOBS))
@pytest.mark.parametrize("name", list(FANOUT))
def test_fanout_true(benchmark, name):
    be, fn = FANOUT[name]
    run(benchmark, fn, rounds=5, backend_name=be)
    benchmark.extra_info["commands_per_s"] = round(
        N_TRUE / benchmark.stats.stats.median)


ECHO = ["echo", "some output line"]


def _cap_fastspawn():
    rs = fastspawn.run_many([ECHO] * N_CAPTURE, jobs=JOBS,
                            capture_output=True)
    assert all(r.stdout == b"some output line\n" for r in rs)


def _cap_threads():
    with ThreadPoolExecutor(JOBS) as ex:
        rs = list(ex.map(lambda _: subprocess.run(ECHO, capture_output=True),
                         range(N_CAPTURE)))
    assert all(r.stdout == b"some output line\n" for r in rs)


def _cap_asyncio():
    async def main():
        sem = asyncio.Semaphore(JOBS)

        async def one():
            async with sem:
                p = await asyncio.create_subprocess_exec(
                    *ECHO, stdout=asyncio.subprocess.PIPE,
                    stderr=asyncio.subprocess.PIPE)
                out, _ = await p.communicate()
                return out
        return await asyncio.gather(*(one() for _ in range(N_CAPTURE)))
    outs = asyncio.run(main())
    assert all(o == b"some output line\n" for o in outs)


CAPTURE = {
    "fastspawn-run_many-c": ("c", _cap_fastspawn),
    "fastspawn-run_many-py": ("py", _cap_fastspawn),
    "ThreadPoolExecutor+subprocess.run": (None, _cap_threads),
    "asyncio+semaphore": (None, _cap_asyncio),
}


@pytest.mark.benchmark(group="fan-out %d x echo captured, jobs=%d"
                       % (N_CAPTURE, JOBS))
@pytest.mark.parametrize("name", list(CAPTURE))
def test_fanout_capture(benchmark, name):
    be, fn = CAPTURE[name]
    run(benchmark, fn, rounds=5, backend_name=be)

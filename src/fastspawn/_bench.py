"""``python -m fastspawn bench``: fastspawn against subprocess, measured here.

Standard library only (no pytest-benchmark): it runs from a plain
``pip install .``. A C compiler (``cc``, or ``$CC``) is used when present for
three tiny helpers -- a static ``true``, a C floor (posix_spawn + waitpid in
a loop, timing itself) and an output producer; without one the rows that
need them are skipped or fall back to /bin/true and ``head -c``, with a note.

Method, everywhere: contenders are interleaved (each round runs every
contender for a small batch, in a rotating order), every call is timed on
its own, and the medians over all rounds are compared. Parent CPU is
``time.process_time()`` (user + system time of this process only: children
are not in it). Ratios are taken between numbers measured in the same run;
absolute numbers go to ``--json`` for trend plots, never to the gate.

Two modes:

* ``python -m fastspawn bench``: a representative subset (well under a
  minute on 2 cores), one table: scenario, subprocess, fastspawn (C),
  fastspawn (pure), ratio (C / subprocess: below 1 means fastspawn is
  cheaper).
* ``python -m fastspawn bench --gate``: the regression gate. Its thresholds
  live in one file, ``benchmarks/gate.toml``; exit status 1 when a
  measured ratio crosses its threshold, 2 on a usage or config error.

The full pytest-benchmark suite lives in ``benchmarks/`` and reuses the
helpers here.
"""
import argparse
import contextlib
import gc
import importlib
import json
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import types
import time

import fastspawn
from fastspawn import _backend

__all__ = ["main", "run_gate", "load_config", "Tools", "Context",
           "interleave", "use_backend"]

MiB = 1 << 20
GiB = 1 << 30

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2

INJECT_ENV = "FASTSPAWN_BENCH_INJECT_DELAY"
CONFIG_ENV = "FASTSPAWN_GATE_CONFIG"

SP, FC, FP = "subprocess", "fastspawn-c", "fastspawn-py"
FLOOR = "c-floor"
FORK_EXEC = "fork+execv"

_pc = time.perf_counter
_pt = time.process_time


# ---------------------------------------------------------------------------
# helper programs, compiled once per run

TRUE_C = "int main(void)\n{\n    return 0;\n}\n"

# The C floor: what spawn + wait costs with nothing on top. It times each
# iteration itself (CLOCK_PROCESS_CPUTIME_ID = this process's user + system
# time, like time.process_time(); CLOCK_MONOTONIC for wall), so its own
# start-up is not counted, and prints the samples in nanoseconds.
FLOOR_C = r"""
#define _GNU_SOURCE
#include <errno.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>

extern char **environ;

static long long now(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
    int n, i, st;
    long long *cpu, *wall;
    char *child[2];
    pid_t pid;
    struct rusage ru;

    if (argc < 3)
        return 2;
    n = atoi(argv[1]);
    child[0] = argv[2];
    child[1] = NULL;
    cpu = malloc(sizeof(long long) * (n + 1));
    wall = malloc(sizeof(long long) * (n + 1));
    if (!cpu || !wall)
        return 2;
    for (i = 0; i < n; i++) {
        long long c0 = now(CLOCK_PROCESS_CPUTIME_ID), w0 = now(CLOCK_MONOTONIC);
        if (posix_spawn(&pid, argv[2], NULL, NULL, child, environ) != 0)
            return 3;
        while (waitpid(pid, &st, 0) < 0)
            if (errno != EINTR)
                return 4;
        wall[i] = now(CLOCK_MONOTONIC) - w0;
        cpu[i] = now(CLOCK_PROCESS_CPUTIME_ID) - c0;
    }
    for (i = 0; i < n; i++)
        printf("%lld%c", cpu[i], i + 1 < n ? ' ' : '\n');
    for (i = 0; i < n; i++)
        printf("%lld%c", wall[i], i + 1 < n ? ' ' : '\n');
    getrusage(RUSAGE_SELF, &ru);
    printf("%ld %ld\n", (long)(ru.ru_utime.tv_sec * 1000000L + ru.ru_utime.tv_usec),
           (long)(ru.ru_stime.tv_sec * 1000000L + ru.ru_stime.tv_usec));
    return 0;
}
"""

# Writes argv[1] zero bytes to stdout and argv[2] to stderr, alternating
# 64 KiB writes, so a reader must drain both pipes at once.
PRODUCER_C = r"""
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

static char buf[65536];

static int put(int fd, long long *left)
{
    size_t k = *left < (long long)sizeof buf ? (size_t)*left : sizeof buf;
    ssize_t r = write(fd, buf, k);
    if (r < 0)
        return errno == EINTR ? 0 : -1;
    *left -= r;
    return 0;
}

int main(int argc, char **argv)
{
    long long out = argc > 1 ? atoll(argv[1]) : 0;
    long long err = argc > 2 ? atoll(argv[2]) : 0;
    while (out > 0 || err > 0) {
        if (out > 0 && put(1, &out) < 0)
            return 1;
        if (err > 0 && put(2, &err) < 0)
            return 1;
    }
    return 0;
}
"""


class Tools:
    """The helper programs, compiled into ``directory`` (a fresh temporary
    directory by default). Any of ``static_true``, ``floor`` and
    ``producer`` is None when it could not be built; ``notes`` says why."""

    def __init__(self, directory=None, *, compile=True):
        self._owned = directory is None
        self.dir = directory or tempfile.mkdtemp(prefix="fastspawn-bench-")
        self.notes = []
        self.cc = self._find_cc() if compile else None
        self.static_true = self.floor = self.producer = None
        if self.cc is None:
            self.notes.append(
                "no C compiler (cc / $CC): static `true` and the C floor are "
                "skipped; /bin/true and `head -c` stand in")
            return
        self.static_true = self._build("static_true", TRUE_C, ["-static"],
                                       "static `true` (cc -static: static "
                                       "libc missing?)")
        self.floor = self._build("c_floor", FLOOR_C, [], "C floor")
        self.producer = self._build("producer", PRODUCER_C, [],
                                    "output producer")

    @staticmethod
    def _find_cc():
        cc = shlex.split(os.environ.get("CC", "") or "cc")
        if not cc or shutil.which(cc[0]) is None:
            return None
        return cc

    def _build(self, name, source, extra, what):
        src = os.path.join(self.dir, name + ".c")
        exe = os.path.join(self.dir, name)
        with open(src, "w") as f:
            f.write(source)
        try:
            r = subprocess.run(self.cc + ["-O2"] + extra + ["-o", exe, src],
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=120)
        except (OSError, subprocess.TimeoutExpired) as e:
            self.notes.append(f"could not build the {what}: {e}")
            return None
        if r.returncode != 0 or not os.access(exe, os.X_OK):
            last = r.stdout.decode(errors="replace").strip().splitlines()
            self.notes.append(f"could not build the {what}: "
                              f"{last[-1] if last else 'cc failed'}")
            return None
        return exe

    @property
    def true(self):
        """The cheapest program to exec: the static true, else /bin/true."""
        return self.static_true or shutil.which("true") or "/bin/true"

    @property
    def true_label(self):
        return "static true" if self.static_true else "/bin/true"

    def producer_argv(self, out, err=0):
        """argv writing ``out`` bytes to stdout and ``err`` to stderr."""
        if self.producer:
            return [self.producer, str(out), str(err)]
        cmd = f"head -c {out} /dev/zero"
        if err:
            cmd += f"; head -c {err} /dev/zero >&2"
        return ["/bin/sh", "-c", cmd]

    def cleanup(self):
        if self._owned:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.cleanup()


# ---------------------------------------------------------------------------
# contenders


def _impl(name):
    return _backend.c_impl if name == "c" else _backend.py_impl


@contextlib.contextmanager
def use_backend(name):
    """Make ``name`` ("c" or "py") fastspawn's live backend in the block."""
    impl = _impl(name)
    if impl is None:
        raise RuntimeError("the C backend is not built")
    saved = _backend.impl
    _backend.impl = impl
    try:
        yield impl
    finally:
        _backend.impl = saved


def spin(seconds):
    """Busy-wait: costs CPU and wall time alike (time.sleep costs no CPU,
    so it could not slow a CPU-time contender)."""
    end = _pc() + seconds
    while _pc() < end:
        pass


def c_available():
    return _backend.c_impl is not None


def fastspawn_contenders(make, delay=0.0):
    """{"fastspawn-c": fn, "fastspawn-py": fn}: ``make(module)`` builds the
    call (``module`` is fastspawn); each switches to its backend first and
    spins ``delay`` seconds (the gate's self-test slows contenders so)."""
    out = {}
    for key, name in ((FC, "c"), (FP, "py")):
        impl = _impl(name)
        if impl is None:
            continue
        fn = make(fastspawn)

        def call(fn=fn, impl=impl):
            if delay:
                spin(delay)
            _backend.impl = impl
            return fn()
        out[key] = call
    return out


def fork_execv(path, argv):
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.execv(path, argv)
        finally:
            os._exit(127)
    os.waitpid(pid, 0)


class BatchContender:
    """A contender that times itself: ``fn(n)`` -> (wall samples, cpu
    samples) in seconds, one per call."""

    def __init__(self, fn):
        self.fn = fn


def floor_contender(tools):
    """The C floor as a BatchContender (None without the compiled floor)."""
    if not tools.floor:
        return None

    def batch(n):
        r = subprocess.run([tools.floor, str(n), tools.true],
                           stdout=subprocess.PIPE, check=True)
        lines = r.stdout.decode().splitlines()
        cpu = [int(x) * 1e-9 for x in lines[0].split()]
        wall = [int(x) * 1e-9 for x in lines[1].split()]
        return wall, cpu
    return BatchContender(batch)


# ---------------------------------------------------------------------------
# measuring


def interleave(contenders, rounds, batch=1, warmup=1):
    """Time every contender ``rounds`` x ``batch`` times, interleaved: each
    round runs each contender ``batch`` times, the order rotating from
    round to round. Returns {name: {"wall": [s...], "cpu": [s...]}}, one
    sample per call (parent CPU = time.process_time())."""
    names = [n for n, f in contenders.items() if f is not None]
    out = {n: {"wall": [], "cpu": []} for n in names}
    for n in names:
        fn = contenders[n]
        for _ in range(warmup):
            if isinstance(fn, BatchContender):
                fn.fn(1)
            else:
                fn()
    for r in range(rounds):
        k = r % len(names) if names else 0
        order = names[k:] + names[:k]
        if r % 2:
            order.reverse()
        for n in order:
            fn = contenders[n]
            wall, cpu = out[n]["wall"], out[n]["cpu"]
            if isinstance(fn, BatchContender):
                w, c = fn.fn(batch)
                wall.extend(w)
                cpu.extend(c)
                continue
            for _ in range(batch):
                c0 = _pt()
                w0 = _pc()
                fn()
                w1 = _pc()
                c1 = _pt()
                wall.append(w1 - w0)
                cpu.append(c1 - c0)
    return out


def summarize(samples, scale=1.0):
    """median / quartiles / n of ``samples`` multiplied by ``scale``."""
    if not samples:
        return None
    s = sorted(x * scale for x in samples)
    n = len(s)
    if n >= 4:
        q1, _, q3 = statistics.quantiles(s, n=4)
    else:
        q1, q3 = s[0], s[-1]
    return {"median": statistics.median(s), "q1": q1, "q3": q3,
            "min": s[0], "n": n}


class Context:
    """What the probes share: the tools, a rounds multiplier, the injected
    delay, progress output, and the rows measured so far."""

    def __init__(self, tools, *, scale=1.0, inject_delay=0.0,
                 progress=None, settings=None):
        self.tools = tools
        self.scale = scale
        self.inject_delay = inject_delay
        self.progress = progress or (lambda msg: None)
        self.settings = dict(settings or {})
        self.rows = {}
        self.notes = list(tools.notes)

    def rounds(self, n):
        return max(2, int(round(n * self.scale)))

    def fs(self, make):
        return fastspawn_contenders(make, self.inject_delay)

    def add(self, rid, scenario, metric, unit, values, *, baseline=SP,
            hidden=False, extra=None):
        row = {"id": rid, "scenario": scenario, "metric": metric,
               "unit": unit, "baseline": baseline,
               "values": {k: v for k, v in values.items() if v is not None},
               "hidden": hidden}
        if extra:
            row["extra"] = extra
        self.rows[rid] = row
        return row

    def add_timed(self, rid, scenario, res, *, metric="wall", unit="us",
                  baseline=SP, hidden=False):
        scale = {"us": 1e6, "ms": 1e3, "s": 1.0}[unit]
        key = "cpu" if metric == "parent CPU" else "wall"
        return self.add(rid, scenario, metric, unit,
                        {n: summarize(v[key], scale) for n, v in res.items()},
                        baseline=baseline, hidden=hidden)


def _median(row, contender):
    if row is None:
        return None
    v = row["values"].get(contender)
    return None if v is None else v["median"]


# ---------------------------------------------------------------------------
# probes: each measures one scenario and adds rows to the context


def probe_spawn(ctx):
    """spawn + wait of the static true: run() for every contender, the C
    floor and fork+execv alongside."""
    t = ctx.tools.true
    argv = [t]
    cont = {SP: lambda: subprocess.run(argv)}
    cont.update(ctx.fs(lambda m: lambda: m.run(argv)))
    cont[FORK_EXEC] = lambda: fork_execv(t, argv)
    cont[FLOOR] = floor_contender(ctx.tools)
    res = interleave(cont, ctx.rounds(15), batch=20, warmup=3)
    label = f"run([{ctx.tools.true_label}])"
    ctx.add_timed("spawn.cpu", label, res, metric="parent CPU")
    ctx.add_timed("spawn.wall", label, res, metric="wall")


def probe_spawnv(ctx):
    """spawnv(P_WAIT, /bin/true): fastspawn's thinnest API against os.spawnv
    (fork + exec in the parent)."""
    path = shutil.which("true") or "/bin/true"
    argv = ["true"]
    cont = {"os.spawnv": lambda: os.spawnv(os.P_WAIT, path, argv)}
    cont.update(ctx.fs(lambda m: lambda: m.spawnv(m.P_WAIT, path, argv)))
    res = interleave(cont, ctx.rounds(10), batch=20, warmup=3)
    label = "spawnv(P_WAIT, /bin/true) [baseline: os.spawnv]"
    ctx.add_timed("spawnv.cpu", label, res, metric="parent CPU",
                  baseline="os.spawnv")
    ctx.add_timed("spawnv.wall", label, res, metric="wall",
                  baseline="os.spawnv", hidden=True)


def probe_capture_small(ctx):
    argv = ["echo", "hi"]
    cont = {"run:" + SP: lambda: subprocess.run(argv, capture_output=True),
            "co:" + SP: lambda: subprocess.check_output(argv)}
    for k, f in ctx.fs(lambda m: lambda: m.run(argv,
                                               capture_output=True)).items():
        cont["run:" + k] = f
    for k, f in ctx.fs(lambda m: lambda: m.check_output(argv)).items():
        cont["co:" + k] = f
    res = interleave(cont, ctx.rounds(15), batch=20, warmup=3)
    for prefix, rid, label in (
            ("run:", "capture_small.run", 'run(["echo","hi"], '
                                         'capture_output=True)'),
            ("co:", "capture_small.check_output",
             'check_output(["echo","hi"])')):
        part = {k[len(prefix):]: v for k, v in res.items()
                if k.startswith(prefix)}
        ctx.add_timed(rid + ".cpu", label, part, metric="parent CPU")
        ctx.add_timed(rid + ".wall", label, part, metric="wall", hidden=True)


def _capture_large(ctx, rid, label, out, err, rounds):
    argv = ctx.tools.producer_argv(out, err)
    kw = ({"capture_output": True} if err
          else {"stdout": subprocess.PIPE})
    want = out + err

    def check(r):
        got = len(r.stdout) + (len(r.stderr) if err else 0)
        if got != want or r.returncode != 0:
            raise RuntimeError(f"{label}: captured {got} bytes, expected "
                               f"{want} (exit {r.returncode})")

    cont = {SP: lambda: subprocess.run(argv, **kw)}
    cont.update(ctx.fs(lambda m: lambda: m.run(argv, **kw)))
    for fn in cont.values():
        r = fn()
        check(r)
        del r
    gc.collect()
    res = interleave(cont, rounds, batch=1, warmup=0)
    ctx.add_timed(rid + ".wall", label, res, metric="wall", unit="ms")
    ctx.add_timed(rid + ".cpu", label, res, metric="parent CPU", unit="ms",
                  hidden=True)
    ctx.add(rid + ".throughput", label, "throughput", "MiB/s",
            {n: summarize([want / MiB / w for w in v["wall"]])
             for n, v in res.items()}, hidden=True)


def probe_capture_out(ctx):
    n = int(ctx.settings.get("capture_mib", 256)) * MiB
    _capture_large(ctx, "capture_out", f"{n // MiB} MiB capture, stdout",
                   n, 0, ctx.rounds(5))


def probe_capture_outerr(ctx):
    n = int(ctx.settings.get("capture_mib", 256)) * MiB
    _capture_large(ctx, "capture_outerr",
                   f"{n // MiB} MiB capture, stdout+stderr "
                   f"({n // 2 // MiB} MiB each)", n // 2, n - n // 2,
                   ctx.rounds(5))


def probe_roundtrip(ctx):
    n = int(ctx.settings.get("roundtrip_mib", 64)) * MiB
    data = bytes(n)
    cat = shutil.which("cat") or "/bin/cat"
    PIPE = subprocess.PIPE

    def make(popen):
        def fn():
            with popen([cat], stdin=PIPE, stdout=PIPE) as p:
                out, _ = p.communicate(data)
            if len(out) != n:
                raise RuntimeError(f"round trip returned {len(out)} bytes")
        return fn
    cont = {SP: make(subprocess.Popen)}
    cont.update(ctx.fs(lambda m: make(m.Popen)))
    res = interleave(cont, ctx.rounds(5), batch=1, warmup=1)
    label = f"{n // MiB} MiB stdin->stdout round trip (cat, communicate)"
    ctx.add_timed("roundtrip.wall", label, res, metric="wall", unit="ms")
    ctx.add_timed("roundtrip.cpu", label, res, metric="parent CPU",
                  unit="ms", hidden=True)


def probe_timeout(ctx):
    """run(["sleep", "0.02"], timeout=5) against the same run without a
    timeout, paired round by round: overhead = median of the differences."""
    argv = ["sleep", "0.02"]
    pairs = {SP: (lambda: subprocess.run(argv),
                  lambda: subprocess.run(argv, timeout=5))}
    plain = ctx.fs(lambda m: lambda: m.run(argv))
    timed = ctx.fs(lambda m: lambda: m.run(argv, timeout=5))
    for k in plain:
        pairs[k] = (plain[k], timed[k])
    names = list(pairs)
    diffs = {n: [] for n in names}
    base = {n: [] for n in names}
    for n in names:
        pairs[n][0]()
        pairs[n][1]()
    for r in range(ctx.rounds(25)):
        k = r % len(names)
        for n in names[k:] + names[:k]:
            first = (r // len(names)) % 2
            t = [0.0, 0.0]
            for which in ((first, 1 - first)):
                w0 = _pc()
                pairs[n][which]()
                t[which] = _pc() - w0
            diffs[n].append(t[1] - t[0])
            base[n].append(t[0])
    label = 'run(["sleep","0.02"], timeout=5) minus the same without'
    ctx.add("timeout.overhead", label, "overhead", "ms",
            {n: summarize(d, 1e3) for n, d in diffs.items()})
    ctx.add("timeout.base", 'run(["sleep","0.02"])', "wall", "ms",
            {n: summarize(d, 1e3) for n, d in base.items()}, hidden=True)


def probe_popen(ctx):
    """The Popen path (what install() gives every library and asyncio):
    Popen([static true]).wait(), and Popen with stdout and stderr pipes
    then communicate(), parent CPU and wall."""
    argv = [ctx.tools.true]
    pipe = subprocess.PIPE

    def wait(popen):
        return lambda: popen(argv).wait()

    def comm(popen):
        return lambda: popen(argv, stdout=pipe, stderr=pipe).communicate()
    for rid, make, label in (
            ("popen_wait", wait,
             f"Popen([{ctx.tools.true_label}]).wait()"),
            ("popen_communicate", comm,
             f"Popen([{ctx.tools.true_label}], stdout=PIPE, stderr=PIPE)"
             ".communicate()")):
        cont = {SP: make(subprocess.Popen)}
        cont.update(ctx.fs(lambda m, make=make: make(m.Popen)))
        res = interleave(cont, ctx.rounds(15), batch=20, warmup=3)
        ctx.add_timed(rid + ".cpu", label, res, metric="parent CPU")
        ctx.add_timed(rid + ".wall", label, res, metric="wall", hidden=True)


def probe_fanout(ctx):
    n = int(ctx.settings.get("fanout", 200))
    argv = [ctx.tools.true]

    def make(popen):
        def fn():
            procs = [popen(argv) for _ in range(n)]
            for p in procs:
                p.wait()
        return fn
    cont = {SP: make(subprocess.Popen)}
    cont.update(ctx.fs(lambda m: make(m.Popen)))
    res = interleave(cont, ctx.rounds(5), batch=1, warmup=1)
    label = f"fan-out: {n} x Popen([{ctx.tools.true_label}]), then wait all"
    ctx.add_timed("fanout.wall", label, res, metric="wall", unit="ms")
    ctx.add_timed("fanout.cpu", label, res, metric="parent CPU", unit="ms",
                  hidden=True)


# --- asyncio: one child interpreter per contender, driven in turns ----------

ASYNCIO, UVLOOP = "asyncio", "uvloop"


def _asyncio_child_main():
    """The child side of probe_asyncio: set the contender up (stock asyncio,
    asyncio after fastspawn.install() on one backend, or uvloop), then serve
    "CALLS" requests: CALLS x (N concurrent create_subprocess_exec(true) +
    wait), timed per call and divided by N (one JSON line each)."""
    contender, true, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    delay = float(sys.argv[4])      # the gate's self-test: per fastspawn child
    if contender in (FC, FP):
        impl = _impl("c" if contender == FC else "py")
        if impl is None:
            sys.exit(f"{contender}: the C backend is not importable here")
        _backend.impl = impl
        fastspawn.install()
    import asyncio
    if contender == UVLOOP:
        # Optional (the bench extra), and untyped where it is missing.
        uvloop = importlib.import_module("uvloop")
        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)

    async def one():
        proc = await asyncio.create_subprocess_exec(true)
        if await proc.wait() != 0:
            raise RuntimeError(f"{true} exited {proc.returncode}")

    async def many():
        await asyncio.gather(*[one() for _ in range(n)])

    def call():
        if delay and contender in (FC, FP):
            spin(delay * n)
        loop.run_until_complete(many())
        gc.collect()        # the transports' Popen objects, as we go
    call()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        res = interleave({contender: call}, 1, batch=int(line), warmup=0)
        print(json.dumps({k: [x / n for x in v]
                          for k, v in res[contender].items()}), flush=True)
    loop.close()


def uvloop_available():
    import importlib.util
    return importlib.util.find_spec("uvloop") is not None


def probe_asyncio(ctx):
    """N x asyncio.create_subprocess_exec(static true) + wait, all at once:
    parent CPU and wall per child of stock asyncio (the baseline), of
    asyncio after fastspawn.install() (C and pure backends) and of uvloop
    where it is installed, each in its own child interpreter (install() is
    for the whole process), driven in turns."""
    n = int(ctx.settings.get("asyncio_children", 100))
    names = [ASYNCIO] + [k for k, b in ((FC, "c"), (FP, "py")) if _impl(b)]
    if uvloop_available():
        names.append(UVLOOP)
    else:
        ctx.notes.append("uvloop is not installed: no uvloop figures "
                         "(pip install uvloop)")
    kids = {}
    samples = {k: {"wall": [], "cpu": []} for k in names}
    try:
        for name in names:
            kids[name] = subprocess.Popen(
                [sys.executable, "-c",
                 "from fastspawn._bench import _asyncio_child_main as m; "
                 "m()", name, ctx.tools.true, str(n),
                 str(ctx.inject_delay)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                bufsize=1, env=_child_env())
        for name, p in kids.items():
            if not p.stdout.readline():
                raise RuntimeError(f"asyncio child ({name}) died")
        for r in range(ctx.rounds(8)):
            k = r % len(names)
            order = names[k:] + names[:k]
            if r % 2:
                order.reverse()
            for name in order:
                p = kids[name]
                p.stdin.write("2\n")
                p.stdin.flush()
                line = p.stdout.readline()
                if not line:
                    raise RuntimeError(f"asyncio child ({name}) died")
                got = json.loads(line)
                samples[name]["wall"].extend(got["wall"])
                samples[name]["cpu"].extend(got["cpu"])
    finally:
        for p in kids.values():
            with contextlib.suppress(OSError):
                p.stdin.close()
            p.wait()
    label = (f"asyncio: {n} x create_subprocess_exec([{ctx.tools.true_label}"
             "]) + wait, per child [baseline: stock asyncio]")
    extra = {"others": [UVLOOP]} if UVLOOP in names else None
    for metric, key in (("parent CPU", "cpu"), ("wall", "wall")):
        ctx.add(f"asyncio.{key}", label, metric, "us",
                {k: summarize(v[key], 1e6) for k, v in samples.items()},
                baseline=ASYNCIO, extra=extra)


def probe_big_parent_inproc(ctx):
    """spawn + wait from this process with a large resident heap (every page
    touched), against the small-parent numbers of probe_spawn."""
    gib = float(ctx.settings.get("cli_big_parent_gib", 1.0))
    t = ctx.tools.true
    argv = [t]
    heap = b"\1" * int(gib * GiB)
    try:
        cont = {SP: lambda: subprocess.run(argv)}
        cont.update(ctx.fs(lambda m: lambda: m.run(argv)))
        cont[FORK_EXEC] = lambda: fork_execv(t, argv)
        res = interleave(cont, ctx.rounds(5), batch=20, warmup=2)
    finally:
        del heap
    label = f"run([{ctx.tools.true_label}]) from a {gib:g} GiB parent"
    row = ctx.add_timed("big_parent.wall", label, res, metric="wall")
    small = ctx.rows.get("spawn.wall")
    if small is not None:
        ctx.add("big_parent.flat", f"  ... {gib:g} GiB parent / small parent",
                "wall ratio", "x",
                {n: {"median": v["median"] / _median(small, n), "n": v["n"]}
                 for n, v in row["values"].items()
                 if _median(small, n)})


# --- a parent with a large heap, in child interpreters (the gate's probe) --

def _child_env():
    env = dict(os.environ)
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(
        fastspawn.__file__)))
    env["PYTHONPATH"] = os.pathsep.join(
        [pkg_parent] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep)
                        if p])
    return env


def _heap_child_main():
    """The child side of probe_heap: allocate and touch the heap, then serve
    "CONTENDER N" requests with per-call timings (one JSON line each)."""
    size, true = int(sys.argv[1]), sys.argv[2]
    heap = b"\1" * size
    argv = [true]
    cont = {SP: lambda: subprocess.run(argv), FORK_EXEC:
            lambda: fork_execv(true, argv)}
    cont.update(fastspawn_contenders(lambda m: lambda: m.run(argv)))
    for fn in cont.values():
        fn()
    print(json.dumps({"ready": True, "rss_kb": _proc_status_kb("VmRSS"),
                      "heap": len(heap)}), flush=True)
    for line in sys.stdin:
        name, n = line.split()
        res = interleave({name: cont[name]}, 1, batch=int(n), warmup=0)
        print(json.dumps(res[name]), flush=True)


def probe_heap(ctx):
    """spawn + wait of the static true from a small parent and from a
    parent with a large resident heap: two child interpreters alive at once,
    driven in turns, so both are measured interleaved."""
    gib = float(ctx.settings.get("big_parent_gib", 2.0))
    sizes = {"small": 0, "big": int(gib * GiB)}
    kids = {}
    try:
        for key, size in sizes.items():
            kids[key] = subprocess.Popen(
                [sys.executable, "-c",
                 "from fastspawn._bench import _heap_child_main as m; m()",
                 str(size), ctx.tools.true],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                bufsize=1, env=_child_env())
        info = {}
        for key, p in kids.items():
            line = p.stdout.readline()
            if not line:
                raise RuntimeError(f"heap child ({key}) died")
            info[key] = json.loads(line)
        names = [SP, FORK_EXEC] + [n for n in (FC, FP)
                                   if _impl("c" if n == FC else "py")]
        samples = {(k, n): [] for k in kids for n in names}
        jobs = [(k, n) for n in names for k in kids]
        for r in range(ctx.rounds(8)):
            j = r % len(jobs)
            order = jobs[j:] + jobs[:j]
            for key, name in order:
                p = kids[key]
                # fork+execv from the big parent takes ~100x longer: a few
                # calls show that well enough.
                p.stdin.write(f"{name} {3 if name == FORK_EXEC else 15}\n")
                p.stdin.flush()
                samples[key, name].extend(json.loads(p.stdout.readline())
                                          ["wall"])
    finally:
        for p in kids.values():
            with contextlib.suppress(OSError):
                p.stdin.close()
            p.wait()
    label = f"run([{ctx.tools.true_label}]) wall"
    for key in kids:
        mib = info[key]["rss_kb"] / 1024
        ctx.add(f"heap.{key}.wall", f"{label}, parent RSS {mib:.0f} MiB",
                "wall", "us",
                {n: summarize(samples[key, n], 1e6) for n in names},
                hidden=True)
    small, big = ctx.rows["heap.small.wall"], ctx.rows["heap.big.wall"]
    ctx.add("heap.flat", f"spawn cost, {gib:g} GiB parent / small parent",
            "wall ratio", "x",
            {n: {"median": _median(big, n) / _median(small, n),
                 "n": big["values"][n]["n"]} for n in names})


# --- peak memory of a capture, in a fresh child interpreter per contender --

def _proc_status_kb(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _maxrss_bytes():
    import resource
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r if sys.platform == "darwin" else r * 1024


def _rss_child_main():
    """Child side of probe_rss: one capture; prints the peak RSS growth."""
    contender, argv = sys.argv[1], json.loads(sys.argv[2])
    mode = sys.argv[3] if len(sys.argv) > 3 else "run"
    mod: types.ModuleType = subprocess
    if contender != SP:
        impl = _impl("c" if contender == FC else "py")
        if impl is None:
            sys.exit(f"{contender}: the C backend is not importable here")
        _backend.impl = impl
        mod = fastspawn
    if mode == "popen":
        # Popen with a lone stdout pipe, then communicate().
        def run(argv, capture_output):
            p = mod.Popen(argv, stdout=subprocess.PIPE)
            out, _ = p.communicate()
            return subprocess.CompletedProcess(argv, p.returncode, out, b"")
    else:
        run = mod.run
    run(["echo", "hi"], capture_output=True)   # warm the code paths up
    gc.collect()
    reset = False
    try:  # Linux: "5" resets VmHWM to the current RSS
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        pass
    base = _proc_status_kb("VmRSS")
    if reset and base is not None:
        base *= 1024
        t0 = _pc()
        r = run(argv, capture_output=True)
        wall = _pc() - t0
        peak = _proc_status_kb("VmHWM") * 1024
        how = "VmHWM"
    else:
        base = _maxrss_bytes()
        t0 = _pc()
        r = run(argv, capture_output=True)
        wall = _pc() - t0
        peak = _maxrss_bytes()
        how = "ru_maxrss"
    size = len(r.stdout) + len(r.stderr)
    print(json.dumps({"growth": peak - base, "output": size, "wall": wall,
                      "how": how}))


def rss_growth(contender, argv, mode="run"):
    """Peak RSS growth of one run(argv, capture_output=True) -- or, with
    mode "popen", of Popen(argv, stdout=PIPE).communicate() -- made by
    ``contender`` in a fresh interpreter: {"growth", "output", ...}."""
    r = subprocess.run(
        [sys.executable, "-c",
         "from fastspawn._bench import _rss_child_main as m; m()",
         contender, json.dumps(argv), mode],
        stdout=subprocess.PIPE, env=_child_env(), check=True)
    return json.loads(r.stdout)


def probe_rss(ctx):
    n = int(ctx.settings.get("capture_mib", 256)) * MiB
    argv = ctx.tools.producer_argv(n // 2, n - n // 2)
    names = [SP] + [k for k in (FC, FP) if _impl("c" if k == FC else "py")]
    res = {k: [] for k in names}
    for r in range(ctx.rounds(2)):
        for k in (names if r % 2 == 0 else names[::-1]):
            out = rss_growth(k, argv)
            if out["output"] != n:
                raise RuntimeError(f"{k}: captured {out['output']} of {n}")
            res[k].append(out["growth"])
    label = (f"peak RSS growth / output, {n // MiB} MiB stdout+stderr "
             "capture (fresh interpreter)")
    ctx.add("rss.ratio", label, "RSS growth / output", "x",
            {k: summarize([g / n for g in v]) for k, v in res.items()})
    ctx.add("rss.growth", label, "RSS growth", "MiB",
            {k: summarize([g / MiB for g in v]) for k, v in res.items()},
            hidden=True)
    # Popen with a lone stdout pipe: communicate() reads it through the C
    # loop (subprocess: the file object's read(), which joins chunks).
    argv = ctx.tools.producer_argv(n)
    res = {k: [] for k in names}
    for r in range(ctx.rounds(2)):
        for k in (names if r % 2 == 0 else names[::-1]):
            out = rss_growth(k, argv, "popen")
            if out["output"] != n:
                raise RuntimeError(f"{k}: read {out['output']} of {n}")
            res[k].append(out["growth"])
    label = (f"peak RSS growth / output, {n // MiB} MiB "
             "Popen(stdout=PIPE).communicate() (fresh interpreter)")
    ctx.add("rss_popen.ratio", label, "RSS growth / output", "x",
            {k: summarize([g / n for g in v]) for k, v in res.items()})


PROBES = {
    "spawn": ("spawn+wait, run()", probe_spawn),
    "spawnv": ("spawn+wait, spawnv()", probe_spawnv),
    "capture_small": ("small capture", probe_capture_small),
    "capture_out": ("large capture, stdout", probe_capture_out),
    "capture_outerr": ("large capture, stdout+stderr", probe_capture_outerr),
    "roundtrip": ("stdin->stdout round trip", probe_roundtrip),
    "timeout": ("timeout overhead", probe_timeout),
    "popen": ("spawn+wait and communicate, Popen", probe_popen),
    "fanout": ("fan-out", probe_fanout),
    "asyncio": ("asyncio create_subprocess_exec", probe_asyncio),
    "big_parent": ("large parent (in-process)", probe_big_parent_inproc),
    "heap": ("large parent vs small parent (child interpreters)",
             probe_heap),
    "rss": ("peak RSS of a capture", probe_rss),
}

CLI_PROBES = ["spawn", "spawnv", "capture_small", "popen", "capture_out",
              "capture_outerr", "roundtrip", "timeout", "fanout",
              "asyncio", "big_parent", "rss"]


def run_probes(ctx, keys):
    for i, key in enumerate(keys, 1):
        title, fn = PROBES[key]
        ctx.progress(f"[{i}/{len(keys)}] {title} ...")
        t0 = _pc()
        try:
            fn(ctx)
        except Exception as e:  # one broken probe must not hide the rest
            ctx.notes.append(f"probe {key!r} failed: "
                             f"{type(e).__name__}: {e}")
            ctx.progress(f"      FAILED: {type(e).__name__}: {e}")
            continue
        finally:
            gc.collect()
        ctx.progress(f"      done in {_pc() - t0:.1f} s")


# ---------------------------------------------------------------------------
# the gate


def _ratio(rid, num, den):
    def f(rows):
        row = rows.get(rid)
        a, b = _median(row, num), _median(row, den)
        if a is None or b is None:
            raise LookupError(f"{rid}: no {num if a is None else den}")
        return a / b, f"{num} {_fmt(a, row['unit'])} / {den} " \
                      f"{_fmt(b, row['unit'])}"
    return f


def _value(rid, who):
    def f(rows):
        row = rows.get(rid)
        v = _median(row, who)
        if v is None:
            raise LookupError(f"{rid}: no {who}")
        others = ", ".join(f"{k} {_fmt(s['median'], row['unit'])}"
                           for k, s in row["values"].items() if k != who)
        return v, f"{who} {_fmt(v, row['unit'])}; others: {others}"
    return f


# name -> (description, probe keys needed, measure(rows) -> (value, detail))
# Thresholds (max = / min =) come from benchmarks/gate.toml only.
CHECKS = {
    "spawn_cpu_vs_subprocess": (
        "parent CPU of run([static true]): fastspawn C / subprocess.run",
        ["spawn"], _ratio("spawn.cpu", FC, SP)),
    "capture_small_cpu_vs_subprocess": (
        'parent CPU of run(["echo","hi"], capture_output=True): '
        "C / subprocess",
        ["capture_small"], _ratio("capture_small.run.cpu", FC, SP)),
    "check_output_cpu_vs_subprocess": (
        'parent CPU of check_output(["echo","hi"]): C / subprocess',
        ["capture_small"], _ratio("capture_small.check_output.cpu", FC, SP)),
    "capture_outerr_throughput_vs_subprocess": (
        "256 MiB stdout+stderr capture throughput: C / subprocess "
        "(= subprocess wall / C wall)",
        ["capture_outerr"], _ratio("capture_outerr.wall", SP, FC)),
    "capture_out_throughput_vs_subprocess": (
        "256 MiB stdout-only capture throughput: C / subprocess",
        ["capture_out"], _ratio("capture_out.wall", SP, FC)),
    "roundtrip_throughput_vs_subprocess": (
        "64 MiB stdin->stdout communicate throughput: C / subprocess",
        ["roundtrip"], _ratio("roundtrip.wall", SP, FC)),
    "capture_outerr_rss_growth": (
        "peak RSS growth / output size, 256 MiB stdout+stderr capture, C",
        ["rss"], _value("rss.ratio", FC)),
    "popen_lone_pipe_rss_growth": (
        "peak RSS growth / output, 256 MiB Popen(stdout=PIPE)"
        ".communicate(), C",
        ["rss"], _value("rss_popen.ratio", FC)),
    "timeout_overhead_ms": (
        'run(["sleep","0.02"], timeout=5) minus the same without, C (ms)',
        ["timeout"], _value("timeout.overhead", FC)),
    "big_parent_flat": (
        "spawn+wait wall, 2 GiB parent / small parent, C",
        ["heap"], _value("heap.flat", FC)),
    "popen_wait_cpu_vs_subprocess": (
        "parent CPU of Popen([static true]).wait(): C / subprocess",
        ["popen"], _ratio("popen_wait.cpu", FC, SP)),
    "popen_communicate_cpu_vs_subprocess": (
        "parent CPU of Popen(stdout=PIPE, stderr=PIPE).communicate(): "
        "C / subprocess",
        ["popen"], _ratio("popen_communicate.cpu", FC, SP)),
    "popen_wait_cpu_pure_vs_subprocess": (
        "parent CPU of Popen([static true]).wait(): pure / subprocess",
        ["popen"], _ratio("popen_wait.cpu", FP, SP)),
    "popen_communicate_cpu_pure_vs_subprocess": (
        "parent CPU of Popen(stdout=PIPE, stderr=PIPE).communicate(): "
        "pure / subprocess",
        ["popen"], _ratio("popen_communicate.cpu", FP, SP)),
    "fanout_cpu_vs_subprocess": (
        "200 x Popen then wait all, parent CPU: C / subprocess",
        ["fanout"], _ratio("fanout.cpu", FC, SP)),
    "fanout_wall_vs_subprocess": (
        "200 x Popen then wait all, wall: C / subprocess",
        ["fanout"], _ratio("fanout.wall", FC, SP)),
    "asyncio_cpu_vs_stock": (
        "parent CPU per child of 100 x asyncio create_subprocess_exec + "
        "wait: after install() (C) / stock asyncio",
        ["asyncio"], _ratio("asyncio.cpu", FC, ASYNCIO)),
    "spawn_cpu_c_vs_pure": (
        "parent CPU of run([static true]): C / pure",
        ["spawn"], _ratio("spawn.cpu", FC, FP)),
    "capture_small_cpu_c_vs_pure": (
        "parent CPU of run(capture_output=True), small: C / pure",
        ["capture_small"], _ratio("capture_small.run.cpu", FC, FP)),
    "capture_outerr_wall_c_vs_pure": (
        "256 MiB stdout+stderr capture wall: C / pure",
        ["capture_outerr"], _ratio("capture_outerr.wall", FC, FP)),
    "spawn_cpu_vs_c_floor": (
        "parent CPU of run([static true]): C / C floor "
        "(posix_spawn+waitpid in C)",
        ["spawn"], _ratio("spawn.cpu", FC, FLOOR)),
    "spawn_wall_vs_c_floor": (
        "wall of run([static true]): C / C floor",
        ["spawn"], _ratio("spawn.wall", FC, FLOOR)),
    # Not a target: the best spawn_cpu_vs_subprocess any library could
    # reach on this machine (the C floor has no Python at all on top).
    "c_floor_cpu_vs_subprocess": (
        "parent CPU: C floor / subprocess.run (the bound for "
        "spawn_cpu_vs_subprocess; not gated)",
        ["spawn"], _ratio("spawn.cpu", FLOOR, SP)),
}

#: Reported, never gated (gate.toml must not set a threshold for them).
INFO_CHECKS = frozenset({"c_floor_cpu_vs_subprocess"})


def default_config_path():
    """$FASTSPAWN_GATE_CONFIG, else benchmarks/gate.toml in the current
    directory, else the one beside the source tree this module runs from."""
    env = os.environ.get(CONFIG_ENV)
    if env:
        return env
    here = os.path.join("benchmarks", "gate.toml")
    if os.path.exists(here):
        return here
    tree = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "benchmarks", "gate.toml")
    return tree if os.path.exists(tree) else here


def _parse_toml_subset(text):
    """The TOML gate.toml uses, for Pythons without tomllib (3.9, 3.10):
    [dotted.tables], key = number | "string" | true/false, # comments."""
    data = {}
    table = data
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            if not line.endswith("]") or line.startswith("[["):
                raise ValueError(f"line {lineno}: unsupported table: {raw}")
            table = data
            for part in line[1:-1].strip().split("."):
                table = table.setdefault(part.strip().strip('"'), {})
            continue
        key, eq, value = line.partition("=")
        if not eq:
            raise ValueError(f"line {lineno}: expected key = value: {raw}")
        key, value = key.strip().strip('"'), value.strip()
        if value.startswith('"'):
            end = value.index('"', 1)
            table[key] = value[1:end]
            continue
        value = value.split("#", 1)[0].strip()
        if value in ("true", "false"):
            table[key] = value == "true"
        else:
            v = value.replace("_", "")
            table[key] = float(v) if any(c in v for c in ".eE") else int(v)
    return data


def load_config(path):
    """The gate's config: {"gate": {...settings}, "checks": {name: {"max"
    or "min": number, ...}}}. ValueError on anything malformed."""
    with open(path, "rb") as f:
        raw = f.read()
    try:
        import tomllib
        cfg = tomllib.loads(raw.decode())
    except ImportError:
        cfg = _parse_toml_subset(raw.decode())
    checks = cfg.get("checks", {})
    for name, spec in checks.items():
        if name not in CHECKS:
            raise ValueError(f"{path}: unknown check {name!r} "
                             f"(known: {', '.join(CHECKS)})")
        if name in INFO_CHECKS:
            raise ValueError(f"{path}: {name!r} is reported, never gated: "
                             "remove it")
        if not isinstance(spec, dict) or len({"max", "min"} & set(spec)) != 1:
            raise ValueError(f"{path}: check {name!r} needs exactly one of "
                             "max = or min =")
        if set(spec) - {"max", "min", "target"}:
            raise ValueError(f"{path}: check {name!r}: unknown key(s) "
                             f"{', '.join(sorted(set(spec) - {'max', 'min', 'target'}))}")
    return cfg


def _meets(value, op, thr):
    return value <= thr if op == "<=" else value >= thr


def evaluate(rows, checks_cfg, names):
    """[(name, description, value, op, threshold, verdict, detail)].

    ``max``/``min`` is the enforced limit (the verdict); an optional
    ``target`` (same direction) is the goal, reported in the detail as
    "target met" / "target MISSED" without failing the gate."""
    results = []
    for name in names:
        desc, _, measure = CHECKS[name]
        spec = checks_cfg.get(name)
        op, thr = (("<=", spec["max"]) if "max" in spec else
                   (">=", spec["min"])) if spec else ("", None)
        try:
            value, detail = measure(rows)
        except (LookupError, ZeroDivisionError, TypeError) as e:
            results.append((name, desc, None, op, thr, "ERROR", str(e)))
            continue
        if thr is None:
            verdict = "INFO"
        else:
            verdict = "PASS" if _meets(value, op, thr) else "FAIL"
        if spec and "target" in spec:
            met = _meets(value, op, spec["target"])
            detail = (f"target {op} {spec['target']:g} "
                      f"{'met' if met else 'MISSED'}; {detail}")
        results.append((name, desc, value, op, thr, verdict, detail))
    return results


def run_gate(config=None, *, only=None, inject_delay=None, scale=None,
             tools=None, progress=None, out=None):
    """Measure what the configured checks need and judge them. Returns
    (exit status, report dict). ``inject_delay`` (seconds; default
    $FASTSPAWN_BENCH_INJECT_DELAY) busy-spins before every fastspawn call,
    to show the gate can fail."""
    out = out or sys.stdout
    cfg = load_config(config or default_config_path())
    settings = cfg.get("gate", {})
    names = [n for n in CHECKS if n in cfg.get("checks", {})]
    if only:
        unknown = [n for n in only if n not in CHECKS]
        if unknown:
            raise ValueError(f"unknown check(s): {', '.join(unknown)}")
        names = [n for n in CHECKS if n in only and (
            n in names or n in INFO_CHECKS)]
    if inject_delay is None:
        inject_delay = float(os.environ.get(INJECT_ENV, "0") or 0)
    if scale is None:
        scale = float(settings.get("rounds_scale", 1.0))
    probes = []
    for n in names:
        for p in CHECKS[n][1]:
            if p not in probes:
                probes.append(p)
    # The informative checks come along wherever their data is measured.
    names += [n for n in CHECKS if n in INFO_CHECKS and n not in names
              and set(CHECKS[n][1]) <= set(probes)]
    owned = tools is None
    tools = tools or Tools()
    saved = _backend.impl
    t0 = _pc()
    try:
        ctx = Context(tools, scale=scale, inject_delay=inject_delay,
                      progress=progress, settings=settings)
        if not c_available():
            ctx.notes.append("the C backend is not built: every check on "
                             "it is an ERROR")
        run_probes(ctx, probes)
    finally:
        _backend.impl = saved
        if owned:
            tools.cleanup()
    results = evaluate(ctx.rows, cfg.get("checks", {}), names)
    elapsed = _pc() - t0
    print_rows(ctx, out, ctx.rows.values())
    print(file=out)
    print_gate(results, out)
    for note in ctx.notes:
        print(f"note: {note}", file=out)
    if inject_delay:
        print(f"note: {inject_delay * 1e3:g} ms busy-wait injected into "
              "every fastspawn call", file=out)
    bad = [r for r in results if r[5] in ("FAIL", "ERROR")
           and r[0] not in INFO_CHECKS]
    gated = [r for r in results if r[0] not in INFO_CHECKS]
    targets = [r for r in results if (cfg.get("checks", {}).get(r[0]) or {})
               .get("target") is not None]
    missed = [r[0] for r in targets
              if r[6].startswith("target ") and " MISSED;" in r[6]]
    print(f"gate: {'FAILED' if bad else 'passed'} "
          f"({len(gated) - len(bad)}/{len(gated)} checks ok, "
          f"{elapsed:.0f} s); targets met: {len(targets) - len(missed)}"
          f"/{len(targets)}"
          + (f" (missed: {', '.join(missed)})" if missed else ""), file=out)
    report = _report(ctx, elapsed)
    report["gate"] = [
        {"check": n, "description": d, "value": v, "op": op,
         "threshold": t, "verdict": verdict, "detail": det}
        for n, d, v, op, t, verdict, det in results]
    report["inject_delay"] = inject_delay
    return (EXIT_FAIL if bad else EXIT_OK), report


def print_gate(results, out):
    rows = [("check", "measured", "threshold", "verdict", "detail")]
    for name, _, value, op, thr, verdict, detail in results:
        rows.append((name, "-" if value is None else f"{value:.3g}",
                     "-" if thr is None else f"{op} {thr:g}", verdict,
                     detail))
    _table(rows, out)


# ---------------------------------------------------------------------------
# output


def _fmt(v, unit):
    if v is None:
        return "-"
    if unit == "x":
        return f"{v:.2f}x"
    a = abs(v)
    digits = 0 if a >= 100 else 1 if a >= 10 else 2 if a >= 1 else 3
    return f"{v:.{digits}f} {unit}"


def _table(rows, out):
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for j, r in enumerate(rows):
        cells = [str(c).ljust(w) if i == 0 or i == len(r) - 1
                 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r,
                                                                    widths))]
        print("  ".join(cells).rstrip(), file=out)
        if j == 0:
            print("  ".join("-" * w for w in widths), file=out)


def row_ratio(row):
    a, b = _median(row, FC), _median(row, row["baseline"])
    if a is None or not b:
        return None
    return a / b


def _others(row):
    """The row's other contenders shown beside fastspawn (e.g. uvloop)."""
    u = row["unit"]
    return ", ".join(f"{k} {_fmt(_median(row, k), u)}"
                     for k in (row.get("extra") or {}).get("others", ())
                     if _median(row, k) is not None) or "-"


def print_rows(ctx, out, rows):
    rows = [row for row in rows if not row["hidden"]]
    others = any((row.get("extra") or {}).get("others") for row in rows)
    table = [("scenario", "metric", "subprocess", "fastspawn (C)",
              "fastspawn (pure)", "ratio C/subprocess")
             + (("others",) if others else ())]
    for row in rows:
        u = row["unit"]
        r = row_ratio(row)
        table.append((row["scenario"], row["metric"],
                      _fmt(_median(row, row["baseline"]), u),
                      _fmt(_median(row, FC), u), _fmt(_median(row, FP), u),
                      "-" if r is None else f"{r:.2f}")
                     + ((_others(row),) if others else ()))
    _table(table, out)
    floor = ctx.rows.get("spawn.cpu")
    if floor and FLOOR in floor["values"]:
        w = ctx.rows["spawn.wall"]
        print(f"C floor (posix_spawn+waitpid in C): "
              f"{_fmt(_median(floor, FLOOR), 'us')} parent CPU, "
              f"{_fmt(_median(w, FLOOR), 'us')} wall; fork+execv from "
              f"Python: {_fmt(_median(floor, FORK_EXEC), 'us')} CPU, "
              f"{_fmt(_median(w, FORK_EXEC), 'us')} wall", file=out)
    big = ctx.rows.get("big_parent.wall")
    if big and FORK_EXEC in big["values"]:
        flat = ctx.rows.get("big_parent.flat", {"values": {}})
        fe = flat["values"].get(FORK_EXEC)
        print(f"fork+execv from the large parent: "
              f"{_fmt(_median(big, FORK_EXEC), 'us')} wall"
              + (f" ({fe['median']:.1f}x its small-parent time)" if fe
                 else ""), file=out)
    print("ratio: fastspawn (C) / baseline; below 1 = fastspawn cheaper "
          "(for MiB/s, above 1 = faster)", file=out)


def _report(ctx, elapsed):
    import fastspawn as fs
    return {
        "fastspawn": fs.__version__,
        "c_backend": c_available(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "elapsed_s": elapsed,
        "tools": {"cc": ctx.tools.cc, "static_true": bool(
            ctx.tools.static_true), "floor": bool(ctx.tools.floor),
            "producer": bool(ctx.tools.producer)},
        "notes": ctx.notes,
        "rows": list(ctx.rows.values()),
    }


def plot(report, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in report["rows"] if not r["hidden"]
            and r["values"].get(r["baseline"])]
    import textwrap
    labels = ["\n".join(textwrap.wrap(f"{r['scenario']} [{r['metric']}]",
                                       44)) for r in rows]
    fig, ax = plt.subplots(figsize=(10, 0.6 * len(rows) + 2.0))
    ys = range(len(rows))
    h = 0.38
    for off, key, name in ((-h / 2, FC, "fastspawn (C)"),
                           (h / 2, FP, "fastspawn (pure)")):
        vals = []
        for r in rows:
            b = r["values"][r["baseline"]]["median"]
            v = r["values"].get(key)
            vals.append(v["median"] / b if v and b else 0.0)
        ax.barh([y + off for y in ys], vals, height=h, label=name)
    ax.axvline(1.0, color="k", lw=1, ls="--", label="baseline (subprocess)")
    ax.set_yticks(list(ys))
    ax.set_yticklabels(labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("relative to the baseline (cost: lower is better; "
                  "MiB/s: higher)")
    ax.set_title(f"fastspawn {report['fastspawn']} on Python "
                 f"{report['python']}, {report['cpus']} CPUs")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12 - 0.4 /
                                                  max(1, len(rows))),
              ncol=3, fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------
# command line


def build_parser():
    p = argparse.ArgumentParser(
        prog="python -m fastspawn bench",
        description="Benchmark fastspawn (C and pure backends) against "
                    "subprocess on this machine.")
    p.add_argument("--gate", action="store_true",
                   help="run the regression gate: measure the ratios in the "
                        "config and exit 1 if any crosses its threshold")
    p.add_argument("--config", metavar="FILE",
                   help="gate thresholds (default: $FASTSPAWN_GATE_CONFIG or "
                        "benchmarks/gate.toml)")
    p.add_argument("--only", metavar="NAMES",
                   help="comma-separated check names (--gate) or probe names "
                        f"({', '.join(PROBES)})")
    p.add_argument("--json", metavar="FILE",
                   help="write all measurements (and verdicts) as JSON")
    p.add_argument("--plot", metavar="FILE.png",
                   help="draw a bar chart (needs matplotlib)")
    p.add_argument("--scale", type=float, metavar="X",
                   help="multiply the number of rounds (default 1)")
    p.add_argument("--inject-delay", type=float, metavar="SECONDS",
                   help=f"busy-wait this long in every fastspawn call, to "
                        f"check the gate fails (also ${INJECT_ENV})")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="no progress on stderr")
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print("fastspawn bench: --plot needs matplotlib "
                  "(python -m pip install matplotlib)", file=sys.stderr)
            return EXIT_USAGE

    def progress(msg):
        if not args.quiet:
            print(msg, file=sys.stderr, flush=True)

    only = [s.strip() for s in args.only.split(",")] if args.only else None
    if args.gate:
        try:
            status, report = run_gate(args.config, only=only,
                                      inject_delay=args.inject_delay,
                                      scale=args.scale, progress=progress)
        except (OSError, ValueError) as e:
            print(f"fastspawn bench --gate: {e}", file=sys.stderr)
            return EXIT_USAGE
    else:
        keys = only or CLI_PROBES
        bad = [k for k in keys if k not in PROBES]
        if bad:
            print(f"fastspawn bench: unknown probe(s) {', '.join(bad)}; "
                  f"known: {', '.join(PROBES)}", file=sys.stderr)
            return EXIT_USAGE
        inject = args.inject_delay
        if inject is None:
            inject = float(os.environ.get(INJECT_ENV, "0") or 0)
        saved = _backend.impl
        t0 = _pc()
        progress("fastspawn bench: compiling helpers ...")
        with Tools() as tools:
            ctx = Context(tools, scale=args.scale or 1.0,
                          inject_delay=inject, progress=progress)
            if not c_available():
                ctx.notes.append("the C backend is not built: its column "
                                 "is empty")
            try:
                run_probes(ctx, keys)
            finally:
                _backend.impl = saved
        elapsed = _pc() - t0
        print_rows(ctx, sys.stdout, ctx.rows.values())
        for note in ctx.notes:
            print(f"note: {note}")
        print(f"({elapsed:.0f} s, Python {sys.version.split()[0]}, "
              f"{os.cpu_count()} CPUs, C backend: "
              f"{'yes' if c_available() else 'no'})")
        report = _report(ctx, elapsed)
        status = EXIT_FAIL if any("failed" in n for n in ctx.notes) \
            else EXIT_OK
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
        progress(f"wrote {args.json}")
    if args.plot:
        plot(report, args.plot)
        progress(f"wrote {args.plot}")
    return status

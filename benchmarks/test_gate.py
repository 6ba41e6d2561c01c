"""The regression gate can fail, and its config is sound (fast: seconds).

Runs without pytest-benchmark. The gate is ``python -m fastspawn bench
--gate``; these tests run it on the spawn checks only, with few rounds,
once with a busy-wait injected into every fastspawn call (it must FAIL and
exit 1) and once against a deliberately lax threshold (it must pass).
"""
import io
import os
import subprocess
import sys

import pytest

from fastspawn import _backend, _bench

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
CONFIG = os.path.join(HERE, "gate.toml")

needs_c = pytest.mark.skipif(_backend.c_impl is None,
                             reason="the gate judges the C backend: not built")

SPAWN_CHECK = "spawn_cpu_vs_subprocess"
# Far above any fastspawn-c / subprocess CPU ratio, far below the ratio
# once 3 ms of CPU are added to a ~50 us call.
DELAY = 0.003


def verdicts(report):
    return {g["check"]: g["verdict"] for g in report["gate"]}


def test_config_has_the_issue_targets():
    cfg = _bench.load_config(CONFIG)
    checks = cfg["checks"]
    # Each number of the issues is there: as the enforced limit where it
    # holds on this machine, else as the reported target (never dropped).
    def goal(name):
        spec = checks[name]
        return spec.get("target", spec.get("max", spec.get("min")))
    assert goal("spawn_cpu_vs_subprocess") == 0.6
    assert goal("capture_small_cpu_vs_subprocess") == 0.45
    assert goal("capture_outerr_throughput_vs_subprocess") == 1.8
    assert checks["capture_outerr_rss_growth"] == {"max": 1.1}
    assert checks["timeout_overhead_ms"] == {"max": 0.5}
    assert checks["big_parent_flat"] == {"max": 1.5}
    assert goal("asyncio_cpu_vs_stock") == 0.7
    # A target is never looser than its limit.
    for name, spec in checks.items():
        if "target" in spec:
            if "max" in spec:
                assert spec["target"] <= spec["max"], name
            else:
                assert spec["target"] >= spec["min"], name
    assert cfg["gate"]["capture_mib"] == 256
    assert cfg["gate"]["big_parent_gib"] == 2.0
    # every check the code knows is gated, except the informative ones
    assert set(checks) == set(_bench.CHECKS) - _bench.INFO_CHECKS


def test_config_parses_without_tomllib():
    """Python 3.9/3.10 have no tomllib: the fallback reads the same."""
    with open(CONFIG, "rb") as f:
        text = f.read().decode()
    fallback = _bench._parse_toml_subset(text)
    try:
        import tomllib
    except ImportError:
        pytest.skip("no tomllib to compare with")
    assert fallback == tomllib.loads(text)


def test_config_errors(tmp_path):
    bad = tmp_path / "gate.toml"
    bad.write_text("[checks.no_such_check]\nmax = 1\n")
    with pytest.raises(ValueError, match="unknown check"):
        _bench.load_config(str(bad))
    bad.write_text("[checks.spawn_cpu_vs_subprocess]\nmax = 1\nmin = 0\n")
    with pytest.raises(ValueError, match="exactly one"):
        _bench.load_config(str(bad))
    r = subprocess.run(
        [sys.executable, "-m", "fastspawn", "bench", "--gate", "--config",
         str(bad), "-q"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env=_bench._child_env(), timeout=60)
    assert r.returncode == 2, r.stderr


@needs_c
def test_gate_fails_on_a_slowed_contender(tools):
    out = io.StringIO()
    status, report = _bench.run_gate(CONFIG, only=[SPAWN_CHECK],
                                     inject_delay=DELAY, scale=0.2,
                                     tools=tools, out=out)
    text = out.getvalue()
    assert status == _bench.EXIT_FAIL, text
    assert verdicts(report)[SPAWN_CHECK] == "FAIL", text
    assert set(verdicts(report)) <= {SPAWN_CHECK} | _bench.INFO_CHECKS
    assert "gate: FAILED" in text
    row = [ln for ln in text.splitlines() if ln.startswith(SPAWN_CHECK)]
    assert row and "FAIL" in row[0] and "<= 0.6" in row[0], text


@needs_c
def test_gate_passes_a_lax_threshold(tools, tmp_path):
    """The same measurement, no injected delay, threshold 10: passes, so
    the failure above comes from the delay, not from a broken gate."""
    lax = tmp_path / "gate.toml"
    lax.write_text(f"[checks.{SPAWN_CHECK}]\nmax = 10\n")
    out = io.StringIO()
    status, report = _bench.run_gate(str(lax), scale=0.2, tools=tools,
                                     inject_delay=0.0, out=out)
    assert status == _bench.EXIT_OK, out.getvalue()
    assert verdicts(report)[SPAWN_CHECK] == "PASS"


@needs_c
def test_gate_command_exit_status(tmp_path):
    """``python -m fastspawn bench --gate`` exits 1 on a crossed threshold
    and prints the ratio table; the delay comes from the environment."""
    env = _bench._child_env()
    env[_bench.INJECT_ENV] = str(DELAY)
    report = tmp_path / "gate.json"
    r = subprocess.run(
        [sys.executable, "-m", "fastspawn", "bench", "--gate", "--only",
         SPAWN_CHECK, "--scale", "0.2", "--json", str(report)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "FAIL" in r.stdout and "threshold" in r.stdout
    assert "[1/1]" in r.stderr          # progress goes to stderr
    import json
    data = json.loads(report.read_text())
    assert {g["check"]: g["verdict"] for g in data["gate"]}[SPAWN_CHECK] \
        == "FAIL"
    assert data["inject_delay"] == DELAY


@needs_c
def test_asyncio_check_fails_on_a_slowed_contender(tools):
    """The asyncio check measures in child interpreters: the injected delay
    reaches them (spun there, per child started), and the check FAILs."""
    name = "asyncio_cpu_vs_stock"
    out = io.StringIO()
    status, report = _bench.run_gate(CONFIG, only=[name], inject_delay=DELAY,
                                     scale=0.25, tools=tools, out=out)
    text = out.getvalue()
    assert status == _bench.EXIT_FAIL, text
    assert verdicts(report)[name] == "FAIL", text
    (row,) = [r for r in report["rows"] if r["id"] == "asyncio.cpu"]
    # ~300 us per child against 3 ms more: far past any limit
    assert row["values"][_bench.FC]["median"] > 2000, row
    assert row["values"][_bench.ASYNCIO]["median"] < 2000, row
    if _bench.uvloop_available():
        assert _bench.UVLOOP in row["values"]
        assert "uvloop" in text


def test_missed_target_is_reported_not_failed():
    """A value past its target but inside its limit passes, marked MISSED;
    past the limit it fails."""
    name = "spawn_cpu_vs_subprocess"
    measure = _bench.CHECKS[name][2]
    saved = _bench.CHECKS[name]
    cfg = {name: {"max": 0.9, "target": 0.6}}
    try:
        for value, verdict, mark in ((0.5, "PASS", "target <= 0.6 met"),
                                     (0.7, "PASS", "target <= 0.6 MISSED"),
                                     (1.2, "FAIL", "target <= 0.6 MISSED")):
            _bench.CHECKS[name] = (saved[0], saved[1],
                                   lambda rows, v=value: (v, "x"))
            (row,) = _bench.evaluate({}, cfg, [name])
            assert row[5] == verdict and row[6].startswith(mark), row
    finally:
        _bench.CHECKS[name] = saved
    assert measure is saved[2]


def test_summary_counts_missed_targets(tmp_path, monkeypatch):
    """The last line counts the missed targets, by name."""
    cfg = tmp_path / "gate.toml"
    cfg.write_text("[gate]\n[checks.spawn_cpu_vs_subprocess]\n"
                   "max = 100.0\ntarget = 0.000001\n")
    import io
    out = io.StringIO()
    monkeypatch.setattr(_bench, "run_probes", lambda ctx, probes: None)
    saved = _bench.CHECKS["spawn_cpu_vs_subprocess"]
    monkeypatch.setitem(_bench.CHECKS, "spawn_cpu_vs_subprocess",
                        (saved[0], saved[1], lambda rows: (0.7, "x")))
    status, _ = _bench.run_gate(str(cfg), out=out)
    last = out.getvalue().strip().splitlines()[-1]
    assert status == 0
    assert "targets met: 0/1 (missed: spawn_cpu_vs_subprocess)" in last

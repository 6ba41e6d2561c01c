"""fastspawn.pipeline(): stages chained with pipes, no Python in the data
path. Every test runs on both backends (conftest's autouse fixture) and
must leave no fd open and no child behind."""
import os
import signal
import subprocess
import sys
import time

import pytest

import fastspawn
from fastspawn import PIPE, STDOUT, DEVNULL, pipeline

PY = sys.executable


def test_three_stages_capture():
    r = pipeline(["printf", "b\\na\\nc\\n"], ["sort"], ["head", "-2"],
                 capture_output=True)
    assert r.stdout == b"a\nb\n"
    assert r.stderr == b""
    assert r.returncode == 0
    assert r.returncodes == [0, 0, 0]
    assert r.args == [["printf", "b\\na\\nc\\n"], ["sort"], ["head", "-2"]]
    assert [s.args for s in r.stages] == r.args
    assert r.stages[1] == fastspawn._pipeline.Stage(["sort"], 0)
    assert "PipelineResult(" in repr(r)
    r.check_returncode()


def test_single_stage():
    r = pipeline(["echo", "hi"], stdout=PIPE)
    assert r.stdout == b"hi\n" and r.stderr is None
    assert r.returncodes == [0]


def test_tuple_stages_and_pathlike(tmp_path):
    import pathlib
    r = pipeline(("echo", pathlib.Path("x/y")), ("cat",), stdout=PIPE)
    assert r.stdout == b"x/y\n"
    assert r.stages[0].args == ("echo", pathlib.Path("x/y"))


def test_input_bytes_and_text():
    r = pipeline(["tr", "a-z", "A-Z"], ["tr", "ABC", "CBA"], input=b"abc\n",
                 stdout=PIPE)
    assert r.stdout == b"CBA\n"
    r = pipeline(["cat"], ["cat"], input="h\u00e9llo\r\n", text=True,
                 encoding="utf-8", stdout=PIPE)
    assert r.stdout == "h\u00e9llo\n"        # universal newlines
    r = pipeline(["cat"], input="x", encoding="latin-1", capture_output=True)
    assert r.stdout == "x" and r.stderr == ""


def test_stdin_pipe_without_input_is_eof():
    r = pipeline(["cat"], ["wc", "-c"], stdin=PIPE, stdout=PIPE)
    assert r.stdout.strip() == b"0"


def test_big_input_and_output_through_three_stages():
    data = os.urandom(3 << 20)
    r = pipeline(["cat"], ["cat"], ["cat"], input=data, stdout=PIPE)
    assert r.stdout == data


def test_stream_never_passes_through_python():
    # 64 MiB through three stages: only the count comes back.
    r = pipeline(["head", "-c", str(64 << 20), "/dev/zero"], ["cat"],
                 ["wc", "-c"], stdout=PIPE)
    assert int(r.stdout) == 64 << 20


def test_returncodes_and_pipefail():
    r = pipeline(["sh", "-c", "exit 3"], ["sh", "-c", "cat; exit 5"],
                 ["true"])
    assert r.returncodes == [3, 5, 0]
    assert r.returncode == 3          # the first failing stage
    assert r.failed_stage == 0
    with pytest.raises(subprocess.CalledProcessError) as ei:
        r.check_returncode()
    assert ei.value.returncode == 3


def test_check_raises_for_first_failing_stage():
    with pytest.raises(subprocess.CalledProcessError) as ei:
        pipeline(["echo", "x"], ["sh", "-c", "cat; exit 7"],
                 ["sh", "-c", "cat >/dev/null; exit 9"],
                 capture_output=True, check=True)
    e = ei.value
    assert e.returncode == 7
    assert e.cmd == ["sh", "-c", "cat; exit 7"]
    assert e.stage == 1
    assert e.result.returncodes == [0, 7, 9]
    assert e.output == b""


def test_check_passes():
    r = pipeline(["echo", "ok"], ["cat"], check=True, stdout=PIPE)
    assert r.stdout == b"ok\n"


def test_sigpipe_upstream_counts_as_failure():
    r = pipeline(["yes"], ["head", "-1"], stdout=PIPE)
    assert r.stdout == b"y\n"
    assert r.returncodes == [-signal.SIGPIPE, 0]
    with pytest.raises(subprocess.CalledProcessError) as ei:
        pipeline(["yes"], ["head", "-1"], stdout=PIPE, check=True)
    assert ei.value.returncode == -signal.SIGPIPE
    assert ei.value.cmd == ["yes"]


def test_stderr_capture_merges_all_stages():
    r = pipeline(["sh", "-c", "echo one >&2; echo data"],
                 ["sh", "-c", "echo two >&2; cat"],
                 ["sh", "-c", "cat; echo three >&2"], capture_output=True)
    assert r.stdout == b"data\n"
    assert sorted(r.stderr.split()) == [b"one", b"three", b"two"]


def test_stderr_stdout_goes_to_pipeline_output():
    r = pipeline(["sh", "-c", "echo e1 >&2; echo d1"],
                 ["sh", "-c", "cat; echo e2 >&2"],
                 stdout=PIPE, stderr=STDOUT)
    # e1 never enters stage 2's input: it joins the final output.
    assert sorted(r.stdout.split()) == [b"d1", b"e1", b"e2"]
    assert r.stderr is None


def test_stderr_stdout_with_devnull_and_file(tmp_path):
    r = pipeline(["sh", "-c", "echo e >&2"], ["cat"], stdout=DEVNULL,
                 stderr=STDOUT)
    assert r.returncodes == [0, 0]
    path = tmp_path / "out"
    with open(path, "wb") as f:
        pipeline(["sh", "-c", "echo e1 >&2; echo d"],
                 ["sh", "-c", "cat; echo e2 >&2"], stdout=f, stderr=STDOUT)
    assert sorted(path.read_bytes().split()) == [b"d", b"e1", b"e2"]


def test_stdio_from_fds_and_files(tmp_path):
    src = tmp_path / "in"
    src.write_bytes(b"3\n1\n2\n")
    dst = tmp_path / "out"
    err = tmp_path / "err"
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        errfd = os.open(err, os.O_WRONLY | os.O_CREAT)
        try:
            r = pipeline(["sort", "-n"], ["sh", "-c", "cat; echo warn >&2"],
                         stdin=fin, stdout=fout.fileno(), stderr=errfd)
        finally:
            os.close(errfd)
    assert r.stdout is None and r.stderr is None
    assert dst.read_bytes() == b"1\n2\n3\n"
    assert err.read_bytes() == b"warn\n"


def test_devnull():
    r = pipeline(["cat"], ["wc", "-c"], stdin=DEVNULL, stdout=PIPE,
                 stderr=DEVNULL)
    assert r.stdout.strip() == b"0"


def test_cwd_and_env_apply_to_every_stage(tmp_path):
    r = pipeline(["sh", "-c", "pwd; echo $FS_X"],
                 ["sh", "-c", "cat; pwd; echo $FS_X"], cwd=tmp_path,
                 env={"FS_X": "val", "PATH": os.environ["PATH"]},
                 stdout=PIPE)
    real = os.path.realpath(tmp_path).encode()
    assert r.stdout.split() == [real, b"val", real, b"val"]


def test_stages_inherit_no_other_fds():
    lister = [PY, "-c",
              "import os, sys; sys.stdin.read(); "
              "print(sorted(int(f) for f in os.listdir('/proc/self/fd')))"]
    r = pipeline(["echo", "x"], lister, ["cat"], capture_output=True)
    # 0, 1, 2 and the fd listdir used.
    fds = eval(r.stdout)
    assert fds[:3] == [0, 1, 2] and len(fds) <= 4


def test_timeout_kills_every_stage():
    t0 = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired) as ei:
        pipeline(["sh", "-c", "echo partial; exec sleep 30"], ["cat"],
                 ["cat"], capture_output=True, timeout=0.5)
    assert time.monotonic() - t0 < 5
    assert ei.value.timeout == 0.5
    assert ei.value.cmd == [["sh", "-c", "echo partial; exec sleep 30"],
                            ["cat"], ["cat"]]
    assert ei.value.output == b"partial\n"
    # conftest's leak check: every stage killed and reaped, no fd left.


def test_timeout_without_pipes():
    t0 = time.monotonic()
    with pytest.raises(subprocess.TimeoutExpired):
        pipeline(["sleep", "30"], ["sleep", "30"], timeout=0.3)
    assert time.monotonic() - t0 < 5


def test_timeout_not_reached():
    r = pipeline(["echo", "x"], ["cat"], stdout=PIPE, timeout=30)
    assert r.stdout == b"x\n"


def test_empty_pipeline():
    with pytest.raises(ValueError, match="at least one command"):
        pipeline()


@pytest.mark.parametrize("bad, exc", [
    ("ls -l", TypeError),
    (b"ls", TypeError),
    (42, TypeError),
    (None, TypeError),
    ([], ValueError),
    ([["ls"], ["cat"]], TypeError),      # pipeline([a, b]) instead of (a, b)
    (["ls", None], TypeError),
    (["l\0s"], ValueError),
])
def test_bad_stage_starts_nothing(bad, exc):
    with pytest.raises(exc):
        pipeline(["sleep", "30"], bad)


def test_bad_arguments():
    with pytest.raises(ValueError):
        pipeline(["cat"], stdin=DEVNULL, input=b"x")
    with pytest.raises(ValueError):
        pipeline(["cat"], capture_output=True, stdout=PIPE)
    with pytest.raises(ValueError):
        pipeline(["cat"], stdout=STDOUT)
    with pytest.raises(TypeError):
        pipeline(["cat"], stdout="file.txt")
    with pytest.raises(ValueError):
        pipeline(["cat"], env={"A=B": "1"})


def test_missing_program_kills_started_stages():
    t0 = time.monotonic()
    with pytest.raises(FileNotFoundError) as ei:
        pipeline(["sleep", "30"], ["cat"], ["fastspawn-no-such-program"],
                 ["cat"], capture_output=True)
    assert ei.value.filename == "fastspawn-no-such-program"
    assert time.monotonic() - t0 < 5
    # conftest: the sleep and cat stages are killed and reaped, every pipe
    # closed.


def test_first_stage_missing():
    with pytest.raises(FileNotFoundError):
        pipeline(["/nonexistent/prog"], ["cat"], input=b"x")


def test_not_executable(tmp_path):
    p = tmp_path / "script"
    p.write_text("#!/bin/sh\necho hi\n")
    os.chmod(p, 0o644)
    with pytest.raises(PermissionError):
        pipeline(["echo", "x"], [str(p)])


def test_bad_cwd():
    with pytest.raises(FileNotFoundError) as ei:
        pipeline(["echo", "x"], ["cat"], cwd="/nonexistent-dir-fs")
    assert ei.value.filename == "/nonexistent-dir-fs"


def test_interrupt_kills_and_reaps():
    class Boom(Exception):
        pass

    def handler(signum, frame):
        raise Boom()

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, 0.3)
    t0 = time.monotonic()
    try:
        with pytest.raises(Boom):
            pipeline(["sleep", "30"], ["cat"], capture_output=True)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert time.monotonic() - t0 < 5


def test_matches_shell():
    want = subprocess.check_output("seq 1 1000 | grep 7 | wc -l", shell=True)
    r = pipeline(["seq", "1", "1000"], ["grep", "7"], ["wc", "-l"],
                 stdout=PIPE, check=True)
    assert r.stdout == want


def test_exported():
    assert fastspawn.pipeline is pipeline
    assert "pipeline" in fastspawn.__all__
    assert "PipelineResult" in fastspawn.__all__


def test_pipe_size():
    if not sys.platform.startswith("linux"):
        pytest.skip("F_SETPIPE_SZ is Linux's")
    # The middle stage reports the capacity of its stdin and stdout pipes.
    probe = [PY, "-c",
             "import fcntl, sys; print(fcntl.fcntl(0, 1032), "
             "fcntl.fcntl(1, 1032), file=sys.stderr); "
             "sys.stdout.write(sys.stdin.read())"]
    r = pipeline(["echo", "x"], probe, ["cat"], capture_output=True,
                 pipe_size=1 << 20)
    assert r.stdout == b"x\n"
    assert r.stderr.split() == [b"1048576", b"1048576"]
    r = pipeline(["echo", "x"], probe, ["cat"], capture_output=True)
    assert r.stderr.split() == [b"65536", b"65536"]


def test_pipe_size_bad():
    with pytest.raises(ValueError):
        pipeline(["true"], ["true"], pipe_size=0)
    with pytest.raises(TypeError):
        pipeline(["true"], ["true"], pipe_size="big")
    with pytest.raises(ValueError):
        pipeline(["true"], ["true"], pipe_size=1 << 40)
    if sys.platform.startswith("linux"):
        # More than the kernel grants: OSError, no fd or child left.
        with pytest.raises(OSError):
            pipeline(["sleep", "30"], ["cat"], ["cat"],
                     pipe_size=(1 << 31) - 1)

"""fastspawn.daemon: detached processes with pid-reuse-safe pidfiles.

These tests start real daemons. The ``daemons`` fixture kills every one a
test started (checking its start time first) even when the test fails.
Every test runs on both backends (conftest's autouse fixture)."""
import ast
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

import fastspawn
from fastspawn import daemon

PY = sys.executable
SRC = os.path.dirname(os.path.dirname(os.path.abspath(fastspawn.__file__)))

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="inspects /proc")

# The daemon under test: reports how it was started, then idles.
DAEMON = r"""
import os, signal, sys, time
if "ignore-term" in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
um = os.umask(0); os.umask(um)
try:
    os.close(os.open("/dev/tty", os.O_RDWR)); tty = "yes"
except OSError as e:
    tty = e.errno
info = dict(pid=os.getpid(), ppid=os.getppid(), sid=os.getsid(0),
            pgid=os.getpgrp(), cwd=os.getcwd(), umask=um,
            env=os.environ.get("FS_D"), tty=tty,
            fds=sorted(int(f) for f in os.listdir("/proc/self/fd")),
            stdin=os.readlink("/proc/self/fd/0"))
print(repr(info), flush=True)
print("stderr-line", file=sys.stderr, flush=True)
while True:
    time.sleep(1)
"""


def wait_for(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = cond()
        if v:
            return v
        time.sleep(0.01)
    raise AssertionError("condition not met in %gs" % timeout)


def read_info(log):
    def get():
        try:
            with open(log) as f:
                for line in f:
                    if line.startswith("{"):
                        return ast.literal_eval(line)
        except FileNotFoundError:
            return None
    return wait_for(get)


def proc_state(pid):
    """The /proc state letter of pid, or None when it is gone."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            stat = f.read()
    except FileNotFoundError:
        return None
    return stat[stat.rfind(b")") + 2:].split()[0].decode()


def alive(pid):
    return proc_state(pid) not in (None, "Z", "X")


@pytest.fixture
def daemons(tmp_path):
    """Records pidfiles/pids; kills whatever is still alive afterwards."""
    pidfiles, pids = [], []

    class Reg:
        def pidfile(self, name="d.pid"):
            p = str(tmp_path / name)
            pidfiles.append(p)
            return p

        def pid(self, pid):
            pids.append(pid)
            return pid

    yield Reg()
    for p in pidfiles:
        info = daemon._read(p)
        if info is not None:
            pids.append(info.pid)
            if daemon._matches(info):
                if not hasattr(os, "pidfd_open"):    # e.g. PyPy 3.9
                    # The pid loop below kills it if it still runs our
                    # daemon code.
                    continue
                try:
                    fd = os.pidfd_open(info.pid)
                except OSError:
                    continue
                try:
                    if daemon._matches(info):
                        signal.pidfd_send_signal(fd, signal.SIGKILL)
                finally:
                    os.close(fd)
    for pid in pids:
        # Only processes that are not ours anymore and still run the test
        # daemon code (the pid may have been reused meanwhile).
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if b"while True" in cmd or b"sleep" in cmd:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def start_daemon(daemons, tmp_path, *extra, name="d.pid", **kw):
    pidfile = daemons.pidfile(name)
    log = str(tmp_path / (name + ".log"))
    kw.setdefault("stdout", log)
    kw.setdefault("stderr", daemon.STDOUT)
    pid = daemons.pid(daemon.start([PY, "-c", DAEMON] + list(extra),
                                   pidfile, **kw))
    return pid, pidfile, log


def test_start_status_stop(daemons, tmp_path):
    pid, pidfile, log = start_daemon(daemons, tmp_path)
    info = read_info(log)
    assert info["pid"] == pid
    assert daemon.status(pidfile) == pid
    # Detached: not our child, its own session, not the session leader
    # (can never get a controlling terminal), none now either.
    assert info["ppid"] != os.getpid()
    assert info["sid"] != os.getsid(0) and info["sid"] != pid
    assert info["pgid"] == info["sid"]
    assert info["tty"] != "yes"
    assert info["stdin"] == "/dev/null"
    assert info["fds"][:3] == [0, 1, 2] and len(info["fds"]) <= 4
    assert info["cwd"] == "/" and info["umask"] == 0o022
    # The pidfile is the pid and a newline, nothing else (FHS); who that
    # pid is goes beside it.
    with open(pidfile, "rb") as f:
        assert f.read() == b"%d\n" % pid
    with open(pidfile + ".ident") as f:
        ident = f.read().splitlines()
    assert ident[0] == "pid=%d" % pid
    assert ident[1] == "start=%s" % daemon._start_time(pid)
    # No temporary or lock file left behind.
    assert sorted(os.listdir(tmp_path)) == ["d.pid", "d.pid.ident",
                                            "d.pid.log"]
    with open(log) as f:
        assert "stderr-line" in f.read()

    assert daemon.stop(pidfile) is True
    assert not alive(pid)
    assert daemon.status(pidfile) is None
    assert not os.path.exists(pidfile)
    assert not os.path.exists(pidfile + ".ident")
    assert not os.path.exists(pidfile + ".lock")
    assert daemon.stop(pidfile) is False


@pytest.mark.parametrize("tool", ["kill-cat", "pkill-F"])
def test_pidfile_works_with_the_usual_tools(daemons, tmp_path, tool):
    """``kill $(cat app.pid)`` and ``pkill -F app.pid`` take our pidfile."""
    pid, pidfile, log = start_daemon(daemons, tmp_path)
    read_info(log)
    if tool == "kill-cat":
        cmd = ["sh", "-c", 'kill "$(cat "$1")"', "sh", pidfile]
    else:
        if shutil.which("pkill") is None:
            pytest.skip("no pkill")
        cmd = ["pkill", "-F", pidfile]
    # The tools as a user runs them: without the sanitizer pass's preloaded
    # ASan runtime (pkill deadlocks in its start-up under it).
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=30,
                       env=env)
    assert r.returncode == 0 and r.stderr == "", r
    wait_for(lambda: not alive(pid))
    # Its process gone, the pidfile is stale.
    assert daemon.status(pidfile) is None
    assert daemon.stop(pidfile) is False
    assert os.listdir(tmp_path) == ["d.pid.log"]


def test_pidfile_written_by_another_tool(daemons, tmp_path):
    """A pid-only pidfile, no ident file: taken on the pid's word."""
    victim = subprocess.Popen(["sleep", "30"])
    try:
        pidfile = daemons.pidfile()
        with open(pidfile, "w") as f:
            f.write("%d\n" % victim.pid)
        assert daemon.status(pidfile) == victim.pid
        with pytest.raises(daemon.AlreadyRunning):
            daemon.start(["sleep", "30"], pidfile)
        # An ident file about another pid (the pidfile was rewritten
        # since) does not speak for this one.
        with open(pidfile + ".ident", "w") as f:
            f.write("pid=%d\nstart=1\n" % (victim.pid + 1))
        assert daemon.status(pidfile) == victim.pid
        assert daemon.stop(pidfile) is True
        assert victim.wait(timeout=10) == -signal.SIGTERM
        assert os.listdir(tmp_path) == []
    finally:
        victim.kill()
        victim.wait()


def test_cwd_umask_env(daemons, tmp_path):
    pid, pidfile, log = start_daemon(
        daemons, tmp_path, cwd=str(tmp_path), umask=0o077,
        env={"FS_D": "dval", "PATH": os.environ.get("PATH", "")})
    info = read_info(log)
    assert info["cwd"] == os.path.realpath(tmp_path)
    assert info["umask"] == 0o077
    assert info["env"] == "dval"
    assert daemon.stop(pidfile)


def test_logs_are_appended_and_separate(daemons, tmp_path):
    out = tmp_path / "out.log"
    err = tmp_path / "err.log"
    out.write_text("old out\n")
    err.write_text("old err\n")
    pid, pidfile, _ = start_daemon(daemons, tmp_path, stdout=out,
                                   stderr=str(err))
    wait_for(lambda: "stderr-line" in err.read_text())
    info = read_info(out)
    assert info["pid"] == pid
    assert out.read_text().startswith("old out\n")
    assert err.read_text() == "old err\nstderr-line\n"
    assert daemon.stop(pidfile)


def test_devnull_by_default(daemons, tmp_path):
    pid, pidfile, _ = start_daemon(daemons, tmp_path, stdout=None,
                                   stderr=None)
    for fd in (0, 1, 2):
        assert os.readlink("/proc/%d/fd/%d" % (pid, fd)) == "/dev/null"
    assert daemon.stop(pidfile)


def test_log_as_file_object(daemons, tmp_path):
    path = tmp_path / "obj.log"
    with open(path, "ab") as f:
        pid, pidfile, _ = start_daemon(daemons, tmp_path, stdout=f,
                                       stderr=f.fileno())
    assert read_info(path)["pid"] == pid
    assert daemon.stop(pidfile)


def _starter_env(backend):
    env = dict(os.environ)
    env["PYTHONPATH"] = SRC
    if backend.__name__.endswith("_spawn_py"):
        env["FASTSPAWN_NO_EXTENSIONS"] = "1"
    else:
        env.pop("FASTSPAWN_NO_EXTENSIONS", None)
    return env


STARTER = r"""
import sys, time
from fastspawn import daemon
pid = daemon.start([sys.executable, "-c", sys.argv[1]], sys.argv[2],
                   stdout=sys.argv[3])
print(pid, flush=True)
if sys.argv[4] == "linger":
    time.sleep(60)
"""


def test_survives_parent_exit(daemons, tmp_path, backend):
    pidfile = daemons.pidfile()
    log = str(tmp_path / "log")
    r = subprocess.run([PY, "-c", STARTER, DAEMON, pidfile, log, "exit"],
                       env=_starter_env(backend), stdout=subprocess.PIPE,
                       check=True, timeout=60)
    pid = daemons.pid(int(r.stdout))
    info = read_info(log)
    assert info["pid"] == pid
    time.sleep(0.2)
    assert alive(pid)
    assert daemon.status(pidfile) == pid
    assert daemon.stop(pidfile)
    assert not alive(pid)


def test_survives_parent_sigkill(daemons, tmp_path, backend):
    pidfile = daemons.pidfile()
    log = str(tmp_path / "log")
    starter = subprocess.Popen(
        [PY, "-c", STARTER, DAEMON, pidfile, log, "linger"],
        env=_starter_env(backend), stdout=subprocess.PIPE)
    try:
        pid = daemons.pid(int(starter.stdout.readline()))
        assert read_info(log)["ppid"] != starter.pid
    finally:
        starter.kill()
        starter.wait()
        starter.stdout.close()
    assert starter.returncode == -signal.SIGKILL
    time.sleep(0.2)
    assert alive(pid)
    assert daemon.status(pidfile) == pid
    assert daemon.stop(pidfile)


def test_refuses_to_start_twice(daemons, tmp_path):
    pid, pidfile, _ = start_daemon(daemons, tmp_path)
    with open(pidfile) as f:
        before = f.read()
    with pytest.raises(daemon.AlreadyRunning) as ei:
        daemon.start(["sleep", "30"], pidfile)
    assert ei.value.pid == pid and str(pid) in str(ei.value)
    with open(pidfile) as f:
        assert f.read() == before
    assert daemon.stop(pidfile)


def write_pidfile(pidfile, pid, legacy=False, **ident):
    """A pidfile and its ident file as start() writes them; ``legacy``:
    in one file, as fastspawn wrote them before (pid, start=, boot=)."""
    lines = ["%s=%s" % kv for kv in ident.items()]
    if legacy:
        with open(pidfile, "w") as f:
            f.write("".join(x + "\n" for x in ["%d" % pid] + lines))
        return
    with open(pidfile, "w") as f:
        f.write("%d\n" % pid)
    with open(pidfile + ".ident", "w") as f:
        f.write("".join(x + "\n" for x in ["pid=%d" % pid] + lines))


def _dead_pid():
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_stale_pidfile_is_replaced(daemons, tmp_path):
    pidfile = daemons.pidfile()
    dead = _dead_pid()
    write_pidfile(pidfile, dead, start="12345")
    assert daemon.status(pidfile) is None
    pid, _, _ = start_daemon(daemons, tmp_path)
    assert pid != dead
    assert daemon.status(pidfile) == pid
    assert daemon.stop(pidfile)


@pytest.mark.parametrize("content", ["", "garbage\n", "-5\n", "\xff\n"])
def test_garbage_pidfile_is_stale(daemons, tmp_path, content):
    pidfile = daemons.pidfile()
    with open(pidfile, "w", encoding="latin-1") as f:
        f.write(content)
    assert daemon.status(pidfile) is None
    assert daemon.stop(pidfile) is False
    assert not os.path.exists(pidfile)


@pytest.mark.parametrize("legacy", [False, True], ids=["ident", "legacy"])
def test_reused_pid_is_never_signalled(daemons, tmp_path, legacy):
    # The pidfile names a live process that is not the one it recorded
    # (different start time): as after the daemon died and its pid was
    # reused. ``legacy``: the one-file format of earlier versions.
    victim = subprocess.Popen(["sleep", "30"])
    try:
        pidfile = daemons.pidfile()
        write_pidfile(pidfile, victim.pid, legacy, start="1")
        assert daemon.status(pidfile) is None
        assert daemon.stop(pidfile, timeout=0.1) is False
        assert not os.path.exists(pidfile)
        assert not os.path.exists(pidfile + ".ident")
        time.sleep(0.1)
        assert victim.poll() is None      # untouched
        # And start() replaces such a pidfile instead of refusing.
        write_pidfile(pidfile, victim.pid, legacy, start="1")
        pid, _, _ = start_daemon(daemons, tmp_path)
        assert daemon.status(pidfile) == pid
        assert daemon.stop(pidfile)
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


@pytest.mark.parametrize("legacy", [False, True], ids=["ident", "legacy"])
def test_pidfile_from_another_boot_is_stale(daemons, tmp_path, legacy):
    victim = subprocess.Popen(["sleep", "30"])
    try:
        pidfile = daemons.pidfile()
        start = daemon._start_time(victim.pid)
        write_pidfile(pidfile, victim.pid, legacy, start=start,
                      boot="not-this-boot")
        assert daemon.status(pidfile) is None
        write_pidfile(pidfile, victim.pid, legacy, start=start)
        assert daemon.status(pidfile) == victim.pid
    finally:
        victim.kill()
        victim.wait()


def test_stop_escalates_to_sigkill(daemons, tmp_path):
    pid, pidfile, log = start_daemon(daemons, tmp_path, "ignore-term")
    read_info(log)          # SIGTERM is ignored from here on
    t0 = time.monotonic()
    assert daemon.stop(pidfile, timeout=0.5) is True
    elapsed = time.monotonic() - t0
    assert 0.4 < elapsed < 5
    assert not alive(pid)
    assert not os.path.exists(pidfile)


def test_stop_uses_sigterm_first(daemons, tmp_path):
    pid, pidfile, log = start_daemon(daemons, tmp_path)
    read_info(log)
    t0 = time.monotonic()
    assert daemon.stop(pidfile, timeout=30)
    assert time.monotonic() - t0 < 5
    # A zombie (nobody may reap it here) shows how it died; else gone.
    assert not alive(pid)


def test_restart(daemons, tmp_path):
    pid, pidfile, log = start_daemon(daemons, tmp_path)
    new = daemons.pid(daemon.restart([PY, "-c", DAEMON], pidfile,
                                     stdout=log, stderr=daemon.STDOUT))
    assert new != pid
    assert not alive(pid)
    assert daemon.status(pidfile) == new
    assert daemon.stop(pidfile)
    # restart() with nothing running just starts.
    again = daemons.pid(daemon.restart(["sleep", "30"], pidfile))
    assert daemon.status(pidfile) == again
    assert daemon.stop(pidfile)


def test_missing_program(daemons, tmp_path):
    pidfile = daemons.pidfile()
    with pytest.raises(FileNotFoundError) as ei:
        daemon.start(["fastspawn-no-such-daemon"], pidfile)
    assert ei.value.filename == "fastspawn-no-such-daemon"
    with pytest.raises(FileNotFoundError):
        daemon.start(["/nonexistent/daemon"], pidfile)
    assert os.listdir(tmp_path) == []


def test_not_executable(daemons, tmp_path):
    script = tmp_path / "srv"
    script.write_text("#!/bin/sh\nsleep 30\n")
    os.chmod(script, 0o644)
    pidfile = daemons.pidfile()
    with pytest.raises(PermissionError):
        daemon.start([str(script)], pidfile)
    assert not os.path.exists(pidfile)


def test_exec_error_reported_by_the_helper(daemons, tmp_path):
    # Passes the access check, fails in exec: ENOEXEC.
    script = tmp_path / "srv"
    script.write_bytes(b"\x7fELF garbage")
    os.chmod(script, 0o755)
    pidfile = daemons.pidfile()
    with pytest.raises(OSError) as ei:
        daemon.start([str(script)], pidfile)
    assert ei.value.errno == __import__("errno").ENOEXEC
    assert not os.path.exists(pidfile)


def test_bad_cwd(daemons, tmp_path):
    pidfile = daemons.pidfile()
    with pytest.raises(FileNotFoundError) as ei:
        daemon.start(["sleep", "30"], pidfile, cwd="/nonexistent-fs-cwd")
    assert ei.value.filename == "/nonexistent-fs-cwd"
    assert not os.path.exists(pidfile)


def test_relative_program_resolved_against_callers_cwd(daemons, tmp_path,
                                                        monkeypatch):
    script = tmp_path / "srv"
    script.write_text("#!/bin/sh\nexec sleep 30\n")
    os.chmod(script, 0o755)
    monkeypatch.chdir(tmp_path)
    pidfile = daemons.pidfile()
    pid = daemons.pid(daemon.start(["./srv"], "d.pid"))   # cwd is "/"
    assert daemon.status(pidfile) == pid
    assert daemon.stop("d.pid")


def test_bad_input(daemons, tmp_path):
    pidfile = daemons.pidfile()
    with pytest.raises(TypeError):
        daemon.start("sleep 30", pidfile)
    with pytest.raises(ValueError):
        daemon.start([], pidfile)
    with pytest.raises(ValueError):
        daemon.start(["sleep", "30"], pidfile, stdout=daemon.STDOUT)
    with pytest.raises(TypeError):
        daemon.start(["sleep", "30"], pidfile, stdout=3.5)
    with pytest.raises(ValueError):
        daemon.start(["sleep", "30"], pidfile, cwd="/\0")
    with pytest.raises(TypeError):
        daemon.restart("sleep", pidfile)
    assert os.listdir(tmp_path) == []


def test_pidfile_dir_missing(daemons, tmp_path):
    with pytest.raises(FileNotFoundError):
        daemon.start(["sleep", "30"], str(tmp_path / "no" / "d.pid"))


def test_exported():
    assert fastspawn.daemon is daemon
    assert "daemon" in fastspawn.__all__

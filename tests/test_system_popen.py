"""fastspawn.system / fastspawn.popen against os.system / os.popen."""
import os
import sys
import pathlib
import signal
import warnings

import pytest

import fastspawn
from fsutil import assert_same_signal_state, exc_info, sigign_quirk

SCRIPTS = ["exit 0", "exit 3", "exit 255", "kill -9 $$", "kill -15 $$",
           "true", "false", "no-such-command-fastspawn 2>/dev/null"]


# ---------------------------------------------------------------------------
# system


@pytest.mark.parametrize("cmd", SCRIPTS)
def test_system_status_like_os(cmd):
    assert fastspawn.system(cmd) == os.system(cmd)


def test_system_status_values():
    assert fastspawn.system("exit 0") == 0
    assert fastspawn.system("exit 3") == 3 << 8
    st = fastspawn.system("kill -9 $$")
    assert os.WIFSIGNALED(st) and os.WTERMSIG(st) == signal.SIGKILL
    assert fastspawn.system("no-such-command-fastspawn 2>/dev/null") \
        == 127 << 8


def test_system_output_like_os(capfdbinary):
    cmd = "printf 'out \\342\\230\\203\\n'; printf err >&2; echo \"$0\""
    assert fastspawn.system(cmd) == 0
    ours = capfdbinary.readouterr()
    assert os.system(cmd) == 0
    theirs = capfdbinary.readouterr()
    assert (ours.out, ours.err) == (theirs.out, theirs.err)
    assert ours.out.startswith("out \u2603\n".encode())
    assert ours.err == b"err"


def test_system_env(capfdbinary, monkeypatch):
    monkeypatch.setenv("FASTSPAWN_SYS", "value with space")
    assert fastspawn.system('printf %s "$FASTSPAWN_SYS"') == 0
    assert capfdbinary.readouterr().out == b"value with space"


def test_system_cwd(capfdbinary, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert fastspawn.system("pwd") == 0
    assert capfdbinary.readouterr().out.decode().strip() == \
        os.path.realpath(tmp_path)


@pytest.mark.parametrize("cmd", [b"exit 4", pathlib.Path("false")])
def test_system_bytes_and_pathlike(cmd):
    assert fastspawn.system(cmd) == os.system(cmd)


@pytest.mark.parametrize("cmd", [1, None, 1.5, ["true"], "a\0b", b"a\0b"])
def test_system_bad_command_like_os(cmd):
    assert exc_info(fastspawn.system, cmd) == exc_info(os.system, cmd)


def test_system_restores_signal_handlers():
    before = (signal.getsignal(signal.SIGINT),
              signal.getsignal(signal.SIGQUIT))
    fastspawn.system("exit 0")
    fastspawn.system("kill -9 $$")
    after = (signal.getsignal(signal.SIGINT),
             signal.getsignal(signal.SIGQUIT))
    assert before == after


# glibc's internal signals (SIGCANCEL=32, SIGSETXID=33): glibc's system()
# spawns through posix_spawn, whose child leaves them SIG_IGN across exec.
# fastspawn gives the child the parent's dispositions instead (a documented
# difference, see README), as os.spawn* and subprocess children get them.
_GLIBC_INTERNAL = (1 << 31) | (1 << 32)


def _sig_masks(text):
    return {line.split(b":")[0]: int(line.split(b":")[1], 16)
            for line in text.splitlines()}


def test_system_child_signal_state_like_os(capfdbinary, backend):
    cmd = "exec grep -E '^Sig(Ign|Blk)' /proc/self/status"
    assert fastspawn.system(cmd) == 0
    ours = _sig_masks(capfdbinary.readouterr().out)
    assert os.system(cmd) == 0
    theirs = _sig_masks(capfdbinary.readouterr().out)
    quirk = sigign_quirk(backend)
    assert ours[b"SigBlk"] == theirs[b"SigBlk"]
    assert ours[b"SigIgn"] & ~quirk == theirs[b"SigIgn"] & ~_GLIBC_INTERNAL
    with open("/proc/self/status", "rb") as f:
        parent = _sig_masks(b"".join(
            line for line in f if line.startswith(b"SigIgn")))
    assert ours[b"SigIgn"] & ~quirk == parent[b"SigIgn"]


def test_system_inherits_fds_like_os():
    inh = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(inh, True)
    private = os.open(os.devnull, os.O_RDONLY)
    try:
        for fd in (inh, private):
            cmd = "[ -e /proc/$$/fd/%d ]" % fd
            assert fastspawn.system(cmd) == os.system(cmd)
        assert fastspawn.system("[ -e /proc/$$/fd/%d ]" % inh) == 0
    finally:
        os.close(inh)
        os.close(private)


def test_system_stdin_is_inherited(tmp_path):
    (tmp_path / "in").write_bytes(b"42\n")
    saved = os.dup(0)
    try:
        with open(tmp_path / "in", "rb") as f:
            os.dup2(f.fileno(), 0)
        st = fastspawn.system("read x; exit $x")
    finally:
        os.dup2(saved, 0)
        os.close(saved)
    assert st == 42 << 8


# ---------------------------------------------------------------------------
# popen: reading


def test_popen_read_like_os():
    cmd = "printf 'a\\nb \\342\\230\\203\\n'; printf tail"
    with fastspawn.popen(cmd) as f:
        ours = f.read()
    with os.popen(cmd) as f:
        theirs = f.read()
    assert ours == theirs == "a\nb \u2603\ntail"


def test_popen_iteration():
    f = fastspawn.popen("printf 'x\\ny\\nz'")
    try:
        assert list(f) == ["x\n", "y\n", "z"]
    finally:
        assert f.close() is None


def test_popen_readline_and_readlines():
    f = fastspawn.popen("printf '1\\n2\\n3\\n'")
    assert f.readline() == "1\n"
    assert f.readlines() == ["2\n", "3\n"]
    assert f.close() is None


def test_popen_large_output():
    cmd = "i=0; while [ $i -lt 2000 ]; do echo line-$i; i=$((i+1)); done"
    with fastspawn.popen(cmd) as f:
        lines = f.read().splitlines()
    assert lines == ["line-%d" % i for i in range(2000)]


@pytest.mark.parametrize("cmd", SCRIPTS + ["printf abc; exit 5"])
@pytest.mark.parametrize("mode", ["r", "w"])
def test_popen_close_status_like_os(cmd, mode):
    f = fastspawn.popen(cmd, mode)
    if mode == "r":
        f.read()
    ours = f.close()
    g = os.popen(cmd, mode)
    if mode == "r":
        g.read()
    theirs = g.close()
    assert ours == theirs


def test_popen_close_values():
    assert fastspawn.popen("exit 0").close() is None
    assert fastspawn.popen("exit 3").close() == 3 << 8
    assert fastspawn.popen("kill -9 $$").close() == -signal.SIGKILL << 8
    assert fastspawn.popen("exit 3", "w").close() == 3 << 8


def test_popen_with_closes_and_reaps():
    with fastspawn.popen("printf hi") as f:
        assert f.read() == "hi"
    assert f.closed
    with pytest.raises(ChildProcessError):
        os.waitpid(-1, os.WNOHANG)


def test_popen_close_twice():
    f = fastspawn.popen("exit 3")
    g = os.popen("exit 3")
    assert f.close() == g.close()
    assert f.close() == g.close()


def test_popen_fileno_and_attrs_like_os():
    for mode in ("r", "w"):
        for buffering in (-1, 1, 4096):
            f = fastspawn.popen("cat >/dev/null" if mode == "w" else "true",
                                mode, buffering)
            g = os.popen("cat >/dev/null" if mode == "w" else "true",
                         mode, buffering)
            try:
                assert f.fileno() >= 0
                assert not os.get_inheritable(f.fileno())
                for attr in ("encoding", "errors", "line_buffering",
                             "write_through", "closed"):
                    assert getattr(f, attr) == getattr(g, attr), \
                        (mode, buffering, attr)
                assert f.readable() == g.readable() == (mode == "r")
                assert f.writable() == g.writable() == (mode == "w")
            finally:
                f.close()
                g.close()


@pytest.mark.parametrize("buffering", [-1, 1, 2, 4096, 1 << 20])
@pytest.mark.parametrize("mode", ["r", "w"])
def test_popen_buffering_values_warn_like_os(buffering, mode, tmp_path):
    """Every buffering os.popen takes works, with exactly os.popen's
    warnings (none from 3.10 on; 3.9's os.popen warns for buffering=1)."""
    def use(mod, out):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if mode == "r":
                with mod.popen("printf 'r1\\nr2\\n'", mode, buffering) as f:
                    assert f.read() == "r1\nr2\n"
            else:
                with mod.popen("cat > '%s'" % out, mode, buffering) as f:
                    f.write("w1\nw2\n")
                assert out.read_text() == "w1\nw2\n"
        return [(w.category, str(w.message)) for w in caught]

    ours = use(fastspawn, tmp_path / "ours")
    assert ours == use(os, tmp_path / "theirs")
    if sys.version_info >= (3, 10):
        assert ours == []


# ---------------------------------------------------------------------------
# popen: writing


def test_popen_write_like_os(tmp_path):
    data = "hello\nw\u00f6rld \u2603\n" * 100
    for mod in (fastspawn, os):
        out = tmp_path / ("out-" + mod.__name__)
        with mod.popen("cat > '%s'" % out, "w") as f:
            f.write(data)
        assert out.read_text() == data
    assert (tmp_path / "out-fastspawn").read_bytes() == \
        (tmp_path / "out-os").read_bytes()


def test_popen_write_close_returns_none(tmp_path):
    out = tmp_path / "out"
    f = fastspawn.popen("cat > '%s'" % out, "w")
    f.write("x")
    assert f.close() is None
    assert out.read_text() == "x"


def test_popen_write_line_buffered_reaches_child(tmp_path):
    """buffering=1: each line is sent at once; the child can answer before
    the stream is closed. (A 'head -n1' reader exits after one line; with
    line buffering the file holds it before close.)"""
    out = tmp_path / "out"
    f = fastspawn.popen("head -n 1 > '%s'" % out, "w", 1)
    try:
        f.write("first\n")
        # Not timing-based: close() waits for the child in any case; what
        # matters is that nothing is lost or reordered.
    finally:
        status = f.close()
    assert status is None
    assert out.read_text() == "first\n"


def test_popen_child_fds_like_os():
    inh = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(inh, True)
    try:
        cmd = "[ -e /proc/$$/fd/%d ] && echo open || echo closed" % inh
        with fastspawn.popen(cmd) as f:
            ours = f.read()
        with os.popen(cmd) as f:
            theirs = f.read()
    finally:
        os.close(inh)
    assert ours == theirs == "closed\n"


def test_popen_child_signals_like_os(backend):
    cmd = "exec grep -E '^Sig(Ign|Blk)' /proc/self/status"
    with fastspawn.popen(cmd) as f:
        ours = f.read()
    with os.popen(cmd) as f:
        theirs = f.read()
    assert_same_signal_state(ours, theirs, backend)


def test_popen_env(monkeypatch):
    monkeypatch.setenv("FASTSPAWN_POPEN", "pv")
    with fastspawn.popen('printf %s "$FASTSPAWN_POPEN"') as f:
        assert f.read() == "pv"


# ---------------------------------------------------------------------------
# popen: errors like os.popen


@pytest.mark.parametrize("cmd", [b"true", None, 1, ["true"],
                                 pathlib.Path("true")])
def test_popen_bad_cmd_type_like_os(cmd):
    assert exc_info(fastspawn.popen, cmd) == exc_info(os.popen, cmd)


@pytest.mark.parametrize("mode", ["rb", "wb", "x", "", "rw", "a", "r+",
                                  "R", None])
def test_popen_bad_mode_like_os(mode):
    assert exc_info(fastspawn.popen, "true", mode) == \
        exc_info(os.popen, "true", mode)


@pytest.mark.parametrize("buffering", [0, None])
def test_popen_unbuffered_like_os(buffering):
    ours = exc_info(fastspawn.popen, "true", "r", buffering)
    assert ours == exc_info(os.popen, "true", "r", buffering)
    assert ours == ("ValueError",
                    "popen() does not support unbuffered streams")


def test_popen_nul_in_cmd_like_os():
    assert exc_info(fastspawn.popen, "a\0b") == exc_info(os.popen, "a\0b")

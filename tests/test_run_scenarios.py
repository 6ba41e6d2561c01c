"""Differential scenario table for the drop-in: every scenario is one call
(``run``, ``call``, ``check_call``, ``check_output``, ``getoutput``,
``getstatusoutput``) made once through ``subprocess`` and once through
``fastspawn``; what comes back must be the same:

* the return value (CompletedProcess args/returncode/stdout/stderr, the
  int of call(), the str/tuple of getoutput()/getstatusoutput()), or
* the exception: its class, str() and the attributes errno, strerror,
  filename, cmd, returncode, output, stdout, stderr, timeout,

plus what the child wrote to files / fds / the test's own fd 1 and 2, and
the warnings the call issued.

Each scenario runs on both backends (the autouse ``backend`` fixture). A
scenario is declarative: placeholders (T, OutFile, PipeAt, ...) are turned
into paths / open files / fds separately for each of the two calls, in
the same tmp dir, so paths in messages are identical.

fastspawn.run() has a direct path (no Popen object) for the common calls;
the "+popen" variants repeat the run() scenarios with close_fds=True (the
default, so nothing changes for subprocess) which sends fastspawn.run()
through its Popen instead: both implementations are checked.

Scenarios that wait for a timeout run their two calls side by side (in two
threads) to halve the time; their warnings are then not compared.
"""
import contextlib
import gc
import hashlib
import os
import pathlib
import re
import shutil
import signal
import subprocess
import sys
import threading
import types
import warnings

import pytest

import fastspawn
from fsutil import (
    PY, approx_timeout, digest, fd_is_open, make_script, outcome, read_all,
)

PIPE = subprocess.PIPE
STDOUT = subprocess.STDOUT
DEVNULL = subprocess.DEVNULL

ROOT = os.geteuid() == 0
root_only = pytest.mark.skipif(not ROOT, reason="needs root")
BASH = shutil.which("bash")

IMPLS = (("subprocess", subprocess), ("fastspawn", fastspawn))

# Deterministic input data.
_PATTERN = bytes(range(256))


def data(n):
    reps = n // len(_PATTERN) + 1
    return (_PATTERN * reps)[:n]


KIB = 1024
MIB = 1024 * KIB


# ---------------------------------------------------------------------------
# placeholders and their per-call context


class Ctx:
    """Resources of one call; ``finish()`` collects what the child wrote
    and closes everything."""

    def __init__(self, tmp, tag):
        self.tmp = str(tmp)
        self.tag = tag
        self.named = {}
        self._collect = []
        self._cleanup = []

    def path(self, *parts):
        return os.path.join(self.tmp, *parts)

    def scratch(self, label):
        return self.path("scratch-%s-%s" % (self.tag, label))

    def on_finish(self, label, func):
        self._collect.append((label, func))

    def on_cleanup(self, func):
        self._cleanup.append(func)

    def finish(self):
        got = {}
        try:
            for label, func in self._collect:
                got[label] = func()
        finally:
            for func in reversed(self._cleanup):
                try:
                    func()
                except OSError:
                    pass
        return got


def _read_path(path):
    with open(path, "rb") as f:
        return f.read()


class P:
    """Base placeholder."""

    def resolve(self, ctx):
        raise NotImplementedError


class F(P):
    """Whatever ``func(ctx)`` returns."""

    def __init__(self, func):
        self.func = func

    def resolve(self, ctx):
        return self.func(ctx)


class T(P):
    """A path under the tmp dir, as str (TB: bytes, TP: pathlib.Path)."""
    kind = str

    def __init__(self, *parts):
        self.parts = parts

    def resolve(self, ctx):
        p = ctx.path(*self.parts) if self.parts else ctx.tmp
        if self.kind is bytes:
            return os.fsencode(p)
        if self.kind is pathlib.Path:
            return pathlib.Path(p)
        return p


class TB(T):
    kind = bytes


class TP(T):
    kind = pathlib.Path


class OutFile(P):
    """A file object (w+b) the child writes to; collected by path."""

    def __init__(self, name="out"):
        self.name = name

    def resolve(self, ctx):
        key = ("file", self.name)
        if key not in ctx.named:
            path = ctx.scratch("file-" + self.name)
            f = open(path, "w+b")
            ctx.on_cleanup(f.close)
            ctx.on_finish("file:" + self.name, lambda: _read_path(path))
            ctx.named[key] = f
        return ctx.named[key]


class OutFd(P):
    """An int fd (O_WRONLY) the child writes to; collected by path."""

    def __init__(self, name="out"):
        self.name = name

    def resolve(self, ctx):
        key = ("fd", self.name)
        if key not in ctx.named:
            path = ctx.scratch("fd-" + self.name)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            ctx.on_cleanup(lambda: os.close(fd))
            ctx.on_finish("fd:" + self.name, lambda: _read_path(path))
            ctx.named[key] = fd
        return ctx.named[key]


class InFile(P):
    """A file object (rb) holding ``content``."""

    def __init__(self, content):
        self.content = content

    def resolve(self, ctx):
        path = ctx.scratch("in-file")
        with open(path, "wb") as f:
            f.write(self.content)
        f = open(path, "rb")
        ctx.on_cleanup(f.close)
        return f


class InFd(P):
    """An int fd (O_RDONLY) holding ``content``."""

    def __init__(self, content):
        self.content = content

    def resolve(self, ctx):
        path = ctx.scratch("in-fd")
        with open(path, "wb") as f:
            f.write(self.content)
        fd = os.open(path, os.O_RDONLY)
        ctx.on_cleanup(lambda: os.close(fd))
        return fd


class PipeAt(P):
    """A pipe whose write end sits at fd ``fd`` (so the number in the
    child's argv is fixed); what arrives on it is collected. Resolves to
    ``fd``."""

    def __init__(self, fd, inheritable=True):
        self.fd = fd
        self.inheritable = inheritable

    def resolve(self, ctx):
        key = ("pipe", self.fd)
        if key in ctx.named:
            return self.fd
        if fd_is_open(self.fd):
            raise RuntimeError("test needs fd %d free" % self.fd)
        r, w = os.pipe()
        os.dup2(w, self.fd, inheritable=self.inheritable)
        os.close(w)
        state = {"open": True}

        def collect():
            os.close(self.fd)
            state["open"] = False
            return read_all(r)

        def cleanup():
            if state["open"]:
                os.close(self.fd)
                os.close(r)

        ctx.on_finish("pipe:%d" % self.fd, collect)
        ctx.on_cleanup(cleanup)
        ctx.named[key] = True
        return self.fd


class InheritableAt(P):
    """/dev/null opened at fd ``fd``, inheritable. Resolves to ``fd``."""

    def __init__(self, fd):
        self.fd = fd

    def resolve(self, ctx):
        if fd_is_open(self.fd):
            raise RuntimeError("test needs fd %d free" % self.fd)
        tmp = os.open(os.devnull, os.O_RDWR)
        os.dup2(tmp, self.fd, inheritable=True)
        os.close(tmp)
        ctx.on_cleanup(lambda: os.close(self.fd))
        return self.fd


def resolve(obj, ctx):
    if isinstance(obj, P):
        return obj.resolve(ctx)
    if isinstance(obj, list):
        return [resolve(o, ctx) for o in obj]
    if isinstance(obj, tuple):
        return tuple(resolve(o, ctx) for o in obj)
    if isinstance(obj, dict):
        return {resolve(k, ctx): resolve(v, ctx) for k, v in obj.items()}
    return obj


# ---------------------------------------------------------------------------
# "around" contexts (applied around each of the two calls)


@contextlib.contextmanager
def sigchld_ignored():
    old = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGCHLD, old)


@contextlib.contextmanager
def usr1_ignored_usr2_blocked():
    old = signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        signal.signal(signal.SIGUSR1, old)


@contextlib.contextmanager
def environ_set(**values):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ---------------------------------------------------------------------------
# the scenario table


class Scenario:
    def __init__(self, func, args, kwargs, capfd=False, approx=None,
                 around=None, setup=(), warn=True):
        self.func = func
        self.args = args
        self.kwargs = kwargs
        self.capfd = capfd      # compare what reaches the test's fd 1/2
        self.approx = approx    # TimeoutExpired.timeout is "time left"
        self.around = around    # context manager factory around each call
        self.setup = setup      # placeholders resolved only for effect
        self.warn = warn        # compare the warnings issued


def S(id, func, *args, _capfd=False, _approx=None, _around=None, _marks=(),
      _setup=(), _warn=True, **kwargs):
    return pytest.param(Scenario(func, args, kwargs, _capfd, _approx,
                                 _around, _setup, _warn), id=id, marks=_marks)


def via_popen(params):
    """The run() scenarios again with close_fds=True (subprocess's default,
    so the same call for subprocess) -- which fastspawn.run() does not take
    on its direct path: these exercise run() on fastspawn's Popen."""
    out = []
    for p in params:
        scn = p.values[0]
        if scn.func != "run" or "close_fds" in scn.kwargs:
            continue
        kwargs = dict(scn.kwargs, close_fds=True)
        new = Scenario(scn.func, scn.args, kwargs, scn.capfd, scn.approx,
                       scn.around, scn.setup, scn.warn)
        out.append(pytest.param(new, id=p.id + "+popen", marks=p.marks))
    return out


def R(id, *args, **kwargs):
    return S(id, "run", *args, **kwargs)


def sh(cmd, *extra):
    return ["sh", "-c", cmd] + list(extra)


# Reports whether the shell is a session / process-group leader.
LEADER = ('read pid comm st ppid pgrp sid rest < /proc/self/stat; '
          '[ "$pid" = "$sid" ] && echo session-leader; '
          '[ "$pid" = "$pgrp" ] && echo group-leader; echo end')
SIGLINES = ["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"]
OUT_ERR = "echo out; echo err >&2"
MIXED = "echo a; echo b >&2; echo c"
CRLF = r"printf 'a\r\nb\rc\n'"
UNDECODABLE = r"printf 'ok\377\n'"


def _raise_zero_division():
    return 1 / 0


def _raise_oserror():
    raise OSError(5, "preexec says no")


STREAMS = [
    R("none", sh(OUT_ERR), _capfd=True),
    R("stdout-pipe", sh(OUT_ERR), stdout=PIPE, _capfd=True),
    R("stderr-pipe", sh(OUT_ERR), stderr=PIPE, _capfd=True),
    R("capture-output", sh(OUT_ERR), capture_output=True),
    R("both-pipes", sh(OUT_ERR), stdout=PIPE, stderr=PIPE),
    R("stdout-devnull-stderr-pipe", sh(OUT_ERR), stdout=DEVNULL,
      stderr=PIPE),
    R("stdout-pipe-stderr-devnull", sh(OUT_ERR), stdout=PIPE,
      stderr=DEVNULL),
    R("all-devnull", sh("cat; " + OUT_ERR), stdin=DEVNULL, stdout=DEVNULL,
      stderr=DEVNULL, _capfd=True),
    R("stderr-stdout-pipe", sh(MIXED), stdout=PIPE, stderr=STDOUT),
    R("stderr-stdout-inherited", sh(MIXED), stderr=STDOUT, _capfd=True),
    R("stderr-stdout-devnull", sh(MIXED), stdout=DEVNULL, stderr=STDOUT,
      _capfd=True),
    R("stderr-stdout-file", sh(MIXED), stdout=OutFile(), stderr=STDOUT),
    R("stderr-stdout-fd", sh(MIXED), stdout=OutFd(), stderr=STDOUT),
    R("stdout-fd-stderr-fd", sh(OUT_ERR), stdout=OutFd("o"),
      stderr=OutFd("e")),
    R("stdout-and-stderr-same-fd", sh(MIXED), stdout=OutFd("x"),
      stderr=OutFd("x")),
    R("stdout-file-stderr-file", sh(OUT_ERR), stdout=OutFile("o"),
      stderr=OutFile("e")),
    R("stdout-fd-stderr-pipe", sh(OUT_ERR), stdout=OutFd(), stderr=PIPE),
    R("stdout-file-stderr-pipe-text", sh(OUT_ERR), stdout=OutFile(),
      stderr=PIPE, text=True),
    R("stdout-is-fd1", sh(OUT_ERR), stdout=1, stderr=1, _capfd=True),
    R("stdout-is-fd2", sh(OUT_ERR), stdout=2, _capfd=True),
    R("stdin-devnull", ["cat"], stdin=DEVNULL, stdout=PIPE),
    R("stdin-file", ["cat"], stdin=InFile(b"from a file\n"), stdout=PIPE),
    R("stdin-fd", ["cat"], stdin=InFd(b"from an fd\n"), stdout=PIPE),
    R("stdin-file-stdout-file", ["cat"], stdin=InFile(b"file to file\n"),
      stdout=OutFile()),
    R("stdin-pipe-no-input", ["cat"], stdin=PIPE, stdout=PIPE),
    R("stdin-pipe-only", sh("cat >/dev/null; echo done >&2"),
      input=b"x" * 100, _capfd=True),
    R("stdout-closed-fd", ["true"], stdout=F(lambda c: _closed_fd(c))),
    R("stdin-closed-fd", ["true"], stdin=F(lambda c: _closed_fd(c))),
    R("stdout-unhashable", ["true"], stdout=bytearray()),
    R("stdin-unhashable", ["true"], stdin=[]),
    R("stderr-unhashable", ["true"], stderr={}),
    R("stdout-float", ["true"], stdout=1.5),
    # Negative ints are not fds: the child fails with EBADF (fastspawn
    # must not mistake them for its internal STDIO_* codes -2..-4).
    R("stdout-is-STDOUT-constant", sh(OUT_ERR), stdout=STDOUT, _capfd=True),
    R("stdin-is-STDOUT-constant", sh(OUT_ERR), stdin=STDOUT, _capfd=True),
    R("stdin-minus-4", sh(OUT_ERR), stdin=-4, _capfd=True),
    R("stderr-minus-4-stdout-pipe", sh(OUT_ERR), stdout=PIPE, stderr=-4,
      _capfd=True),
    R("stdout-minus-5", sh(OUT_ERR), stdout=-5, _capfd=True),
    R("stderr-minus-7", sh(OUT_ERR), stderr=-7, _capfd=True),
    R("args-tuple", ("sh", "-c", "echo tuple"), capture_output=True),
]


def _closed_fd(ctx):
    fd = 49
    if fd_is_open(fd):
        raise RuntimeError("test needs fd 49 closed")
    return fd


TEXT = [
    R("text-crlf-single-pipe", sh(CRLF), stdout=PIPE, text=True),
    R("text-crlf-capture", sh(CRLF + " >&2; " + CRLF), capture_output=True,
      text=True),
    R("universal-newlines", sh(CRLF), capture_output=True,
      universal_newlines=True),
    R("universal-newlines-single-pipe", sh(CRLF), stdout=PIPE,
      universal_newlines=True),
    R("binary-crlf", sh(CRLF), capture_output=True),
    R("text-lone-cr-at-end", sh(r"printf 'a\r'"), stdout=PIPE, text=True),
    R("encoding-utf8", sh(r"printf '\303\251t\303\251\n'"),
      capture_output=True, encoding="utf-8"),
    R("encoding-latin1-single-pipe", sh(r"printf '\351\n'"), stdout=PIPE,
      encoding="latin-1"),
    R("encoding-utf16", sh(r"printf '\377\376h\000i\000'"), stdout=PIPE,
      encoding="utf-16"),
    R("undecodable-strict-capture", sh(UNDECODABLE), capture_output=True,
      text=True),
    R("undecodable-strict-single-pipe", sh(UNDECODABLE), stdout=PIPE,
      text=True),
    R("undecodable-explicit-strict", sh(UNDECODABLE), stdout=PIPE,
      encoding="utf-8", errors="strict"),
    R("undecodable-replace", sh(UNDECODABLE), capture_output=True,
      text=True, errors="replace"),
    R("undecodable-replace-single-pipe", sh(UNDECODABLE), stdout=PIPE,
      errors="replace"),
    R("undecodable-surrogateescape", sh(UNDECODABLE), capture_output=True,
      encoding="utf-8", errors="surrogateescape"),
    R("undecodable-stderr-strict", sh(UNDECODABLE + " >&2; echo fine"),
      capture_output=True, text=True),
    R("truncated-utf8", sh(r"printf 'ab\303'"), stdout=PIPE, text=True),
    R("text-input", ["cat"], input="h\u00e9llo\r\nworld\n",
      capture_output=True, text=True),
    R("text-input-single-pipe", ["cat"], input="a\r\nb", stdout=PIPE,
      text=True),
    R("text-input-latin1", ["cat"], input="\u00e9", stdout=PIPE,
      encoding="latin-1"),
    R("text-input-unencodable", ["cat"], input="\u00e9", stdout=PIPE,
      encoding="ascii"),
    R("text-input-unencodable-replace", ["cat"], input="\u00e9x",
      stdout=PIPE, encoding="ascii", errors="replace"),
    R("binary-input-str", ["cat"], input="abc", stdout=PIPE),
    R("binary-input-str-capture", ["cat"], input="abc",
      capture_output=True),
    R("input-bytearray", ["cat"], input=bytearray(b"bytearray"),
      capture_output=True),
    R("input-memoryview", ["cat"], input=memoryview(b"xmemoryviewx")[1:-1],
      capture_output=True),
    R("text-universal-newlines-conflict", ["true"], text=True,
      universal_newlines=False),
    S("check_output-text-crlf", "check_output", sh(CRLF), text=True),
    S("check_output-stderr-stdout-text", "check_output", sh(MIXED),
      stderr=STDOUT, text=True),
    S("check_output-undecodable", "check_output", sh(UNDECODABLE),
      text=True),
]

SIZES = [
    R("input-0B", ["cat"], input=b"", capture_output=True),
    R("input-1B", ["cat"], input=b"x", capture_output=True),
    R("input-64KiB+1", ["cat"], input=data(64 * KIB + 1),
      capture_output=True),
    R("input-64KiB+1-single-pipe", ["cat"], input=data(64 * KIB + 1),
      stdout=PIPE),
    R("input-4MiB", ["cat"], input=data(4 * MIB), capture_output=True),
    R("input-4MiB-text", ["cat"],
      input=(data(4 * MIB) .decode("latin-1")), capture_output=True,
      encoding="latin-1"),
    R("input-4MiB-unread", ["true"], input=data(4 * MIB),
      capture_output=True),
    R("input-4MiB-unread-stdin-only", ["true"], input=data(4 * MIB)),
    R("input-4MiB-head", ["head", "-c", "10"], input=data(4 * MIB),
      capture_output=True),
    R("input-4MiB-stdout-devnull", ["cat"], input=data(4 * MIB),
      stdout=DEVNULL),
    R("input-4MiB-stderr-first", sh("head -c 1048576 /dev/zero >&2; cat"),
      input=data(4 * MIB), capture_output=True),
    R("output-4MiB-single-pipe", ["head", "-c", str(4 * MIB), "/dev/zero"],
      stdout=PIPE),
    R("output-4MiB-both", sh("head -c %d /dev/zero; head -c %d /dev/zero >&2"
                             % (4 * MIB, 4 * MIB)), capture_output=True),
    S("check_output-input", "check_output", ["cat"], input=b"abc"),
    S("check_output-input-none", "check_output", ["cat"], input=None),
    S("check_output-input-none-text", "check_output", ["cat"], input=None,
      text=True),
    S("check_output-input-text", "check_output", ["cat"], input="abc",
      text=True),
    S("check_output-input-64KiB+1", "check_output", ["cat"],
      input=data(64 * KIB + 1)),
    S("check_output-stdout-arg", "check_output", ["true"], stdout=PIPE),
    R("run-input-and-stdin", ["cat"], input=b"x", stdin=PIPE),
    R("run-capture-and-stdout", ["true"], capture_output=True, stdout=PIPE),
]

# Partial-output scenarios wait 0.5 s: time enough for the child to write
# its first line even on a loaded machine.
TIMEOUTS_BOTH_PATHS = [
    R("timeout-no-capture", ["sleep", "5"], timeout=0.2, _approx=0.2),
    R("timeout-capture-partial", sh("echo start; echo err >&2; sleep 5"),
      capture_output=True, timeout=0.5),
    R("timeout-single-pipe-partial", sh("echo start; sleep 5"), stdout=PIPE,
      timeout=0.5),
    # stdout reaches EOF with nothing read, stderr stays open: subprocess
    # reports output=b"" (it saw the stream end), not None.
    R("timeout-stdout-closed-early", sh("exec >&-; sleep 5"),
      capture_output=True, timeout=0.5),
    R("timeout-zero", ["sleep", "5"], capture_output=True, timeout=0),
    R("timeout-not-reached", sh("echo quick"), capture_output=True,
      timeout=30),
    R("timeout-not-a-number", ["true"], capture_output=True, timeout="1"),
]

TIMEOUTS = TIMEOUTS_BOTH_PATHS + [
    R("timeout-text-partial", sh("echo start; sleep 5"),
      capture_output=True, text=True, timeout=0.5),
    R("timeout-nothing-written", ["sleep", "5"], capture_output=True,
      timeout=0.2),
    R("timeout-grandchild-holds-pipe", sh("sleep 2 & echo hi"),
      capture_output=True, timeout=0.5),
    R("timeout-with-input", sh("cat; sleep 5"), input=b"abc",
      capture_output=True, timeout=0.5),
    R("timeout-negative", ["sleep", "5"], capture_output=True, timeout=-1),
    S("check_output-timeout", "check_output", sh("echo part; sleep 5"),
      timeout=0.5),
    S("call-timeout", "call", ["sleep", "5"], timeout=0.2),
    S("check_call-timeout", "check_call", ["sleep", "5"], timeout=0.2),
    S("call-timeout-not-reached", "call", sh("exit 3"), timeout=30),
]

CHECK = [
    R("check-fail-capture", sh("echo o; echo e >&2; exit 3"),
      capture_output=True, check=True),
    R("check-fail-text", sh("echo o; echo e >&2; exit 3"),
      capture_output=True, check=True, text=True),
    R("check-fail-no-capture", sh("exit 4"), check=True),
    R("check-signal", sh("kill -TERM $$"), check=True),
    R("check-ok", sh("echo fine"), capture_output=True, check=True),
    R("returncode-255", sh("exit 255")),
    R("returncode-signal", sh("kill -USR1 $$")),
    S("check_output-fail", "check_output", sh("echo partial; exit 5")),
    S("check_output-fail-stderr-pipe", "check_output",
      sh("echo o; echo e >&2; exit 5"), stderr=PIPE),
    S("check_output-signal", "check_output", sh("echo x; kill -KILL $$")),
    S("check_call-fail", "check_call", sh("exit 6")),
    S("check_call-ok", "check_call", ["true"]),
    S("call-code", "call", sh("exit 7")),
    S("call-signal", "call", sh("kill -KILL $$")),
    S("call-missing-program", "call", ["nonexistent_prog_fs_xyz"]),
]

SHELL = [
    R("shell-str", "echo $0 hello", shell=True, capture_output=True),
    R("shell-list", ["echo $0 $1", "zero", "one"], shell=True,
      capture_output=True),
    R("shell-bytes", b"printf '\\377'", shell=True, capture_output=True),
    R("shell-executable", "echo $0; echo ${BASH_VERSION:+is-bash}",
      shell=True, executable=BASH, capture_output=True,
      _marks=pytest.mark.skipif(BASH is None, reason="no bash")),
    R("shell-executable-missing", "echo hi", shell=True,
      executable="/nonexistent/shell"),
    R("shell-pathlike", pathlib.Path("/bin/true"), shell=True),
    R("shell-exit-127", "nonexistent_cmd_fs_xyz", shell=True,
      capture_output=True),
    R("executable-argv0", ["myname", "-c", "echo $0"], executable="/bin/sh",
      capture_output=True),
    R("executable-bytes", ["myname", "-c", "echo $0"],
      executable=b"/bin/sh", capture_output=True),
    R("executable-pathlike", ["myname", "-c", "echo $0"],
      executable=pathlib.Path("/bin/sh"), capture_output=True),
    R("executable-missing", ["true"], executable="/nonexistent/prog"),
    R("executable-name-searched", ["myname", "-c", "echo $0"],
      executable="sh", capture_output=True),
    R("args-bytes", [b"printf", b"%s", b"\xff\xfe"], capture_output=True),
    R("args-str-no-shell", "echo hi"),
    R("args-str-program", "true"),
    R("args-pathlike", pathlib.Path(shutil.which("true"))),
    R("args-list-pathlike", [pathlib.Path(shutil.which("echo")), "x"],
      capture_output=True),
    R("args-empty", []),
    R("args-none-item", ["echo", None]),
    R("args-int-item", ["echo", 1]),
    R("args-nul", ["echo", "a\0b"]),
    R("program-nul", ["ec\0ho"]),
    R("executable-nul", ["echo"], executable="/bin/ec\0ho"),
    R("args-empty-program", [""]),
    R("args-undecodable-str", ["printf", "%s", "\udcff"],
      capture_output=True),
]

ENV = [
    R("env-exact", ["env"], env={"FOO": "bar", "X": "1"},
      capture_output=True),
    R("env-empty", ["env"], env={}, capture_output=True),
    R("env-bytes", ["env"], env={b"FOO": b"\xff"}, capture_output=True),
    R("env-pathlike-value", ["env"], env={"P": pathlib.Path("/x")},
      capture_output=True),
    R("env-key-with-equals", ["env"], env={"A=B": "1"}),
    R("env-key-leading-equals", ["env"], env={"=A": "1"}),
    R("env-key-empty", ["env"], env={"": "v"}, capture_output=True),
    R("env-value-nul", ["env"], env={"A": "x\0y"}),
    R("env-key-nul", ["env"], env={"A\0B": "x"}),
    R("env-value-none", ["env"], env={"A": None}),
    R("env-key-int", ["env"], env={1: "x"}),
    R("env-not-a-mapping", ["env"], env=[("A", "1")]),
    R("env-PATH-no-such-program", sh("true"), env={"PATH": "/nonexistent"}),
    R("env-PATH-skips-nonexec", ["prog"],
      env={"PATH": F(lambda c: c.path("bin1") + ":" + c.path("bin2"))},
      capture_output=True),
    R("env-PATH-only-nonexec", ["prog"],
      env={"PATH": F(lambda c: c.path("bin1") + ":" + c.path("bin3"))}),
    R("env-PATH-file-entry", ["prog"],
      env={"PATH": F(lambda c: c.path("file") + ":" + c.path("bin2"))},
      capture_output=True),
    R("env-PATH-empty-entry-means-cwd", ["cwdprog"], cwd=T(),
      env={"PATH": ":/nonexistent"}, capture_output=True),
    R("env-PATH-empty-string", ["cwdprog"], cwd=T(), env={"PATH": ""},
      capture_output=True),
    R("env-mapping-proxy", ["env"],
      env=F(lambda c: types.MappingProxyType({"K": "v"})),
      capture_output=True),
    R("env-os-environ", ["printenv", "HOME"], env=os.environ,
      capture_output=True),
    R("env-PATH-str-and-bytes", ["env"],
      env={"PATH": "/x", b"PATH": b"/y"}),
    R("env-none-inherits-os-environ", ["printenv", "FS_DIFF_VAR"],
      capture_output=True, _around=lambda: environ_set(FS_DIFF_VAR="yes")),
    R("env-none-PATH-from-os-environ", ["prog"], capture_output=True,
      _around="path-bin2"),
]

CWD = [
    R("cwd-ok", ["pwd"], cwd=T("dir"), capture_output=True),
    R("cwd-pathlike", ["pwd"], cwd=TP("dir"), capture_output=True),
    R("cwd-bytes", ["pwd"], cwd=TB("dir"), capture_output=True),
    R("cwd-missing", ["true"], cwd=T("missing")),
    R("cwd-missing-pathlike", ["true"], cwd=TP("missing")),
    R("cwd-missing-bytes", ["true"], cwd=TB("missing")),
    R("cwd-is-a-file", ["true"], cwd=T("file")),
    R("cwd-missing-and-program-missing", ["nonexistent_prog_fs_xyz"],
      cwd=T("missing")),
    R("cwd-missing-and-program-missing-abs", [T("nope")], cwd=T("missing")),
    R("cwd-ok-program-missing", ["nonexistent_prog_fs_xyz"], cwd=T("dir")),
    R("cwd-relative-program", ["./cwdprog"], cwd=T(), capture_output=True),
    R("cwd-relative-program-missing", ["./nope"], cwd=T()),
    R("cwd-relative-PATH", ["cwdprog"], cwd=T(), env={"PATH": "."},
      capture_output=True),
    R("cwd-nul", ["true"], cwd="/tm\0p"),
    R("cwd-missing-capture", ["true"], cwd=T("missing"),
      capture_output=True),
]

FDS = [
    R("pass-fds", sh("echo via-pass-fd > /proc/self/fd/47"),
      pass_fds=(PipeAt(47),)),
    R("pass-fds-non-inheritable", sh("echo via-pass-fd > /proc/self/fd/47"),
      pass_fds=(PipeAt(47, inheritable=False),)),
    R("pass-fds-list", sh("echo list > /proc/self/fd/47"),
      pass_fds=[PipeAt(47)]),
    R("close-fds-default-hides", sh("echo x > /proc/self/fd/47"),
      _setup=[PipeAt(47)], capture_output=True),
    R("close-fds-false-inherits", sh("echo inherited > /proc/self/fd/47"),
      _setup=[PipeAt(47)], close_fds=False),
    R("close-fds-false-non-inheritable",
      sh("echo x > /proc/self/fd/47 || echo hidden"),
      _setup=[PipeAt(47, inheritable=False)], close_fds=False,
      capture_output=True),
    R("pass-fds-and-close-fds-false", sh("echo x > /proc/self/fd/47"),
      pass_fds=(PipeAt(47),), close_fds=False),
    R("pass-fds-closed-fd", ["true"], pass_fds=(F(_closed_fd),)),
    R("pass-fds-negative", ["true"], pass_fds=(-1,)),
    R("child-fds-default", ["ls", "/proc/self/fd"],
      _setup=[InheritableAt(47)], capture_output=True),
    R("child-fds-close-fds-false", ["ls", "/proc/self/fd"], close_fds=False,
      _setup=[InheritableAt(47)], capture_output=True),
    R("child-fds-pass-fds", ["ls", "/proc/self/fd"],
      pass_fds=(InheritableAt(47), InheritableAt(52)), capture_output=True),
]

PROCESS = [
    R("umask", sh("umask"), umask=0o027, capture_output=True),
    R("umask-zero", sh("umask"), umask=0, capture_output=True),
    R("umask-inherited", sh("umask"), capture_output=True),
    R("session-default", sh(LEADER), capture_output=True),
    R("start-new-session", sh(LEADER), start_new_session=True,
      capture_output=True),
    R("process-group-0", sh(LEADER), process_group=0, capture_output=True),
    R("process-group-parent", sh(LEADER),
      process_group=F(lambda c: os.getpgid(0)), capture_output=True),
    R("process-group-foreign", ["true"], process_group=1),
    R("new-session-and-process-group-0", sh(LEADER), start_new_session=True,
      process_group=0, capture_output=True),
    R("restore-signals-default", SIGLINES, capture_output=True),
    R("restore-signals-true", SIGLINES, restore_signals=True,
      capture_output=True),
    R("restore-signals-false", SIGLINES, restore_signals=False,
      capture_output=True),
    R("restore-signals-true-usr1-ignored", SIGLINES, restore_signals=True,
      capture_output=True, _around=usr1_ignored_usr2_blocked),
    R("restore-signals-false-usr1-ignored", SIGLINES, restore_signals=False,
      capture_output=True, _around=usr1_ignored_usr2_blocked),
    R("preexec-umask", sh("umask"), preexec_fn=lambda: os.umask(0o011),
      capture_output=True),
    R("preexec-setsid", sh(LEADER), preexec_fn=os.setsid,
      capture_output=True),
    R("preexec-putenv", ["printenv", "FS_PRE"],
      preexec_fn=lambda: os.putenv("FS_PRE", "set-in-preexec"),
      capture_output=True),
    R("preexec-raises", ["true"], preexec_fn=_raise_zero_division),
    R("preexec-raises-oserror", ["true"], preexec_fn=_raise_oserror),
    R("preexec-raises-capture", ["true"], preexec_fn=_raise_zero_division,
      capture_output=True),
    R("preexec-program-missing", ["nonexistent_prog_fs_xyz"],
      preexec_fn=lambda: None),
    R("preexec-cwd-missing", ["true"], cwd=T("missing"),
      preexec_fn=lambda: None),
    R("preexec-with-input", ["cat"], input=b"through preexec",
      preexec_fn=lambda: None, capture_output=True),
    R("user-unknown-name", ["true"], user="no_such_user_fs_xyz"),
    R("group-unknown-name", ["true"], group="no_such_group_fs_xyz"),
    R("user-negative", ["true"], user=-5),
    R("extra-groups-unknown-name", ["true"],
      extra_groups=["no_such_group_fs_xyz"]),
]

USERS = [
    R("user-uid", ["id", "-u"], user=65534, capture_output=True,
      _marks=root_only),
    R("user-name", ["id", "-un"], user="nobody", capture_output=True,
      _marks=root_only),
    R("group-gid", ["id", "-g"], group=65534, capture_output=True,
      _marks=root_only),
    R("extra-groups", ["id", "-G"], extra_groups=[65534, 1],
      capture_output=True, _marks=root_only),
    R("extra-groups-empty", ["id", "-G"], extra_groups=[],
      capture_output=True, _marks=root_only),
    R("user-group-extra-groups", ["id"], user=65534, group=65534,
      extra_groups=[], capture_output=True, _marks=root_only),
    R("user-cannot-exec", [T("rootonly.sh")], user=65534, _marks=root_only),
    R("user-cwd-only-root-can-enter", ["id", "-u"], user=65534,
      cwd=T("dir"), capture_output=True, _marks=root_only),
    R("user-with-preexec", ["id", "-u"], user=65534,
      preexec_fn=lambda: None, capture_output=True, _marks=root_only),
]

EXEC_ERRORS = [
    R("exec-missing-abs", [T("missing")]),
    R("exec-missing-name", ["nonexistent_prog_fs_xyz"]),
    R("exec-missing-bytes", [TB("missing")]),
    R("exec-missing-pathlike", [TP("missing")]),
    R("exec-directory", [T("dir")]),
    R("exec-not-executable", [T("noexec.sh")]),
    R("exec-bad-interpreter", [T("badinterp.sh")]),
    R("exec-no-shebang", [T("noshebang")]),
    R("exec-empty-file", [T("empty")]),
    R("exec-shebang-is-dir", [T("shebang_dir")]),
    R("exec-symlink-loop", [T("loop")]),
    R("exec-not-a-dir-component", [T("file", "x")]),
    R("exec-name-too-long", ["/" + "x" * 5000]),
    R("exec-arg-too-long", ["true", "x" * (128 * KIB)]),
    R("exec-env-too-big", ["true"], env={"BIG": "y" * (128 * KIB)}),
    R("exec-missing-capture", [T("missing")], capture_output=True),
    R("exec-missing-with-input", [T("missing")], input=b"abc"),
    R("exec-missing-env-empty", ["nonexistent_prog_fs_xyz"], env={}),
    R("exec-missing-all-options", [T("missing")], stdin=DEVNULL,
      stdout=PIPE, stderr=STDOUT, env={"A": "1"}, cwd=T("dir"), umask=0o22,
      start_new_session=True, pass_fds=(InheritableAt(47),)),
    S("check_output-exec-missing", "check_output", [T("missing")]),
    S("check_call-exec-missing", "check_call", [T("missing")]),
]

SIGCHLD_IGNORED = [
    R("sigchld-ignored-exit-status", sh("exit 3"), _around=sigchld_ignored),
    R("sigchld-ignored-capture", sh("echo hi; exit 3"), capture_output=True,
      _around=sigchld_ignored),
    # (subprocess also warns "subprocess <pid> is still running" here, for
    # the child it could not reap: not compared.)
    R("sigchld-ignored-exec-error", ["nonexistent_prog_fs_xyz"],
      _around=sigchld_ignored, _warn=False),
    S("sigchld-ignored-call-timeout", "call", sh("exit 3"), timeout=30,
      _around=sigchld_ignored),
]

GETOUTPUT = [
    S("getoutput", "getoutput", OUT_ERR),
    S("getoutput-crlf", "getoutput", r"printf 'a\r\nb\n'"),
    S("getoutput-bytes-cmd", "getoutput", b"echo bytes"),
    S("getoutput-encoding", "getoutput", r"printf '\351'",
      encoding="latin-1"),
    S("getoutput-undecodable", "getoutput", r"printf '\377'"),
    S("getoutput-errors-replace", "getoutput", r"printf '\377'",
      errors="replace"),
    S("getoutput-empty", "getoutput", "true"),
    S("getstatusoutput-ok", "getstatusoutput", "echo ok"),
    S("getstatusoutput-fail", "getstatusoutput", "echo x; exit 3"),
    S("getstatusoutput-signal", "getstatusoutput", "kill -9 $$"),
    S("getstatusoutput-missing", "getstatusoutput",
      "nonexistent_cmd_fs_xyz"),
    S("getstatusoutput-two-newlines", "getstatusoutput", "printf 'a\\n\\n'"),
]

ALL = (STREAMS + TEXT + SIZES + TIMEOUTS + CHECK + SHELL + ENV + CWD + FDS
       + PROCESS + USERS + EXEC_ERRORS + SIGCHLD_IGNORED + GETOUTPUT
       + via_popen(STREAMS + TEXT + SIZES + TIMEOUTS_BOTH_PATHS + CHECK + ENV
                   + CWD + EXEC_ERRORS + SIGCHLD_IGNORED))


# ---------------------------------------------------------------------------
# running a scenario


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """The files the scenarios refer to (T("name")); made once per module
    (the scratch files of each call are rewritten every time)."""
    t = tmp_path_factory.mktemp("world")
    (t / "dir").mkdir()
    (t / "file").write_text("just a file\n")
    make_script(str(t / "noexec.sh"), "echo hi", mode=0o644)
    with open(t / "badinterp.sh", "w") as f:
        f.write("#!/nonexistent/interp\necho hi\n")
    os.chmod(t / "badinterp.sh", 0o755)
    with open(t / "noshebang", "w") as f:
        f.write("\x7fNOT-ELF\x00\x01\x02 garbage\n")
    os.chmod(t / "noshebang", 0o755)
    (t / "empty").write_bytes(b"")
    os.chmod(t / "empty", 0o755)
    with open(t / "shebang_dir", "w") as f:
        f.write("#!%s\n" % (t / "dir"))
    os.chmod(t / "shebang_dir", 0o755)
    os.symlink("loop", t / "loop")
    for name, mode in (("bin1", 0o644), ("bin2", 0o755), ("bin3", 0o644)):
        (t / name).mkdir()
        make_script(str(t / name / "prog"), "echo from %s" % name, mode=mode)
    make_script(str(t / "cwdprog"), "echo cwdprog ran")
    make_script(str(t / "rootonly.sh"), "echo root", mode=0o700)
    return t


def _around(scn, tmp):
    if scn.around is None:
        return contextlib.nullcontext()
    if scn.around == "path-bin2":
        return environ_set(PATH=os.path.join(str(tmp), "bin2") + os.pathsep
                           + os.environ.get("PATH", os.defpath))
    return scn.around()


# Without reference counting (PyPy) an object is finalized when the GC gets
# to it: the ResourceWarning of a Popen some earlier test left unreaped
# (e.g. sigchld-ignored-exec-error's, from subprocess itself) would land in
# whichever scenario happens to trigger a collection.
_COLLECT_FIRST = sys.implementation.name != "cpython"


def run_one(scn, mod, tag, tmp, cap):
    ctx = Ctx(tmp, tag)
    if _COLLECT_FIRST:
        gc.collect()
    with _around(scn, tmp):
        if cap is not None:
            cap.readouterr()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                resolve(scn.setup, ctx)
                args = resolve(scn.args, ctx)
                kwargs = resolve(scn.kwargs, ctx)
                desc = outcome(getattr(mod, scn.func), *args, **kwargs)
            finally:
                written = ctx.finish()
        if cap is not None:
            out, err = cap.readouterr()
            written["test fd 1"] = out
            written["test fd 2"] = err
    if scn.approx is not None:
        desc = approx_timeout(desc, scn.approx)
    warned = [(w.category.__name__, re.sub(r"\d+", "<n>", str(w.message)))
              for w in caught] if scn.warn else "not compared"
    return {"outcome": desc, "written": digest(written), "warnings": warned}


def _slow(scn):
    t = scn.kwargs.get("timeout")
    return isinstance(t, (int, float)) and 0 < t < 5


def run_scenario(scn, tmp, request):
    cap = request.getfixturevalue("capfdbinary") if scn.capfd else None
    if not (_slow(scn) and cap is None and scn.around is None):
        return {tag: run_one(scn, mod, tag, tmp, cap) for tag, mod in IMPLS}
    # A scenario that waits for its timeout: the two calls run side by side
    # (they share nothing) to halve the time. Warnings cannot be told apart
    # then (catch_warnings is process-wide): not compared.
    scn = Scenario(scn.func, scn.args, scn.kwargs, scn.capfd, scn.approx,
                   scn.around, scn.setup, warn=False)
    res = {}
    errors = []

    def worker(tag, mod):
        try:
            res[tag] = run_one(scn, mod, tag, tmp, None)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=impl) for impl in IMPLS]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "scenario hung for 60 s"
    if errors:
        raise errors[0]
    return res


@pytest.mark.parametrize("scn", ALL)
def test_scenario(scn, world, request):
    res = run_scenario(scn, world, request)
    assert res["fastspawn"] == res["subprocess"]


# ---------------------------------------------------------------------------
# beyond the table


def test_table_is_big_enough():
    # Guard against a refactoring that silently drops the table.
    assert len(ALL) > 250


def test_input_64MiB_round_trip_through_cat():
    payload = os.urandom(MIB) * 64
    want = (len(payload), hashlib.sha256(payload).hexdigest())
    got = {}
    for tag, mod in IMPLS:
        r = mod.run(["cat"], input=payload, capture_output=True)
        got[tag] = (r.returncode, len(r.stdout),
                    hashlib.sha256(r.stdout).hexdigest(), r.stderr)
        del r
    assert got["fastspawn"] == got["subprocess"] == (0,) + want + (b"",)
    # check_output (one pipe: the C loop even there)
    out = fastspawn.check_output(["cat"], input=payload)
    assert (len(out), hashlib.sha256(out).hexdigest()) == want


_ENDLESS = r"""
import resource, sys, time
resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
import fastspawn, subprocess
t0 = time.monotonic()
try:
    fastspawn.run(["yes"], stdout=subprocess.PIPE, timeout=0.5)
except subprocess.TimeoutExpired as e:
    print("TimeoutExpired", round(time.monotonic() - t0, 2),
          e.timeout, e.output is not None)
except BaseException as e:
    print(type(e).__name__, round(time.monotonic() - t0, 2))
"""


def test_timeout_with_endless_output(backend):
    """A child that never stops writing: run(timeout=0.5) must still raise
    TimeoutExpired (with the output so far) -- within timeout + a generous
    margin. Runs in a memory-capped interpreter so that a loop that never
    looks at its deadline cannot take the test machine with it."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(fastspawn.__file__))]
        + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    if backend is fastspawn._backend.py_impl:
        env["FASTSPAWN_NO_EXTENSIONS"] = "1"
    else:
        env.pop("FASTSPAWN_NO_EXTENSIONS", None)
    r = subprocess.run([PY, "-c", _ENDLESS], capture_output=True, text=True,
                       env=env, timeout=60)
    words = r.stdout.split()
    assert r.returncode == 0, r.stderr
    assert words[:1] == ["TimeoutExpired"], (r.stdout, r.stderr)
    assert float(words[1]) < 0.5 + 5.0, r.stdout
    assert words[2:] == ["0.5", "True"]

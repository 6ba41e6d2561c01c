"""Property-based fuzzing (hypothesis), on both backends:

* arbitrary argv and environment byte strings (no NUL) reach the child
  exactly, through Popen, run(), the os-style spawn*e functions and each
  spawn mechanism of the backend (a small C program echoes them back);
* arbitrary stdin payloads (0 B .. 8 MiB) round-trip through ``cat``;
* random combinations of Popen options behave exactly as subprocess does
  (same result or same exception, same data in the files), never crash
  the interpreter, and leave no fd and no child behind.

Example counts are modest (settings below) so the suite stays fast; set
FASTSPAWN_FUZZ_EXAMPLES to run more.
"""
import os
import random
import shutil
import subprocess
import sys

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import fastspawn  # noqa: E402
from fastspawn import _constants as K  # noqa: E402
from fastspawn._launch import launch  # noqa: E402
from fsfault import (  # noqa: E402
    children, open_fds, outcome, parse_echo,
    without_timeout_value,
)
from fsutil import read_all, std_fds  # noqa: E402

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
STDOUT = subprocess.STDOUT

_N = int(os.environ.get("FASTSPAWN_FUZZ_EXAMPLES", "0") or 0)


def fuzz_settings(n):
    # The autouse fixtures (backend, leak checker) are function-scoped on
    # purpose: one backend per test; leaks are checked per example below.
    return settings(max_examples=_N or n, deadline=None, derandomize=False,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow,
                                           HealthCheck.data_too_large])


class Clean:
    """Per-example accounting: nothing may be left open or running."""

    def __enter__(self):
        self.fds = open_fds()
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            assert open_fds() == self.fds, sorted(open_fds() - self.fds)
            assert children() == [], children()


# ---------------------------------------------------------------------------
# strategies

def _no_nul(b):
    return b.replace(b"\0", b"\1")


arg_bytes = st.binary(max_size=64).map(_no_nul)
arg_text = st.text(max_size=32).map(lambda s: s.replace("\0", "\1"))
argv_tail = st.lists(st.one_of(arg_bytes, arg_text), max_size=12)

# Environment: bytes keys without NUL or '=' (and not the few names the
# dynamic loader or libc act on: a random LD_PRELOAD would only make the
# echo program print a loader warning, but keep the run clean).
_RESERVED = (b"LD_", b"GLIBC_TUNABLES", b"MALLOC_")
env_key = (st.binary(min_size=1, max_size=24)
           .map(lambda b: _no_nul(b).replace(b"=", b"-"))
           .filter(lambda k: not k.startswith(_RESERVED)))
env_value = st.binary(max_size=64).map(_no_nul)
environ = st.dictionaries(env_key, env_value, max_size=12)


def expected_env(env):
    return sorted(k + b"=" + v for k, v in env.items())


# ---------------------------------------------------------------------------
# argv / environment round trips


@fuzz_settings(60)
@given(arg0=st.one_of(arg_bytes, arg_text), tail=argv_tail, env=environ)
def test_argv_env_roundtrip_popen(echo, arg0, tail, env):
    with Clean():
        if not os.fsencode(arg0):
            # An empty argv[0]: 3.13+'s subprocess refuses it on its
            # os.posix_spawn path (its fork_exec path passes it on). Both
            # must end the same way.
            def start(m):
                return m.Popen([arg0] + tail, executable=echo, env=env,
                               stdout=PIPE)
            want = outcome(start, subprocess)
            if want[0] == "raised":
                assert outcome(start, fastspawn) == want
                return
        p = fastspawn.Popen([arg0] + tail, executable=echo, env=env,
                            stdout=PIPE)
        out, _ = p.communicate(timeout=30)
        assert p.returncode == 0
        argv, envp = parse_echo(out)
        assert argv == [os.fsencode(a) for a in [arg0] + tail]
        assert sorted(envp) == expected_env(env)


@fuzz_settings(60)
@given(tail=argv_tail, env=environ, text=st.booleans())
def test_argv_env_roundtrip_run(echo, tail, env, text):
    with Clean():
        # run()'s direct path: argv[0] is the program.
        r = fastspawn.run([echo] + tail, env=env, capture_output=True,
                          timeout=30)
        assert r.returncode == 0 and r.stderr == b""
        argv, envp = parse_echo(r.stdout)
        assert argv == [os.fsencode(a) for a in [echo] + tail]
        assert sorted(envp) == expected_env(env)


@fuzz_settings(40)
@given(tail=argv_tail, env=environ)
def test_argv_env_roundtrip_spawnve(echo, tail, env, tmp_path_factory):
    out_path = str(tmp_path_factory.mktemp("spawnve") / "out")
    with Clean():
        fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            with std_fds(fd1=fd):
                rc = fastspawn.spawnve(fastspawn.P_WAIT, echo, [b"x"] + tail,
                                       env)
        finally:
            os.close(fd)
        assert rc == 0
        with open(out_path, "rb") as f:
            argv, envp = parse_echo(f.read())
        assert argv == [os.fsencode(a) for a in [b"x"] + tail]
        assert sorted(envp) == expected_env(env)


MECHANISMS = {
    "default": 0,
    "posix_spawn": K.PREFER_POSIX_SPAWN,
    "vfork": K.FORCE_VFORK,
}


@fuzz_settings(40)
@given(tail=st.lists(arg_bytes, max_size=12), env=environ,
       mechanism=st.sampled_from(sorted(MECHANISMS)),
       close_fds=st.booleans())
def test_argv_env_roundtrip_each_mechanism(echo, tail, env, mechanism,
                                           close_fds):
    argv = [b"arg0"] + tail
    envp = [k + b"=" + v for k, v in env.items()]
    flags = MECHANISMS[mechanism] | K.WANT_PIDFD | (
        K.CLOSE_FDS if close_fds else 0)
    with Clean():
        res = launch(os.fsencode(echo), argv, envp, stdout=K.STDIO_PIPE,
                     flags=flags)
        if res[1] >= 0:
            os.close(res[1])
        out = read_all(res[3])
        assert os.waitpid(res[0], 0)[1] == 0
        got_argv, got_env = parse_echo(out)
        assert got_argv == argv
        assert sorted(got_env) == sorted(envp)


# ---------------------------------------------------------------------------
# stdin payloads through cat

_SIZES = st.one_of(
    st.sampled_from([0, 1, 4095, 4096, 4097, 65535, 65536, 65537,
                     (1 << 20) - 1, 1 << 20, (1 << 20) + 1, 8 << 20]),
    st.integers(0, 200000),
    st.integers(0, 8 << 20),
)


def _data(size, seed):
    rng = random.Random(seed)
    if hasattr(rng, "randbytes"):
        return rng.randbytes(size)
    return bytes(rng.getrandbits(8) for _ in range(size))  # pragma: no cover


@fuzz_settings(50)
@given(size=_SIZES, seed=st.integers(0, 1 << 30),
       how=st.sampled_from(["communicate", "communicate-timeout", "run",
                            "run-timeout", "check_output", "run-stderr"]))
def test_stdin_payload_roundtrip(size, seed, how):
    data = _data(size, seed)
    with Clean():
        if how.startswith("communicate"):
            p = fastspawn.Popen(["cat"], stdin=PIPE, stdout=PIPE,
                                stderr=PIPE)
            out, err = p.communicate(
                data, timeout=60 if how.endswith("timeout") else None)
            assert (p.returncode, err) == (0, b"")
        elif how == "check_output":
            out = fastspawn.check_output(["cat"], input=data)
        elif how == "run-stderr":
            # through stderr, with stdout merged into it: both streams
            r = fastspawn.run(["sh", "-c", "cat >&2"], input=data,
                              capture_output=True)
            assert r.stdout == b""
            out = r.stderr
        else:
            r = fastspawn.run(["cat"], input=data, capture_output=True,
                              timeout=60 if how.endswith("timeout") else None)
            assert (r.returncode, r.stderr) == (0, b"")
            out = r.stdout
        assert len(out) == len(data)
        assert out == data


# ---------------------------------------------------------------------------
# random Popen option combinations, differentially against subprocess

PROGRAMS = {
    "outerr": (["sh", "-c", "printf out; printf err >&2; exit 3"], False),
    "cat": (["cat"], True),
    "report": (["sh", "-c", "umask; pwd; echo \"[$FOO]\"; echo err >&2"],
               False),
    "missing": (["/nonexistent/program"], False),
    "not-on-path": (["no-such-program-fuzz"], False),
    "sleep": (["sleep", "5"], False),
    "shell": ("echo shell $FOO; exit 4", False),
}


@st.composite
def popen_case(draw):
    prog = draw(st.sampled_from(sorted(PROGRAMS)))
    args, reads_stdin = PROGRAMS[prog]
    kw = {}
    if prog == "shell":
        kw["shell"] = True
    stdin = draw(st.sampled_from(["PIPE", "DEVNULL", "file"]
                                 + ([] if reads_stdin else ["None"])))
    stdout = draw(st.sampled_from(["PIPE", "DEVNULL", "file", "None"]))
    stderr = draw(st.sampled_from(["PIPE", "DEVNULL", "file", "None",
                                   "STDOUT"]))
    kw["text"] = draw(st.booleans())
    kw["close_fds"] = draw(st.booleans())
    if draw(st.booleans()):
        kw["pass_fds"] = "extra"
    kw["cwd"] = draw(st.sampled_from([None, "tmp", "/nonexistent/dir"]))
    kw["env"] = draw(st.sampled_from([None, "foo", "empty"]))
    kw["start_new_session"] = draw(st.booleans())
    if sys.version_info >= (3, 11):
        kw["process_group"] = draw(st.sampled_from([None, 0]))
    kw["umask"] = draw(st.sampled_from([-1, 0o22, 0o77]))
    kw["restore_signals"] = draw(st.booleans())
    kw["bufsize"] = draw(st.sampled_from([-1, 0, 1, 4096]))
    if prog in ("outerr", "report") and draw(st.booleans()):
        kw["executable"] = draw(st.sampled_from(["/bin/sh",
                                                 "/nonexistent/sh"]))
    api = draw(st.sampled_from(["popen", "run"]))
    timeout = 0.3 if prog == "sleep" else draw(st.sampled_from([None, 30]))
    data = draw(st.binary(max_size=2000))
    return prog, args, stdin, stdout, stderr, kw, api, timeout, data


def _materialize(tmp, tag, case):
    """The concrete arguments for one call (its own files), plus what to
    close and what to read afterwards."""
    prog, args, stdin, stdout, stderr, kw, api, timeout, data = case
    kw = dict(kw)
    files, close = {}, []

    def target(name, value, mode):
        if value == "PIPE":
            return PIPE
        if value == "DEVNULL":
            return DEVNULL
        if value == "STDOUT":
            return STDOUT
        if value == "None":
            return None
        path = os.path.join(tmp, "%s-%s" % (tag, name))
        if mode == "r":
            with open(path, "wb") as f:
                f.write(b"file input\n")
        f = open(path, mode + "b")
        close.append(f)
        files[name] = path
        return f

    std = dict(stdin=target("stdin", stdin, "r"),
               stdout=target("stdout", stdout, "w"),
               stderr=target("stderr", stderr, "w"))
    if kw.get("pass_fds") == "extra":
        r, w = os.pipe()
        close.extend([r, w])
        kw["pass_fds"] = (w,)
    if kw["cwd"] == "tmp":
        kw["cwd"] = tmp
    kw["env"] = {None: None, "empty": {},
                 "foo": {"FOO": "bar", "PATH": os.environ.get("PATH",
                                                              os.defpath)},
                 }[kw["env"]]
    return std, kw, files, close


def _call(m, tmp, tag, case):
    prog, args, stdin, stdout, stderr, kw0, api, timeout, data = case
    std, kw, files, close = _materialize(tmp, tag, case)
    inp = data if std["stdin"] is PIPE else None
    if inp is not None and kw["text"]:
        inp = inp.decode("latin-1")
    try:
        if api == "run":
            if std["stdin"] is PIPE:
                std["stdin"] = None
            else:
                inp = None
            res = outcome(m.run, args, input=inp, timeout=timeout, **std,
                          **kw)
        else:
            def popen():
                p = m.Popen(args, **std, **kw)
                try:
                    return ("communicated", p.communicate(inp,
                                                          timeout=timeout),
                            p.returncode)
                except subprocess.TimeoutExpired as e:
                    p.kill()
                    p.communicate()
                    return ("timeout", e.output, e.stderr, p.returncode)
                finally:
                    p.__exit__(None, None, None)
            res = outcome(popen)
        res = without_timeout_value(res)
        if (sys.version_info < (3, 13) and res[0] == "raised"
                and res[4] is not None and res[4] == kw["cwd"]):
            # Before 3.13 subprocess names the cwd for *any* failure before
            # exec (a bad fd, setsid/setpgid's EPERM...); fastspawn names
            # it only when chdir() failed, as 3.13+ does. Compare without.
            res = res[:2] + ("[Errno %d] %s" % (res[3], os.strerror(res[3])),
                             res[3], None)
    finally:
        for c in close:
            if isinstance(c, int):
                os.close(c)
            else:
                c.close()
    written = {}
    for name, path in files.items():
        if name != "stdin":
            with open(path, "rb") as f:
                written[name] = f.read()
    return res, written


@fuzz_settings(100)
@given(case=popen_case())
def test_popen_option_combinations_like_subprocess(case, tmp_path_factory):
    import warnings
    tmp = str(tmp_path_factory.mktemp("combo"))
    with Clean(), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)   # pass_fds override
        want = _call(subprocess, tmp, "sp", case)
        got = _call(fastspawn, tmp, "fs", case)
    shutil.rmtree(tmp, ignore_errors=True)
    assert got == want

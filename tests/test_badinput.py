"""Bad input, differentially: every call is made once through
``subprocess`` (or ``os``) and once through ``fastspawn``, on both backends
(the autouse ``backend`` fixture), and must end the same way -- the same
exception type, message, errno and filename, or the same result. The
autouse leak checker then insists on 0 leaked fds and 0 unreaped children.

Covered: NUL bytes (argument, program, env key/value, cwd), '=' in env
keys, empty argv, argument types, missing / directory / non-executable
programs and PATH misses (also for the os-style p variants), bad cwd,
closed / invalid / negative fds and file objects for stdio, invalid
pass_fds, non-int umask/process_group/ids, argv+env beyond the system
limit (E2BIG), negative and zero timeouts, input without a stdin pipe and
of the wrong type, undecodable output under each errors= policy.
"""
import array
import errno
import os
import pathlib
import re
import signal
import subprocess
import sys

import pytest

import fastspawn
from fsfault import children, describe, free_fd, outcome
from fsutil import make_script, os_exec_error, wait_exited

PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
STDOUT = subprocess.STDOUT

# Each API as f(module, args, kwargs). "run" takes fastspawn's direct path
# when the kwargs allow; "run_popen" forces run() through Popen (close_fds
# is not one of the direct path's keys).
APIS = {
    "Popen": lambda m, a, kw: m.Popen(a, **kw),
    "run": lambda m, a, kw: m.run(a, **kw),
    "run_popen": lambda m, a, kw: m.run(a, close_fds=True, **kw),
    "call": lambda m, a, kw: m.call(a, **kw),
    "check_call": lambda m, a, kw: m.check_call(a, **kw),
    "check_output": lambda m, a, kw: m.check_output(a, **kw),
}
ALL = tuple(APIS)


def same(api, args, kwargs):
    """The outcome of ``api`` through subprocess and through fastspawn."""
    f = APIS[api]
    want = outcome(f, subprocess, args, dict(kwargs))
    got = outcome(f, fastspawn, args, dict(kwargs))
    assert got == want
    return got


class Files:
    """Paths the cases refer to, made once per test in tmp_path."""

    def __init__(self, tmp):
        self.tmp = str(tmp)
        self.dir = os.path.join(self.tmp, "adir")
        os.mkdir(self.dir)
        self.noexec = make_script(os.path.join(self.tmp, "noexec"),
                                  "echo hi", mode=0o644)
        self.script = make_script(os.path.join(self.tmp, "script"),
                                  "echo script")
        self.missing = os.path.join(self.tmp, "missing")
        # PATH entries: one where "prog" is a directory, one where it is
        # not executable, one where it runs.
        self.p_dir = os.path.join(self.tmp, "p_dir")
        os.makedirs(os.path.join(self.p_dir, "prog"))
        self.p_noexec = os.path.join(self.tmp, "p_noexec")
        os.mkdir(self.p_noexec)
        make_script(os.path.join(self.p_noexec, "prog"), "echo no",
                    mode=0o644)
        self.p_ok = os.path.join(self.tmp, "p_ok")
        os.mkdir(self.p_ok)
        make_script(os.path.join(self.p_ok, "prog"), "echo found")


@pytest.fixture
def files(tmp_path):
    return Files(tmp_path)


# ---------------------------------------------------------------------------
# arguments, program, environment


class _Weird:
    pass


ARG_CASES = {
    "nul-in-arg": (["echo", "a\0b"], {}),
    "nul-in-bytes-arg": ([b"echo", b"a\0b"], {}),
    "nul-in-program": (["ec\0ho", "a"], {}),
    "nul-in-executable": (["echo"], {"executable": "/bin/ec\0ho"}),
    "nul-in-env-key": (["true"], {"env": {"A\0B": "1"}}),
    "nul-in-env-value": (["true"], {"env": {"A": "1\0"}}),
    "nul-in-bytes-env": (["true"], {"env": {b"A": b"\0"}}),
    "eq-in-env-key": (["true"], {"env": {"A=B": "1"}}),
    "eq-first-in-env-key": (["true"], {"env": {"=B": "1"}}),
    "empty-env-key": (["true"], {"env": {"": "1"}}),
    "env-not-mapping": (["true"], {"env": [("A", "B")]}),
    "env-int": (["true"], {"env": 5}),
    "env-int-key": (["true"], {"env": {1: "x"}}),
    "env-int-value": (["true"], {"env": {"A": 1}}),
    "empty-argv-list": ([], {}),
    "empty-argv-tuple": ((), {}),
    "empty-program": ([""], {}),
    "int-arg": (["echo", 1], {}),
    "none-arg": (["echo", None], {}),
    "float-arg": (["echo", 1.5], {}),
    "object-arg": (["echo", _Weird()], {}),
    "int-args": (5, {}),
    "none-args": (None, {}),
    "pathlike-args": ([pathlib.Path("/bin/echo"), pathlib.Path("x")], {}),
    "bytes-args": ([b"/bin/echo", b"\xff\xfe"], {}),
    "executable-int": (["true"], {"executable": 5}),
    "cwd-nul": (["true"], {"cwd": "/tm\0p"}),
    "cwd-int": (["true"], {"cwd": 5}),
    "cwd-empty": (["true"], {"cwd": ""}),
}


@pytest.mark.parametrize("api", ALL)
@pytest.mark.parametrize("case", sorted(ARG_CASES))
def test_bad_arguments_like_subprocess(case, api):
    args, kwargs = ARG_CASES[case]
    res = same(api, args, kwargs)
    if case.startswith("nul"):
        # The second: os.posix_spawn's path converter, which subprocess
        # uses from 3.13 on for a program path with a directory.
        assert res[:2] == ("raised", "ValueError")
        assert res[2] in ("embedded null byte",
                          "posix_spawn: embedded null character in path")
    if case.startswith("eq-"):
        assert res[:3] == ("raised", "ValueError",
                           "illegal environment variable name")


def _program_cases(f):
    return {
        "missing": ([f.missing], {}),
        "missing-relative": (["./no-such-program-xyz"], {}),
        "directory": ([f.dir], {}),
        "not-executable": ([f.noexec], {}),
        "executable-missing": (["true"], {"executable": f.missing}),
        "executable-directory": (["true"], {"executable": f.dir}),
        "on-path-nowhere": (["no-such-program-xyz"], {}),
        "path-empty": (["prog"], {"env": {"PATH": ""}}),
        "path-only-dir": (["prog"], {"env": {"PATH": f.p_dir}}),
        "path-only-noexec": (["prog"], {"env": {"PATH": f.p_noexec}}),
        "path-noexec-then-dir": (
            ["prog"], {"env": {"PATH": f.p_noexec + ":" + f.p_dir}}),
        "path-missing-then-ok": (
            ["prog"], {"env": {"PATH": f.missing + ":" + f.p_ok}}),
        "path-noexec-then-ok": (
            ["prog"], {"env": {"PATH": f.p_noexec + ":" + f.p_ok}}),
        "cwd-missing": (["true"], {"cwd": f.missing}),
        "cwd-file": (["true"], {"cwd": f.script}),
        "cwd-missing-and-program-missing": (
            [f.missing], {"cwd": f.missing}),
        "cwd-and-relative-program": (["./script"], {"cwd": f.tmp}),
    }


PROGRAM_CASES = sorted(_program_cases(type("F", (), {
    k: "" for k in ("missing", "dir", "noexec", "script", "tmp", "p_dir",
                    "p_noexec", "p_ok")})))


@pytest.mark.parametrize("api", ALL)
@pytest.mark.parametrize("case", PROGRAM_CASES)
def test_bad_program_and_cwd_like_subprocess(case, api, files):
    args, kwargs = _program_cases(files)[case]
    res = same(api, args, kwargs)
    if case in ("missing", "on-path-nowhere", "directory", "not-executable",
                "cwd-missing", "path-only-noexec"):
        assert res[0] == "raised"
        assert res[1] in ("FileNotFoundError", "PermissionError",
                          "NotADirectoryError")


# ---------------------------------------------------------------------------
# E2BIG


def _arg_max():
    try:
        return os.sysconf("SC_ARG_MAX")
    except (ValueError, OSError):
        return 2 * 1024 * 1024


E2BIG_CASES = {
    # MAX_ARG_STRLEN on Linux is 32 pages: one argument longer than that.
    "one-huge-arg": lambda: (["echo", "x" * (33 * 4096)], {}),
    "argv-total": lambda: (["echo"] + ["x" * 60000] * (_arg_max() // 60000
                                                        + 2), {}),
    "env-total": lambda: (["true"], {"env": {
        "V%d" % i: "x" * 60000 for i in range(_arg_max() // 60000 + 2)}}),
    "argv-plus-env": lambda: (["echo"] + ["y" * 60000] * (
        _arg_max() // 120000 + 1), {"env": {
            "V%d" % i: "x" * 60000 for i in range(_arg_max() // 120000 + 1)}}),
}


@pytest.mark.parametrize("api", ("Popen", "run", "run_popen", "check_output"))
@pytest.mark.parametrize("case", sorted(E2BIG_CASES))
def test_e2big_like_subprocess(case, api):
    args, kwargs = E2BIG_CASES[case]()
    res = same(api, args, kwargs)
    assert res[1] == "OSError" and res[3] == errno.E2BIG, res


# ---------------------------------------------------------------------------
# stdio: closed, invalid, negative fds; closed / odd file objects


class _FilenoOf:
    def __init__(self, fd):
        self._fd = fd

    def fileno(self):
        return self._fd


def _closed_file(tmp):
    f = open(os.path.join(tmp, "closed"), "w")
    f.close()
    return f


STDIO_VALUES = {
    "free-fd": lambda tmp: free_fd(),
    "huge-fd": lambda tmp: 1 << 20,
    "minus-2": lambda tmp: -2,      # subprocess.STDOUT's value
    "minus-4": lambda tmp: -4,
    "minus-5": lambda tmp: -5,
    "minus-huge": lambda tmp: -(1 << 40),
    "beyond-long": lambda tmp: 1 << 70,
    "closed-file": _closed_file,
    "fileno-free-fd": lambda tmp: _FilenoOf(free_fd()),
    "fileno-negative": lambda tmp: _FilenoOf(-7),
    "str": lambda tmp: "x",
    "float": lambda tmp: 1.5,
}


@pytest.mark.parametrize("api", ("Popen", "run", "check_call"))
@pytest.mark.parametrize("slot", ("stdin", "stdout", "stderr"))
@pytest.mark.parametrize("value", sorted(STDIO_VALUES))
def test_bad_stdio_like_subprocess(value, slot, api, tmp_path):
    v = STDIO_VALUES[value](str(tmp_path))
    res = same(api, ["true"], {slot: v})
    if value in ("free-fd", "huge-fd", "minus-5", "minus-4"):
        assert res[:2] == ("raised", "OSError") and res[3] == errno.EBADF


@pytest.mark.parametrize("slot", ("stdin", "stdout", "stderr"))
def test_negative_stdio_opens_nothing(slot):
    # -2 is no subprocess constant for stdin/stdout: it must never be taken
    # for the backend's "make a pipe" (the parent end would leak).
    # Either both refuse it (EBADF; from 3.13 subprocess's ValueError for
    # STDOUT (-2) as stdin or stdout) or both start a child with no pipes.
    for v in (-2, -3, -4, -5):
        ends = []
        for m in (subprocess, fastspawn):
            try:
                p = m.Popen(["true"], **{slot: v})
            except (OSError, ValueError) as e:
                ends.append(describe(e))
                continue
            assert p.stdin is p.stdout is p.stderr is None
            ends.append(("started", p.wait()))
        assert ends[0] == ends[1], (v, ends)


PASS_FDS = {
    "free-fd": lambda: [free_fd()],
    "negative": lambda: [-1],
    "huge": lambda: [1 << 40],
    "int-max-plus-1": lambda: [2 ** 31],
    "str": lambda: ["a"],
    "not-iterable": lambda: 5,
    "std-fd": lambda: [1],
}


@pytest.mark.parametrize("api", ("Popen", "run", "check_call"))
@pytest.mark.parametrize("case", sorted(PASS_FDS))
def test_bad_pass_fds_like_subprocess(case, api):
    same(api, ["true"], {"pass_fds": PASS_FDS[case]()})


INT_OPTIONS = {
    "umask-float": {"umask": 1.5},
    "umask-str": {"umask": "022"},
    "umask-huge": {"umask": 1 << 40},
    "umask-minus-huge": {"umask": -(1 << 40)},
    "umask-int-max-plus-1": {"umask": 2 ** 31},
    "umask-beyond-long": {"umask": 1 << 70},
    "umask-below-long": {"umask": -(1 << 70)},
    "umask-negative": {"umask": -5},
    "umask-bool": {"umask": True},
    "process_group-str": {"process_group": "x"},
    "process_group-float": {"process_group": 1.5},
    "process_group-huge": {"process_group": 1 << 40},
    "process_group-minus-huge": {"process_group": -(1 << 40)},
    "process_group-negative": {"process_group": -5},
    "process_group-foreign": {"process_group": 1},
    "user-unknown": {"user": "no-such-user-xyz"},
    "user-negative": {"user": -5},
    "user-float": {"user": 1.5},
    "group-unknown": {"group": "no-such-group-xyz"},
    "group-negative": {"group": -5},
    "group-float": {"group": 1.5},
    "extra_groups-unknown": {"extra_groups": ["no-such-group-xyz"]},
    "extra_groups-negative": {"extra_groups": [-5]},
    "extra_groups-float": {"extra_groups": [1.5]},
    "extra_groups-int": {"extra_groups": 5},
}
if sys.version_info < (3, 11):  # pragma: no cover - process_group is 3.11+
    INT_OPTIONS = {k: v for k, v in INT_OPTIONS.items()
                   if "process_group" not in k}


@pytest.mark.parametrize("api", ("Popen", "run", "check_call"))
@pytest.mark.parametrize("case", sorted(INT_OPTIONS))
def test_bad_int_options_like_subprocess(case, api):
    same(api, ["true"], INT_OPTIONS[case])


# ---------------------------------------------------------------------------
# input


INPUTS = {
    "none": None,
    "empty-bytes": b"",
    "empty-str": "",
    "str": "x",
    "int": 5,
    "list": [1],
    "bytearray": bytearray(b"ab"),
    "memoryview": memoryview(b"abc"),
    "strided-memoryview": memoryview(b"abcd")[::2],
    "array": array.array("i", [1, 2]),
}
INPUT_CALLS = {
    # run() / check_output() with input: with and without captures, with
    # and without a timeout (subprocess writes a lone stdin pipe through
    # the file object, else through its select loop).
    "run": lambda m, inp, kw: m.run(["cat"], input=inp, **kw),
    "run-capture": lambda m, inp, kw: m.run(
        ["cat"], input=inp, capture_output=True, **kw),
    "run-capture-timeout": lambda m, inp, kw: m.run(
        ["cat"], input=inp, capture_output=True, timeout=10, **kw),
    "run-timeout": lambda m, inp, kw: m.run(
        ["cat"], input=inp, stdout=DEVNULL, timeout=10, **kw),
    "check_output": lambda m, inp, kw: m.check_output(
        ["cat"], input=inp, **kw),
    "communicate": lambda m, inp, kw: _communicate(
        m, inp, dict(stdin=PIPE, stdout=PIPE, **kw)),
    "communicate-timeout": lambda m, inp, kw: _communicate(
        m, inp, dict(stdin=PIPE, stdout=PIPE, **kw), timeout=10),
    "communicate-stdin-only": lambda m, inp, kw: _communicate(
        m, inp, dict(stdin=PIPE, stdout=DEVNULL, **kw)),
    # input without a stdin pipe: ignored by communicate(), refused by run()
    "communicate-no-stdin": lambda m, inp, kw: _communicate(
        m, inp, dict(stdout=PIPE, **kw), args=["echo", "out"]),
    "run-stdin-devnull": lambda m, inp, kw: m.run(
        ["cat"], input=inp, stdin=DEVNULL, **kw),
    "run-stdin-pipe": lambda m, inp, kw: m.run(
        ["cat"], input=inp, stdin=PIPE, **kw),
}


def _communicate(m, inp, kw, timeout=None, args=("cat",)):
    with m.Popen(list(args), **kw) as p:
        return p.communicate(inp, timeout=timeout), p.returncode


@pytest.mark.parametrize("text", [False, True], ids=["bytes", "text"])
@pytest.mark.parametrize("call", sorted(INPUT_CALLS))
@pytest.mark.parametrize("inp", sorted(INPUTS))
def test_input_like_subprocess(inp, call, text):
    kw = {"text": True} if text else {}
    f = INPUT_CALLS[call]
    want = outcome(f, subprocess, INPUTS[inp], kw)
    got = outcome(f, fastspawn, INPUTS[inp], kw)
    assert got == want


# ---------------------------------------------------------------------------
# text mode: undecodable output under each errors= policy

UNDECODABLE = ["sh", "-c", r"printf 'a\377\376b\r\nc\rd\n'; printf 'e\377\n' >&2"]
POLICIES = [None, "strict", "replace", "ignore", "surrogateescape",
            "backslashreplace", "surrogatepass", "namereplace",
            "xmlcharrefreplace", "no-such-policy"]


@pytest.mark.parametrize("encoding", ["utf-8", "ascii", "latin-1", "utf-16"])
@pytest.mark.parametrize("errors", POLICIES)
@pytest.mark.parametrize("how", ["run", "run_popen", "check_output",
                                 "communicate", "universal_newlines"])
def test_undecodable_output_like_subprocess(how, errors, encoding):
    kw = {"encoding": encoding}
    if errors is not None:
        kw["errors"] = errors
    if how == "communicate":
        f = lambda m: _communicate(m, None, dict(stdout=PIPE, stderr=PIPE,
                                                 **kw), args=UNDECODABLE)
    elif how == "check_output":
        f = lambda m: m.check_output(UNDECODABLE, stderr=STDOUT, **kw)
    elif how == "universal_newlines":
        kw.pop("encoding")
        f = lambda m: m.run(UNDECODABLE, capture_output=True,
                            universal_newlines=True, **kw)
    else:
        f = lambda m: APIS[how](m, UNDECODABLE, dict(capture_output=True,
                                                     **kw))
    assert outcome(f, fastspawn) == outcome(f, subprocess)


# ---------------------------------------------------------------------------
# negative and zero timeouts


def _timeout_view(res):
    """TimeoutExpired.timeout is the caller's value in fastspawn (a
    documented improvement); subprocess sometimes reports the time that
    was left instead. Compare everything else."""
    if res[:2] == ("raised", "TimeoutExpired"):
        head, _, _ = res[2].partition(" timed out after ")
        return res[:2] + (head,) + res[3:]
    return res


TIMEOUTS = [0, 0.0, -1, -0.5, -1e9, float("-inf")]
TIMEOUT_CALLS = {
    "run": lambda m, cmd, t: m.run(cmd, timeout=t),
    "run-capture": lambda m, cmd, t: m.run(cmd, capture_output=True,
                                           timeout=t),
    "run-input": lambda m, cmd, t: m.run(cmd, input=b"x", stdout=PIPE,
                                         timeout=t),
    "run_popen": lambda m, cmd, t: m.run(cmd, capture_output=True,
                                         timeout=t, close_fds=True),
    "call": lambda m, cmd, t: m.call(cmd, timeout=t),
    "check_output": lambda m, cmd, t: m.check_output(cmd, timeout=t),
    "wait": lambda m, cmd, t: _popen_then(m, cmd, {}, "wait", t),
    "communicate": lambda m, cmd, t: _popen_then(
        m, cmd, {"stdout": PIPE, "stderr": PIPE}, "communicate", t),
    "communicate-nopipes": lambda m, cmd, t: _popen_then(
        m, cmd, {}, "communicate", t),
}


def _popen_then(m, cmd, kw, method, t):
    p = m.Popen(cmd, **kw)
    try:
        return getattr(p, method)(timeout=t)
    finally:
        p.kill()
        p.communicate()


@pytest.mark.parametrize("timeout", TIMEOUTS)
@pytest.mark.parametrize("call", sorted(TIMEOUT_CALLS))
def test_expired_timeout_running_child_like_subprocess(call, timeout):
    f = TIMEOUT_CALLS[call]
    want = _timeout_view(outcome(f, subprocess, ["sleep", "5"], timeout))
    got = _timeout_view(outcome(f, fastspawn, ["sleep", "5"], timeout))
    assert got == want
    assert got[:2] == ("raised", "TimeoutExpired")


@pytest.mark.parametrize("timeout", TIMEOUTS)
@pytest.mark.parametrize("call", ["communicate", "wait", "run-capture"])
def test_expired_timeout_finished_child_like_subprocess(call, timeout):
    # The child has exited and its output waits in the pipe: an expired
    # timeout still raises from communicate() (subprocess checks it before
    # reading anything); wait() just reports the exit.
    cmd = ["echo", "done"]
    if call == "run-capture":
        f = TIMEOUT_CALLS[call]
    else:
        def f(m, cmd, t):
            p = m.Popen(cmd, stdout=PIPE)
            try:
                wait_exited(p.pid)
                return getattr(p, call)(timeout=t)
            finally:
                p.kill()
                p.communicate()
    want = _timeout_view(outcome(f, subprocess, cmd, timeout))
    got = _timeout_view(outcome(f, fastspawn, cmd, timeout))
    if call == "run-capture":
        # Whether echo finished before the deadline check is a race in
        # both: only the shape must be one of the two.
        assert got[:2] in (("raised", "TimeoutExpired"),
                           ("completed", 0))
    else:
        assert got == want


@pytest.mark.parametrize("timeout", ["1", b"1", [], object()],
                         ids=["str", "bytes", "list", "object"])
@pytest.mark.parametrize("call", sorted(TIMEOUT_CALLS))
def test_timeout_not_a_number_like_subprocess(call, timeout):
    f = TIMEOUT_CALLS[call]
    want = outcome(f, subprocess, ["true"], timeout)
    got = outcome(f, fastspawn, ["true"], timeout)
    if "object at 0x" in str(want):
        want, got = want[:2], got[:2]
    assert got == want


@pytest.mark.parametrize("timeout", TIMEOUTS)
def test_expired_timeout_run_many(timeout):
    """run_many() (no subprocess twin): an expired timeout -- however far
    in the past -- ends the command at once, like timeout=0."""
    if not hasattr(fastspawn, "run_many"):
        pytest.skip("no run_many in this version")
    import time
    t0 = time.monotonic()
    got = fastspawn.run_many([["sleep", "5"]], timeout=timeout)
    assert time.monotonic() - t0 < 3
    want = fastspawn.run_many([["sleep", "5"]], timeout=0)
    assert [r.returncode for r in got] == [r.returncode for r in want]


NAN_CALLS = {
    # subprocess: select() refuses NaN (ValueError) ...
    "run-capture": lambda m: m.run(["sleep", "0.2"], capture_output=True,
                                   timeout=float("nan")),
    "check_output": lambda m: m.check_output(["sleep", "0.2"],
                                             timeout=float("nan")),
    "communicate": lambda m: _popen_then(
        m, ["sleep", "0.2"], {"stdout": PIPE, "stderr": PIPE},
        "communicate", float("nan")),
    # ... while wait()'s sleep loop never expires: it waits for the exit.
    "wait": lambda m: _popen_then(m, ["sleep", "0.2"], {}, "wait",
                                  float("nan")),
    "run": lambda m: m.run(["sleep", "0.2"], timeout=float("nan")),
}


@pytest.mark.parametrize("call", sorted(NAN_CALLS))
def test_nan_timeout_like_subprocess(call):
    f = NAN_CALLS[call]
    assert outcome(f, fastspawn) == outcome(f, subprocess)


# ---------------------------------------------------------------------------
# the os-style functions: what os raises (in the parent, or from exec in a
# forked child for what os.spawn* only reports as 127)


def _spawn_exec_pairs(f):
    env = {"PATH": f.p_noexec}
    return {
        "spawnv-missing": (lambda: fastspawn.spawnv(os.P_WAIT, f.missing,
                                                    ["x"]),
                           ("execv", f.missing, ["x"])),
        "spawnv-directory": (lambda: fastspawn.spawnv(os.P_WAIT, f.dir,
                                                      ["x"]),
                             ("execv", f.dir, ["x"])),
        "spawnv-noexec": (lambda: fastspawn.spawnv(os.P_WAIT, f.noexec,
                                                   ["x"]),
                          ("execv", f.noexec, ["x"])),
        "spawnv-e2big": (lambda: fastspawn.spawnv(
            os.P_WAIT, "/bin/echo", ["echo", "x" * (33 * 4096)]),
            ("execv", "/bin/echo", ["echo", "x" * (33 * 4096)])),
        "spawnve-missing": (lambda: fastspawn.spawnve(
            os.P_NOWAIT, f.missing, ["x"], {"A": "1"}),
            ("execve", f.missing, ["x"], {"A": "1"})),
        "spawnvp-nowhere": (lambda: fastspawn.spawnvp(
            os.P_WAIT, "no-such-program-xyz", ["x"]),
            ("execvp", "no-such-program-xyz", ["x"])),
        "spawnvpe-noexec-on-path": (lambda: fastspawn.spawnvpe(
            os.P_WAIT, "prog", ["prog"], env),
            ("execvpe", "prog", ["prog"], env)),
        "spawnvpe-dir-on-path": (lambda: fastspawn.spawnvpe(
            os.P_WAIT, "prog", ["prog"], {"PATH": f.p_dir}),
            ("execvpe", "prog", ["prog"], {"PATH": f.p_dir})),
        "spawnlp-nowhere": (lambda: fastspawn.spawnlp(
            os.P_WAIT, "no-such-program-xyz", "x"),
            ("execlp", "no-such-program-xyz", "x")),
        "spawnlpe-empty-path": (lambda: fastspawn.spawnlpe(
            os.P_WAIT, "prog", "prog", {"PATH": ""}),
            ("execlpe", "prog", "prog", {"PATH": ""})),
        "spawnve-nul-env": (lambda: fastspawn.spawnve(
            os.P_WAIT, "/bin/true", ["true"], {"A": "\0"}),
            ("execve", "/bin/true", ["true"], {"A": "\0"})),
        "spawnve-eq-env": (lambda: fastspawn.spawnve(
            os.P_WAIT, "/bin/true", ["true"], {"A=B": "1"}),
            ("execve", "/bin/true", ["true"], {"A=B": "1"})),
        "spawnv-nul-arg": (lambda: fastspawn.spawnv(
            os.P_WAIT, "/bin/echo", ["echo", "a\0"]),
            ("execv", "/bin/echo", ["echo", "a\0"])),
        "spawnv-int-arg": (lambda: fastspawn.spawnv(
            os.P_WAIT, "/bin/echo", ["echo", 1]),
            ("execv", "/bin/echo", ["echo", 1])),
    }


SPAWN_CASES = sorted(_spawn_exec_pairs(type("F", (), {
    k: "" for k in ("missing", "dir", "noexec", "p_noexec", "p_dir")})))


@pytest.mark.parametrize("case", SPAWN_CASES)
def test_spawn_family_raises_what_exec_raises(case, files):
    call, (func, *args) = _spawn_exec_pairs(files)[case]
    want = os_exec_error(func, *args)
    assert want is not None
    try:
        call()
    except Exception as e:
        got = (type(e).__name__, str(e))
        filename = getattr(e, "filename", None)
    else:
        raise AssertionError("no exception; %s raised %r" % (func, want))
    if filename is not None:
        # An exec failure names the program as given, as subprocess does
        # (os.exec* names nothing, or the path it tried last): README,
        # "Exec failures raise". Type, errno and strerror are exec's.
        assert filename == args[0]
        errno_part = re.match(r"\[Errno \d+\] [^:]*", want[1]).group(0)
        assert got == (want[0], "%s: %r" % (errno_part, filename))
    else:
        assert got == want


@pytest.mark.parametrize("case", [
    ("spawnv", (os.P_WAIT, "/bin/true", [])),
    ("spawnv", (os.P_WAIT, "/bin/true", [""])),
    ("spawnv", (os.P_WAIT, "/bin/true", "true")),
    ("spawnv", (os.P_WAIT, "/bin/true", None)),
    ("spawnve", (os.P_WAIT, "/bin/true", ["true"], None)),
    ("spawnve", (os.P_WAIT, "/bin/true", ["true"], [("A", "B")])),
    ("spawnvp", (os.P_WAIT, "true", [])),
    ("spawnl", (os.P_WAIT, "/bin/true")),
], ids=lambda c: c if isinstance(c, str) else None)
def test_spawn_family_parent_checks_like_os(case):
    name, args = case
    want = outcome(getattr(os, name), *args)
    got = outcome(getattr(fastspawn, name), *args)
    # os.spawn* lets some of these fail in its forked child (exit 127):
    # fastspawn raises instead (README: deliberate differences).
    if want[0] == "returned" and want[1] == 127:
        assert got[0] == "raised"
    else:
        assert got == want


@pytest.mark.parametrize("cmd", ["a\0b", b"a\0b", 5, None])
def test_system_and_popen_bad_command_like_os(cmd):
    assert outcome(fastspawn.system, cmd) == outcome(os.system, cmd)
    want = outcome(os.popen, cmd)
    got = outcome(fastspawn.popen, cmd)
    assert got == want


def test_nothing_left_behind_after_all_that():
    # The leak checker runs after every test; this one also proves the
    # checker sees what it should (a child started here is found).
    p = fastspawn.Popen(["sleep", "5"])
    try:
        assert (p.pid, "S") in children() or p.pid in dict(children())
    finally:
        p.send_signal(signal.SIGKILL)
        assert p.wait() == -signal.SIGKILL
    assert p.pid not in dict(children())

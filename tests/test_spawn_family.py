"""The os.spawn* family: fastspawn.spawn{l,le,lp,lpe,v,ve,vp,vpe} against
os.spawn* (and os.exec* for argument checking), on both backends.

The one documented difference: a program that cannot be executed raises
FileNotFoundError/PermissionError/... where os.spawn* returns 127.
"""
import errno
import os
import pathlib
import signal
import sys

import pytest

import fastspawn
from fsutil import (assert_same_signal_state, exc_info, make_script,
                    os_exec_error)

SH = "/bin/sh"
FUNCS = ["spawnl", "spawnle", "spawnlp", "spawnlpe",
         "spawnv", "spawnve", "spawnvp", "spawnvpe"]


def call(mod, name, mode, file, args, env=None):
    """Call ``mod.<name>`` (fastspawn or os) with the calling convention of
    its letters: l = args listed, v = a list, e = env last."""
    func = getattr(mod, name)
    suffix = name[len("spawn"):]
    extra = (env,) if "e" in suffix else ()
    if "e" in suffix and env is None:
        raise AssertionError("e variants need env")
    if suffix.startswith("l"):
        return func(mode, file, *args, *extra)
    return func(mode, file, args, *extra)


def program_for(name, prog="sh"):
    """A program name suiting the variant: searched for p, a path else."""
    return prog if "p" in name[len("spawn"):] else "/bin/" + prog


def env_for(name, **extra):
    if "e" not in name[len("spawn"):]:
        return None
    env = {"PATH": os.environ.get("PATH", os.defpath)}
    env.update(extra)
    return env


def sh_args(script, *args):
    return ["sh", "-c", script, "sh"] + list(args)


# ---------------------------------------------------------------------------
# constants and shape


def test_modes_match_os():
    assert fastspawn.P_WAIT == os.P_WAIT
    assert fastspawn.P_NOWAIT == os.P_NOWAIT
    assert fastspawn.P_NOWAITO == os.P_NOWAITO


def test_all_exported():
    for name in FUNCS + ["system", "popen", "P_WAIT", "P_NOWAIT",
                         "P_NOWAITO"]:
        assert name in fastspawn.__all__
        assert hasattr(fastspawn, name)


def test_use_extensions_is_bool():
    assert isinstance(fastspawn.USE_EXTENSIONS, bool)


# ---------------------------------------------------------------------------
# exit codes and modes, all eight functions


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("code", [0, 3, 255])
def test_p_wait_exit_code(name, code):
    rc = call(fastspawn, name, fastspawn.P_WAIT, program_for(name),
              sh_args("exit %d" % code), env_for(name))
    assert rc == code


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_p_wait_killed(name, sig):
    rc = call(fastspawn, name, fastspawn.P_WAIT, program_for(name),
              sh_args("kill -%d $$" % sig), env_for(name))
    assert rc == -sig


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("mode", ["P_NOWAIT", "P_NOWAITO"])
def test_p_nowait_returns_pid(name, mode):
    pid = call(fastspawn, name, getattr(fastspawn, mode), program_for(name),
               sh_args("exit 7"), env_for(name))
    assert isinstance(pid, int) and pid > 0 and pid != os.getpid()
    wpid, status = os.waitpid(pid, 0)
    assert wpid == pid
    assert os.waitstatus_to_exitcode(status) == 7


def test_p_nowait_child_runs_concurrently():
    """P_NOWAIT returns while the child still runs: the child blocks on an
    inherited pipe until the parent writes to it (no timing involved)."""
    r, w = os.pipe()
    os.set_inheritable(r, True)
    try:
        pid = fastspawn.spawnv(
            fastspawn.P_NOWAIT, sys.executable,
            [sys.executable, "-S", "-c",
             "import os,sys; sys.exit(int(os.read(int(sys.argv[1]), 9)))",
             str(r)])
    finally:
        os.close(r)
    os.write(w, b"5")
    os.close(w)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 5


@pytest.mark.parametrize("name", ["spawnv", "spawnlpe"])
def test_child_signal_state_like_os(name, capfdbinary, backend):
    """Ignored signals and the signal mask reach the child as with
    os.spawn* (fork + exec): exactly the parent's."""
    args = ["grep", "-E", "^Sig(Ign|Blk)", "/proc/self/status"]
    prog = "grep" if "p" in name[5:] else "/bin/grep"
    assert call(fastspawn, name, fastspawn.P_WAIT, prog, args,
                env_for(name)) == 0
    ours = capfdbinary.readouterr().out
    assert call(os, name, os.P_WAIT, prog, args, env_for(name)) == 0
    assert_same_signal_state(ours, capfdbinary.readouterr().out, backend)


def test_inheritable_fds_are_inherited_like_os(tmp_path):
    """spawn* passes inheritable fds on (os.spawn* is fork+exec) and
    closes the others."""
    inh = os.open(os.devnull, os.O_RDONLY)
    os.set_inheritable(inh, True)
    private = os.open(os.devnull, os.O_RDONLY)
    code = ("import os,sys; open(sys.argv[1],'w').write(repr("
            "(os.get_inheritable(%d) if %d in map(int, os.listdir("
            "'/proc/self/fd')) else None, %d in map(int, os.listdir("
            "'/proc/self/fd')))))" % (inh, inh, private))
    try:
        results = []
        for mod in (fastspawn, os):
            out = tmp_path / mod.__name__
            rc = mod.spawnv(mod.P_WAIT, sys.executable,
                            [sys.executable, "-S", "-c", code, str(out)])
            assert rc == 0
            results.append(out.read_text())
    finally:
        os.close(inh)
        os.close(private)
    assert results[0] == results[1] == "(True, False)"


@pytest.mark.parametrize("name", FUNCS)
def test_differential_exit_codes(name):
    for script in ("exit 0", "exit 3", "exit 255", "kill -9 $$",
                   "kill -15 $$"):
        ours = call(fastspawn, name, fastspawn.P_WAIT, program_for(name),
                    sh_args(script), env_for(name))
        theirs = call(os, name, os.P_WAIT, program_for(name),
                      sh_args(script), env_for(name))
        assert ours == theirs, script


# ---------------------------------------------------------------------------
# argv round trip


WEIRD_ARGS = ["plain", "with space", "'single'", '"double"', "back\\slash",
              "", "\u00e9t\u00e9 \u2603 \U0001f600", "$HOME", "*", "a\nb",
              "--", "-c"]
PRINT_ARGS = 'out=$1; shift; printf "%s\\0" "$0" "$@" > "$out"'


def _read_args(path):
    return path.read_bytes().split(b"\0")[:-1]


@pytest.mark.parametrize("name", FUNCS)
def test_args_roundtrip(name, tmp_path):
    out = tmp_path / "args"
    args = ["sh", "-c", PRINT_ARGS, "argv0-name", str(out)] + WEIRD_ARGS
    rc = call(fastspawn, name, fastspawn.P_WAIT, program_for(name), args,
              env_for(name))
    assert rc == 0
    assert _read_args(out) == [os.fsencode(a) for a in
                               ["argv0-name"] + WEIRD_ARGS]


@pytest.mark.parametrize("name", FUNCS)
def test_args_differential(name, tmp_path):
    mixed = WEIRD_ARGS + [b"raw \xff\xfe bytes", pathlib.Path("/a/path"),
                          "surrogate \udcff"]
    results = []
    for mod in (fastspawn, os):
        out = tmp_path / ("args-" + mod.__name__)
        args = ["sh", "-c", PRINT_ARGS, "zero", str(out)] + mixed
        rc = call(mod, name, mod.P_WAIT, program_for(name), tuple(args),
                  env_for(name))
        assert rc == 0, mod
        results.append(_read_args(out))
    assert results[0] == results[1]
    assert results[0][-3:] == [b"raw \xff\xfe bytes", b"/a/path",
                               b"surrogate \xff"]


def test_bytes_and_pathlike_program(tmp_path):
    out = tmp_path / "o"
    for prog in (b"/bin/sh", pathlib.Path("/bin/sh"), "/bin/sh"):
        rc = fastspawn.spawnv(fastspawn.P_WAIT, prog,
                              ["sh", "-c", "printf x >> \"$0\"", str(out)])
        assert rc == 0
    assert out.read_bytes() == b"xxx"


def test_bytes_file_searched(monkeypatch, tmp_path):
    d = tmp_path / "bin"
    d.mkdir()
    make_script(d / "prog", 'printf found > "$1"')
    monkeypatch.setenv("PATH", str(d))
    out = tmp_path / "o"
    assert fastspawn.spawnvp(fastspawn.P_WAIT, b"prog",
                             [b"prog", os.fsencode(out)]) == 0
    assert out.read_bytes() == b"found"


def test_args_tuple_and_list(tmp_path):
    for args in (("true",), ["true"]):
        assert fastspawn.spawnv(fastspawn.P_WAIT, "/bin/true", args) == 0


def test_argv0_may_differ_from_program():
    assert fastspawn.spawnv(fastspawn.P_WAIT, "/bin/sh",
                            ["anything", "-c", 'test "$0" = anything']) == 0


# ---------------------------------------------------------------------------
# environment


def _env_lines(data):
    return sorted(data.split(b"\0")[:-1])


@pytest.mark.parametrize("name", ["spawnle", "spawnve", "spawnlpe",
                                  "spawnvpe"])
def test_env_exact(name, capfdbinary):
    env = {"A": "1", "B": "x y", "EMPTY": "", "EQ": "a=b",
           "UNI": "\u2603", "PATH": "/usr/bin:/bin"}
    prog = "env" if "p" in name[5:] else "/usr/bin/env"
    rc = call(fastspawn, name, fastspawn.P_WAIT, prog, ["env", "-0"], env)
    assert rc == 0
    out = capfdbinary.readouterr().out
    assert _env_lines(out) == sorted(
        os.fsencode(k) + b"=" + os.fsencode(v) for k, v in env.items())


@pytest.mark.parametrize("name", ["spawnl", "spawnv", "spawnlp", "spawnvp"])
def test_env_inherited(name, capfdbinary, monkeypatch):
    monkeypatch.setenv("FASTSPAWN_MARK", "inherited value")
    monkeypatch.delenv("FASTSPAWN_GONE", raising=False)
    prog = "env" if "p" in name[5:] else "/usr/bin/env"
    rc = call(fastspawn, name, fastspawn.P_WAIT, prog, ["env", "-0"])
    assert rc == 0
    out = capfdbinary.readouterr().out
    # Reference: what os.spawnv's child sees (the C-level environ, which
    # os.environ may lag behind, e.g. LINES/COLUMNS set by readline).
    assert os.spawnv(os.P_WAIT, "/usr/bin/env", ["env", "-0"]) == 0
    assert _env_lines(out) == _env_lines(capfdbinary.readouterr().out)
    assert b"FASTSPAWN_MARK=inherited value" in out.split(b"\0")


def test_env_empty(capfdbinary):
    assert fastspawn.spawnve(fastspawn.P_WAIT, "/usr/bin/env",
                             ["env", "-0"], {}) == 0
    assert capfdbinary.readouterr().out == b""


def test_env_differential(capfdbinary):
    env = {"S": "str", b"B": b"\xff\xfe", "P": pathlib.Path("/p/q"),
           "=LEADING": "eq-first-is-legal", "SUR": "x\udcffy"}
    results = []
    for mod in (fastspawn, os):
        rc = mod.spawnve(mod.P_WAIT, "/usr/bin/env", ["env", "-0"], env)
        assert rc == 0, mod
        results.append(_env_lines(capfdbinary.readouterr().out))
    assert results[0] == results[1]
    assert b"=LEADING=eq-first-is-legal" in results[0]
    assert b"B=\xff\xfe" in results[0]
    assert b"P=/p/q" in results[0]


def test_env_mapping_not_dict(capfdbinary):
    class Env:
        def __init__(self, d):
            self.d = d

        def items(self):
            return self.d.items()

        def keys(self):
            return self.d.keys()

        def values(self):
            return self.d.values()

        def __getitem__(self, k):
            return self.d[k]

    assert fastspawn.spawnve(fastspawn.P_WAIT, "/usr/bin/env",
                             ["env", "-0"], Env({"K": "v"})) == 0
    assert capfdbinary.readouterr().out == b"K=v\0"


# ---------------------------------------------------------------------------
# argument validation: the same exceptions and messages as os


def _both(callable_name, *args):
    ours = exc_info(getattr(fastspawn, callable_name), *args)
    theirs = exc_info(getattr(os, callable_name), *args)
    return ours, theirs


@pytest.mark.parametrize("args", [[], (), [""], ("",), [b""], [None],
                                  ["", "x"]])
@pytest.mark.parametrize("name", ["spawnv", "spawnvp"])
def test_empty_argv_like_os(name, args):
    ours, theirs = _both(name, os.P_WAIT, "/bin/true", args)
    assert ours == theirs
    assert ours == ("ValueError", "argv first element cannot be empty")


@pytest.mark.parametrize("name", ["spawnve", "spawnvpe"])
def test_empty_argv_like_os_e(name):
    ours, theirs = _both(name, os.P_WAIT, "/bin/true", [], {})
    assert ours == theirs == ("ValueError",
                              "argv first element cannot be empty")


@pytest.mark.parametrize("name", ["spawnl", "spawnlp"])
def test_empty_argv_like_os_l(name):
    ours, theirs = _both(name, os.P_WAIT, "/bin/true")
    assert ours == theirs == ("ValueError",
                              "argv first element cannot be empty")


@pytest.mark.parametrize("name", ["spawnle", "spawnlpe"])
def test_empty_argv_like_os_le(name):
    ours, theirs = _both(name, os.P_WAIT, "/bin/true", {})
    assert ours == theirs == ("ValueError",
                              "argv first element cannot be empty")


@pytest.mark.parametrize("args", ["true", b"true", None, 5, iter(["true"]),
                                  {"true": 1}])
@pytest.mark.parametrize("name", ["spawnv", "spawnvp"])
def test_argv_type_like_os(name, args):
    ours, theirs = _both(name, os.P_WAIT, "/bin/true", args)
    assert ours == theirs == ("TypeError", "argv must be a tuple or a list")


@pytest.mark.parametrize("bad", [1, 1.5, None, object()])
def test_arg_item_type_like_execv(bad):
    args = ["true", bad]
    ours = exc_info(fastspawn.spawnv, os.P_WAIT, "/bin/true", args)
    theirs = os_exec_error("execv", "/bin/true", args)
    assert ours == theirs
    assert ours[0] == "TypeError"


@pytest.mark.parametrize("args", [["tr\0ue"], ["true", "a\0b"],
                                  ["true", b"a\0b"]])
def test_nul_in_args_like_execv(args):
    ours = exc_info(fastspawn.spawnv, os.P_WAIT, "/bin/true", args)
    theirs = os_exec_error("execv", "/bin/true", args)
    assert ours == theirs == ("ValueError", "embedded null byte")


@pytest.mark.parametrize("name", ["spawnve", "spawnvpe"])
@pytest.mark.parametrize("env", [
    {"A=B": "1"}, {"": "1"}, {b"X=Y": b"1"}, {"A\0B": "1"}, {"A": "1\0"},
    {b"": b""}, {"OK": "1", "BAD=": "2"},
])
def test_bad_env_like_execve(name, env):
    ours = exc_info(getattr(fastspawn, name), os.P_WAIT, "/bin/true",
                    ["true"], env)
    theirs = os_exec_error("execve", "/bin/true", ["true"], env)
    assert ours == theirs
    assert ours[0] == "ValueError"
    assert ours[1] in ("illegal environment variable name",
                       "embedded null byte")


@pytest.mark.parametrize("env", [None, 5, 1.5, {"A": 1}, {1: "A"},
                                 {"A": None}, {b"A": object()}])
def test_bad_env_type_like_execve(env):
    ours = exc_info(fastspawn.spawnve, os.P_WAIT, "/bin/true", ["true"], env)
    theirs = os_exec_error("execve", "/bin/true", ["true"], env)
    assert ours == theirs
    if sys.implementation.name == "pypy" and not hasattr(env, "keys"):
        # PyPy's execve reads env.keys() without a mapping check first.
        assert ours[0] == "AttributeError"
    else:
        assert ours[0] == "TypeError"


@pytest.mark.parametrize("env", [[("A", "1")], "A=1", ("A=1",)])
def test_env_sequence_refused(env):
    """os.execve refuses these with AttributeError (no .keys()); a
    TypeError is as good: what matters is that nothing is spawned."""
    with pytest.raises((TypeError, AttributeError)):
        fastspawn.spawnve(os.P_WAIT, "/bin/true", ["true"], env)
    assert os_exec_error("execve", "/bin/true", ["true"], env) is not None


def test_nul_env_message_exact():
    assert exc_info(fastspawn.spawnve, os.P_WAIT, "/bin/true", ["true"],
                    {"A": "x\0"}) == ("ValueError", "embedded null byte")
    assert exc_info(fastspawn.spawnve, os.P_WAIT, "/bin/true", ["true"],
                    {"A=": "x"}) == ("ValueError",
                                     "illegal environment variable name")


@pytest.mark.parametrize("name", FUNCS)
def test_nul_in_program_is_value_error(name):
    with pytest.raises(ValueError):
        call(fastspawn, name, os.P_WAIT, "/bin/tr\0ue", ["true"],
             env_for(name))


@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("prog", [None, 5, 1.5])
def test_program_type_error(name, prog):
    with pytest.raises(TypeError):
        call(fastspawn, name, os.P_WAIT, prog, ["true"], env_for(name))


def test_path_and_bytes_path_in_env_conflict():
    env = {"PATH": "/bin", b"PATH": b"/usr/bin"}
    with pytest.raises(ValueError):
        fastspawn.spawnvpe(os.P_WAIT, "true", ["true"], env)


# ---------------------------------------------------------------------------
# programs that cannot be executed: exceptions (os.spawn* returns 127)


def _bad_program(tmp_path, kind):
    p = tmp_path / kind
    if kind == "not-executable":
        make_script(p, "exit 0", mode=0o644)
    elif kind == "directory":
        p.mkdir()
    elif kind == "garbage":
        p.write_bytes(b"\x00\x01\x02garbage\n" * 10)
        p.chmod(0o755)
    elif kind == "through-a-file":
        (tmp_path / "plain").write_text("x")
        p = tmp_path / "plain" / "prog"
    elif kind == "bad-interpreter":
        p.write_bytes(b"#!/no/such/interpreter\n")
        p.chmod(0o755)
    return str(p)


BAD_KINDS = [
    ("missing", FileNotFoundError, errno.ENOENT),
    ("not-executable", PermissionError, errno.EACCES),
    ("directory", PermissionError, errno.EACCES),
    ("garbage", OSError, errno.ENOEXEC),
    ("through-a-file", NotADirectoryError, errno.ENOTDIR),
    ("bad-interpreter", FileNotFoundError, errno.ENOENT),
]


@pytest.mark.parametrize("kind,exc,err", BAD_KINDS,
                         ids=[k[0] for k in BAD_KINDS])
@pytest.mark.parametrize("name", FUNCS)
@pytest.mark.parametrize("mode", ["P_WAIT", "P_NOWAIT"])
def test_exec_errors_raise(tmp_path, kind, exc, err, name, mode):
    path = _bad_program(tmp_path, kind)
    with pytest.raises(OSError) as info:
        call(fastspawn, name, getattr(fastspawn, mode), path, ["prog"],
             env_for(name))
    assert type(info.value) is exc
    assert info.value.errno == err
    assert info.value.strerror == os.strerror(err)
    assert info.value.filename == path


@pytest.mark.parametrize("kind,exc,err", BAD_KINDS,
                         ids=[k[0] for k in BAD_KINDS])
def test_exec_errors_os_returns_127(tmp_path, kind, exc, err):
    """The documented difference, checked against os itself."""
    path = _bad_program(tmp_path, kind)
    assert os.spawnv(os.P_WAIT, path, ["prog"]) == 127
    with pytest.raises(exc):
        fastspawn.spawnv(fastspawn.P_WAIT, path, ["prog"])


@pytest.mark.parametrize("kind,exc,err", BAD_KINDS,
                         ids=[k[0] for k in BAD_KINDS])
def test_exec_errors_match_execv(tmp_path, kind, exc, err):
    """Same exception type as os.execv raises for that path."""
    path = _bad_program(tmp_path, kind)
    theirs = os_exec_error("execv", path, ["prog"])
    ours = exc_info(fastspawn.spawnv, fastspawn.P_WAIT, path, ["prog"])
    assert theirs is not None and ours[0] == theirs[0]


@pytest.mark.parametrize("given", [
    lambda p: p, lambda p: os.fsencode(p), lambda p: pathlib.Path(p),
], ids=["str", "bytes", "pathlike"])
def test_exec_error_filename_as_given(tmp_path, given):
    prog = given(str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError) as info:
        fastspawn.spawnv(fastspawn.P_WAIT, prog, ["prog"])
    assert info.value.filename == prog
    assert type(info.value.filename) is type(prog)


def test_not_found_on_path_names_the_file(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", "%s:%s" % (tmp_path / "a", tmp_path / "b"))
    with pytest.raises(FileNotFoundError) as info:
        fastspawn.spawnlp(fastspawn.P_WAIT, "no-such-prog-fs", "x")
    assert info.value.filename == "no-such-prog-fs"
    assert info.value.errno == errno.ENOENT


# ---------------------------------------------------------------------------
# PATH search: the os.execvp rules


@pytest.fixture
def dirs(tmp_path):
    """Five directories d0..d4 under tmp_path (as str)."""
    out = []
    for i in range(5):
        d = tmp_path / ("d%d" % i)
        d.mkdir()
        out.append(str(d))
    return out


def _prog(d, tag, mode=0o755, name="prog"):
    make_script(os.path.join(d, name), 'printf %s "%s" > "$1"' % ("%s", tag),
                mode=mode)


def _garbage_prog(d, name="prog"):
    """An executable file exec() cannot run (ENOEXEC). Closed at once: an
    fd still open for writing (the GC closes it late on PyPy) makes exec()
    fail with ETXTBSY instead."""
    with open(os.path.join(d, name), "wb") as f:
        f.write(b"\0\1\2")
    os.chmod(os.path.join(d, name), 0o755)


def _search(mod, path_value, tmp_path, name="prog", env_extra=None,
            use_environ=False, monkeypatch=None):
    """Run ``name`` via spawnvpe (PATH in env) or spawnvp (PATH in
    os.environ). Returns ('ran', tag) or ('raised', type name, errno) or
    ('code', returncode) for os's 127."""
    out = tmp_path / ("out-%s" % mod.__name__)
    if out.exists():
        out.unlink()
    args = [name, str(out)]
    try:
        if use_environ:
            if path_value is None:
                monkeypatch.delenv("PATH", raising=False)
            else:
                monkeypatch.setenv("PATH", path_value)
            rc = mod.spawnvp(mod.P_WAIT, name, args)
        else:
            env = dict(env_extra or {})
            if path_value is not None:
                env["PATH"] = path_value
            rc = mod.spawnvpe(mod.P_WAIT, name, args, env)
    except OSError as e:
        return ("raised", type(e).__name__, e.errno)
    if rc == 0 and out.exists():
        return ("ran", out.read_text())
    return ("code", rc)


def _execvpe_outcome(path_value, name="prog"):
    """What os.execvpe raises for the same search (in a forked child)."""
    env = {} if path_value is None else {"PATH": path_value}
    res = os_exec_error("execvpe", name, [name, "/dev/null"], env)
    return None if res is None else res[0]


SEARCH_CASES = {
    # name: (setup, PATH built from dirs, expected outcome)
    "first-wins": (lambda d: (_prog(d[0], "d0"), _prog(d[1], "d1")),
                   lambda d: "%s:%s" % (d[0], d[1]), ("ran", "d0")),
    "skip-missing": (lambda d: _prog(d[1], "d1"),
                     lambda d: "%s/nope:%s:%s" % (d[0], d[0], d[1]),
                     ("ran", "d1")),
    "skip-non-executable": (lambda d: (_prog(d[0], "d0", mode=0o644),
                                       _prog(d[1], "d1")),
                            lambda d: "%s:%s" % (d[0], d[1]), ("ran", "d1")),
    "skip-directory": (lambda d: (os.mkdir(os.path.join(d[0], "prog")),
                                  _prog(d[1], "d1")),
                       lambda d: "%s:%s" % (d[0], d[1]), ("ran", "d1")),
    "non-executable-then-nothing": (
        lambda d: _prog(d[0], "d0", mode=0o644),
        lambda d: "%s:%s" % (d[0], d[1]),
        ("raised", "PermissionError", errno.EACCES)),
    "nothing-then-non-executable": (
        lambda d: _prog(d[1], "d1", mode=0o644),
        lambda d: "%s:%s:%s" % (d[0], d[1], d[2]),
        ("raised", "PermissionError", errno.EACCES)),
    "directory-only": (
        lambda d: os.mkdir(os.path.join(d[0], "prog")),
        lambda d: "%s:%s" % (d[0], d[1]),
        ("raised", "PermissionError", errno.EACCES)),
    "nowhere": (lambda d: None, lambda d: "%s:%s" % (d[0], d[1]),
                ("raised", "FileNotFoundError", errno.ENOENT)),
    "file-as-dir-last": (
        lambda d: open(os.path.join(d[1], "f"), "w").close(),
        lambda d: "%s:%s/f" % (d[0], d[1]),
        ("raised", "NotADirectoryError", errno.ENOTDIR)),
    "file-as-dir-first": (
        lambda d: open(os.path.join(d[1], "f"), "w").close(),
        lambda d: "%s/f:%s" % (d[1], d[0]),
        ("raised", "FileNotFoundError", errno.ENOENT)),
    "file-as-dir-only": (
        lambda d: open(os.path.join(d[1], "f"), "w").close(),
        lambda d: "%s/f" % d[1],
        ("raised", "NotADirectoryError", errno.ENOTDIR)),
    "single-entry": (lambda d: _prog(d[2], "d2"), lambda d: d[2],
                     ("ran", "d2")),
    "single-entry-non-executable": (
        lambda d: _prog(d[2], "d2", mode=0o644), lambda d: d[2],
        ("raised", "PermissionError", errno.EACCES)),
    "garbage-then-real": (
        lambda d: (_garbage_prog(d[0]), _prog(d[1], "d1")),
        lambda d: "%s:%s" % (d[0], d[1]), ("ran", "d1")),
    "garbage-only": (
        lambda d: _garbage_prog(d[0]),
        lambda d: "%s:%s" % (d[0], d[1]),
        ("raised", "OSError", errno.ENOEXEC)),
    "non-executable-before-garbage": (
        lambda d: (_prog(d[0], "d0", mode=0o644), _garbage_prog(d[1])),
        lambda d: "%s:%s" % (d[0], d[1]),
        ("raised", "PermissionError", errno.EACCES)),
    "relative-entry": (lambda d: _prog(d[3], "d3"),
                       lambda d: "/nonexistent-fs:" + os.path.basename(d[3]),
                       ("ran", "d3")),
    "trailing-slash": (lambda d: _prog(d[1], "d1"), lambda d: d[1] + "/",
                       ("ran", "d1")),
}


@pytest.mark.parametrize("case", sorted(SEARCH_CASES))
@pytest.mark.parametrize("how", ["env", "environ"])
def test_path_search(case, how, dirs, tmp_path, monkeypatch):
    setup, make_path, expected = SEARCH_CASES[case]
    setup(dirs)
    monkeypatch.chdir(tmp_path)          # for relative PATH entries
    path_value = make_path(dirs)
    ours = _search(fastspawn, path_value, tmp_path,
                   use_environ=how == "environ", monkeypatch=monkeypatch)
    assert ours == expected
    # os agrees: same program run, or os.execvpe raises the same type.
    if expected[0] == "ran":
        theirs = _search(os, path_value, tmp_path,
                         use_environ=how == "environ",
                         monkeypatch=monkeypatch)
        assert theirs == expected
    else:
        assert _execvpe_outcome(path_value) == expected[1]


@pytest.mark.parametrize("path_value", [":{d}", "{d}::", "", "{d2}::{d}"])
def test_path_empty_entry_means_cwd(path_value, dirs, tmp_path, monkeypatch):
    _prog(dirs[4], "cwd")
    monkeypatch.chdir(dirs[4])
    path_value = path_value.format(d=dirs[0], d2=dirs[1])
    ours = _search(fastspawn, path_value, tmp_path)
    theirs = _search(os, path_value, tmp_path)
    assert ours == theirs == ("ran", "cwd")


def test_path_unset_uses_defpath(tmp_path, monkeypatch):
    assert "/bin" in os.defpath.split(os.pathsep)
    monkeypatch.delenv("PATH", raising=False)
    assert fastspawn.spawnvp(fastspawn.P_WAIT, "sh",
                             ["sh", "-c", "exit 4"]) == 4
    assert fastspawn.spawnvpe(fastspawn.P_WAIT, "sh",
                              ["sh", "-c", "exit 5"], {}) == 5


def test_pe_uses_env_path_not_environ(dirs, tmp_path, monkeypatch):
    _prog(dirs[0], "environ")
    _prog(dirs[1], "env")
    monkeypatch.setenv("PATH", dirs[0])
    assert _search(fastspawn, dirs[1], tmp_path) == ("ran", "env")
    # an env without PATH searches os.defpath, not os.environ's PATH
    assert _search(fastspawn, None, tmp_path) == \
        ("raised", "FileNotFoundError", errno.ENOENT)
    assert _search(os, None, tmp_path) == ("code", 127)


def test_pe_bytes_path_key(dirs, tmp_path):
    _prog(dirs[2], "bytes-key")
    out = tmp_path / "o"
    rc = fastspawn.spawnvpe(fastspawn.P_WAIT, "prog", ["prog", str(out)],
                            {b"PATH": os.fsencode(dirs[2])})
    assert rc == 0 and out.read_text() == "bytes-key"


def test_p_uses_environ_path(dirs, tmp_path, monkeypatch):
    _prog(dirs[0], "environ")
    monkeypatch.setenv("PATH", dirs[0])
    for name in ("spawnvp", "spawnlp"):
        out = tmp_path / name
        rc = call(fastspawn, name, fastspawn.P_WAIT, "prog",
                  ["prog", str(out)])
        assert rc == 0 and out.read_text() == "environ"


def test_slash_in_name_is_not_searched(dirs, tmp_path, monkeypatch):
    os.mkdir(os.path.join(dirs[0], "sub"))
    _prog(os.path.join(dirs[0], "sub"), "sub")
    monkeypatch.setenv("PATH", dirs[0])
    monkeypatch.chdir(dirs[1])
    out = tmp_path / "o"
    with pytest.raises(FileNotFoundError) as info:
        fastspawn.spawnvp(fastspawn.P_WAIT, "sub/prog", ["prog", str(out)])
    assert info.value.filename == "sub/prog"
    assert os.spawnvp(os.P_WAIT, "sub/prog", ["prog", str(out)]) == 127
    # ...but relative to the cwd it runs
    monkeypatch.chdir(dirs[0])
    assert fastspawn.spawnvp(fastspawn.P_WAIT, "sub/prog",
                             ["prog", str(out)]) == 0
    assert out.read_text() == "sub"


def test_absolute_name_with_p_variant(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    assert fastspawn.spawnlp(fastspawn.P_WAIT, "/bin/sh", "sh", "-c",
                             "exit 6") == 6


@pytest.mark.parametrize("name", ["spawnlp", "spawnvp", "spawnlpe",
                                  "spawnvpe"])
def test_search_error_names_given_file(name, dirs, tmp_path):
    _prog(dirs[0], "x", mode=0o644)
    env = {"PATH": "%s:%s" % (dirs[0], dirs[1])}
    if "e" not in name[5:]:
        os.environ["PATH"], saved = env["PATH"], os.environ.get("PATH")
    try:
        with pytest.raises(PermissionError) as info:
            call(fastspawn, name, fastspawn.P_WAIT, "prog", ["prog"],
                 env if "e" in name[5:] else None)
    finally:
        if "e" not in name[5:]:
            if saved is None:
                del os.environ["PATH"]
            else:
                os.environ["PATH"] = saved
    assert info.value.filename == "prog"
    assert info.value.errno == errno.EACCES


def test_non_p_variants_do_not_search(dirs, monkeypatch):
    _prog(dirs[0], "x")
    monkeypatch.setenv("PATH", dirs[0])
    monkeypatch.chdir(dirs[1])
    for name in ("spawnl", "spawnv", "spawnle", "spawnve"):
        with pytest.raises(FileNotFoundError) as info:
            call(fastspawn, name, fastspawn.P_WAIT, "prog", ["prog"],
                 {"PATH": dirs[0]} if "e" in name[5:] else None)
        assert info.value.filename == "prog"


@pytest.mark.parametrize("api", ["spawnvp", "run", "run-capture"])
def test_path_search_follows_every_environ_change(api, dirs, tmp_path,
                                                  monkeypatch):
    """The candidates for os.environ's PATH are cached on its value: each
    change (and back) is seen by the next call, as os.execvp sees it."""
    for i, tag in enumerate("abc"):
        _prog(dirs[i], tag)
    out = tmp_path / "out"

    def ran():
        if out.exists():
            out.unlink()
        if api == "spawnvp":
            assert fastspawn.spawnvp(fastspawn.P_WAIT, "prog",
                                     ["prog", str(out)]) == 0
        else:
            kw = {"capture_output": True} if api == "run-capture" else {}
            assert fastspawn.run(["prog", str(out)], **kw).returncode == 0
        return out.read_text()
    for value, want in ((dirs[0], "a"), (dirs[1], "b"), (dirs[0], "a"),
                        ("%s:%s" % (dirs[2], dirs[1]), "c")):
        monkeypatch.setenv("PATH", value)
        assert ran() == want
    monkeypatch.delenv("PATH")
    with pytest.raises(FileNotFoundError):
        ran()


def test_path_search_with_os_environ_replaced(dirs, tmp_path, monkeypatch):
    """Code that swaps os.environ for a plain mapping: PATH is still taken
    from it, as os.get_exec_path() does."""
    _prog(dirs[0], "plain")
    out = tmp_path / "out"
    monkeypatch.setattr(os, "environ", {"PATH": dirs[0]})
    assert fastspawn.run(["prog", str(out)]).returncode == 0
    assert out.read_text() == "plain"

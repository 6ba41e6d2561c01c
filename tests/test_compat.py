"""The per-version decisions of fastspawn._compat, each checked against
the running interpreter's own subprocess / os / _posixsubprocess (the suite
runs on every supported Python: scripts/test-pythons.sh)."""
import gc
import inspect
import os
import pathlib
import subprocess
import sys
import sysconfig
import warnings

import pytest

import fastspawn
from fastspawn import _compat, _popen
from fsfault import describe, outcome

PIPE = subprocess.PIPE
CPYTHON = sys.implementation.name == "cpython"


# ---------------------------------------------------------------------------
# Popen._internal_poll's waitpid


def test_poll_hook_is_a_parameter_of_this_subprocess():
    params = inspect.signature(subprocess.Popen._internal_poll).parameters
    if CPYTHON:
        assert _compat.POLL_HOOK in ("_waitpid", "_del_safe")
    if _compat.POLL_HOOK is not None:
        assert _compat.POLL_HOOK in params


@pytest.mark.parametrize("mod", [subprocess, fastspawn])
def test_poll_of_a_child_reaped_elsewhere(mod):
    # The ECHILD branch of the stdlib's poll (bpo-15756): returncode 0.
    # Through _del_safe it reads ECHILD from our namespace's fallback.
    p = mod.Popen(["true"])
    os.waitpid(p.pid, 0)
    assert p.poll() == 0


def test_poll_records_rusage_through_the_stdlib_poll():
    p = fastspawn.Popen(["true"])
    while p.poll() is None:
        pass
    assert p.returncode == 0
    assert p.rusage is not None and p.rusage.ru_maxrss > 0


@pytest.mark.parametrize("mod", [subprocess, fastspawn])
def test_del_reaps_an_exited_child_without_unraisable(mod):
    hooked = []
    old = sys.unraisablehook
    sys.unraisablehook = hooked.append
    try:
        p = mod.Popen(["true"])
        pid = p.pid
        os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
        with warnings.catch_warnings():
            # "subprocess N is still running": it was not waited for.
            warnings.simplefilter("ignore", ResourceWarning)
            del p
            gc.collect()
    finally:
        sys.unraisablehook = old
    assert hooked == []
    # __del__'s poll reaped it: it is no child of ours any more.
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def test_poll_passes_on_what_its_caller_gives():
    # Whatever keyword arguments the stdlib passes (3.13+: _del_safe) reach
    # its poll, with our waitpid in.
    p = fastspawn.Popen(["true"])
    os.waitid(os.P_PID, p.pid, os.WEXITED | os.WNOWAIT)
    if _compat.POLL_HOOK == "_del_safe":
        default = inspect.signature(
            subprocess.Popen._internal_poll).parameters["_del_safe"].default
        assert p._internal_poll(_del_safe=default) == 0
    else:
        assert p._internal_poll(_deadstate=None) == 0
    assert p.rusage is not None


# ---------------------------------------------------------------------------
# fork_exec's C int messages


@pytest.mark.skipif(not CPYTHON, reason="PyPy converts C ints its own way")
@pytest.mark.parametrize("value", [2 ** 31, -2 ** 31 - 1, 1 << 40,
                                   -(1 << 40), 2 ** 63, -2 ** 63 - 1,
                                   1 << 70, -(1 << 70)])
def test_c_int_overflow_is_fork_exec_s(value):
    want = outcome(lambda: subprocess.Popen(["true"], umask=value))
    got = describe(_compat.c_int_overflow(value))
    assert got == want
    assert want[1] == "OverflowError"


# ---------------------------------------------------------------------------
# subprocess's os.posix_spawn path


class _Probe(subprocess.Popen):
    """subprocess's Popen, telling which way it started the child and what
    _compat decides for the same _execute_child arguments."""

    def _execute_child(self, *params):
        p = dict(zip(_popen._EXEC_PARAMS, params))
        args = p["args"]
        args = [args] if isinstance(args, (str, bytes, os.PathLike)) \
            else list(args)
        executable = p["executable"] or args[0]
        self.predicted = _compat.stdlib_posix_spawns(executable, p)
        self.posix_spawned = False
        return super()._execute_child(*params)

    def _posix_spawn(self, *args, **kwargs):
        self.posix_spawned = True
        return super()._posix_spawn(*args, **kwargs)


_SHAPES = {
    "plain": (["true"], {}),
    "absolute": (["/bin/true"], {}),
    "absolute-no-close-fds": (["/bin/true"], {"close_fds": False}),
    "pathlike": ([pathlib.Path("/bin/true")], {}),
    "bytes": ([b"/bin/true"], {}),
    "executable": (["x"], {"executable": "/bin/true"}),
    "pipes": (["/bin/true"], {"stdin": PIPE, "stdout": PIPE,
                              "stderr": PIPE}),
    "stdout-fd-1": (["/bin/true"], {"stdout": 1}),
    "cwd": (["/bin/true"], {"cwd": "/"}),
    "pass_fds": (["/bin/true"], {"pass_fds": [1]}),
    "umask": (["/bin/true"], {"umask": 0o22}),
    "session": (["/bin/true"], {"start_new_session": True}),
    "preexec": (["/bin/true"], {"preexec_fn": lambda: None}),
    "env": (["/bin/true"], {"env": {"A": "1"}}),
}


@pytest.mark.skipif(not hasattr(subprocess.Popen, "_posix_spawn"),
                    reason="this subprocess never uses os.posix_spawn")
@pytest.mark.parametrize("shape", sorted(_SHAPES))
def test_posix_spawn_path_is_this_subprocess_s(shape):
    args, kwargs = _SHAPES[shape]
    with _Probe(args, **kwargs) as p:
        pass
    assert p.predicted == p.posix_spawned
    if shape == "absolute":
        # run()'s direct path: the same decision.
        assert _compat.run_posix_spawns("/bin/true", None) == p.posix_spawned


_SPAWN_ARGS = {
    "nul-path": ("/bin/tr\0ue", ["true"], None),
    "nul-path-bytes": (b"/bin/tr\0ue", ["true"], None),
    "empty-argv": ("/bin/true", [], None),
    "empty-argv0": ("/bin/true", [""], None),
    "nul-arg": ("/bin/true", ["true", "a\0"], None),
    "int-arg": ("/bin/true", ["true", 1], None),
    "env-list": ("/bin/true", ["true"], [("A", "1")]),
    "env-int": ("/bin/true", ["true"], 5),
    "env-empty-key": ("/bin/true", ["true"], {"": "1"}),
    "env-eq-key": ("/bin/true", ["true"], {"A=B": "1"}),
    "env-nul-key": ("/bin/true", ["true"], {"A\0": "1"}),
    "env-nul-value": ("/bin/true", ["true"], {"A": "\0"}),
    "env-int-key": ("/bin/true", ["true"], {1: "1"}),
    "env-int-value": ("/bin/true", ["true"], {"A": 1}),
}


@pytest.mark.skipif(not hasattr(os, "posix_spawn"), reason="no posix_spawn")
@pytest.mark.parametrize("case", sorted(_SPAWN_ARGS))
def test_posix_spawn_args_refuse_as_os_posix_spawn(case):
    # Each case is refused by os.posix_spawn before it starts anything.
    path, argv, env = _SPAWN_ARGS[case]
    if env is None:
        env = os.environ
    want = outcome(os.posix_spawn, path, argv, env)
    assert want[0] == "raised"
    got = outcome(_compat.posix_spawn_args, path, argv, env)
    assert got == want


def test_posix_spawn_args_convert():
    exe, argv, envp = _compat.posix_spawn_args(
        pathlib.Path("/bin/true"), ["true", b"x", pathlib.Path("y")],
        {"=A": "1", b"B": b"2"})
    assert (exe, argv, envp) == (b"/bin/true", [b"true", b"x", b"y"],
                                 [b"=A=1", b"B=2"])
    assert _compat.posix_spawn_args("/bin/true", ["true"], None)[2] is None


# ---------------------------------------------------------------------------
# communicate()'s input


def test_input_check_is_this_subprocess_s():
    # A non-contiguous memoryview through the select loop (two pipes).
    view = memoryview(b"abcd")[::2]
    want = outcome(lambda: subprocess.run(["cat"], input=view,
                                          capture_output=True))
    got = outcome(lambda: fastspawn.run(["cat"], input=view,
                                        capture_output=True))
    assert got == want
    checked = outcome(_compat.check_input, view)
    assert (checked[0] == "raised") == _compat._CASTS_INPUT


# ---------------------------------------------------------------------------
# free-threaded builds (3.13t, 3.14t: CI's matrix; Debian ships none)

FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))


@pytest.mark.c_extension
@pytest.mark.skipif(not FREE_THREADED,
                    reason="not a free-threaded build: its GIL is always on")
@pytest.mark.parametrize("gil", [None, "0"], ids=["PYTHON_GIL-unset",
                                                 "PYTHON_GIL=0"])
def test_extension_leaves_the_gil_off(gil):
    # A module without Py_mod_gil = Py_MOD_GIL_NOT_USED would turn the GIL
    # on at import, with a RuntimeWarning (an error here).
    env = dict(os.environ)
    env.pop("PYTHON_GIL", None)
    if gil is not None:
        env["PYTHON_GIL"] = gil
    code = ("import sys, fastspawn, fastspawn._spawn_c\n"
            "assert fastspawn.USE_EXTENSIONS\n"
            "print(sys._is_gil_enabled())\n")
    r = subprocess.run([sys.executable, "-W", "error::RuntimeWarning", "-c",
                        code], env=env, capture_output=True, text=True)
    assert (r.returncode, r.stdout, r.stderr) == (0, "False\n", "")

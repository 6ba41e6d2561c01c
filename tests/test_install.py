"""``fastspawn.install()`` / ``uninstall()`` and ``python -m fastspawn run``.

What is proven, not assumed: after install(), calls made through the
subprocess module (and through asyncio, and through stdlib helpers imported
before install()) really start their children through fastspawn's backend
-- a spy on ``_backend.impl.spawn`` counts them -- and uninstall() puts back
the very objects that were there.
"""
import asyncio
import gc
import json
import os
import subprocess
import textwrap

import pytest

import fastspawn
from fastspawn import _backend, _install
from fsutil import PY

NAMES = ("Popen", "run", "call", "check_call", "check_output", "getoutput",
         "getstatusoutput")


def snapshot():
    return {name: getattr(subprocess, name) for name in NAMES}


def same_objects(a, b):
    return all(a[name] is b[name] for name in NAMES)


@pytest.fixture
def pristine():
    """subprocess as it is before the test; restored (and checked) after."""
    assert not _install.installed()
    before = snapshot()
    yield before
    fastspawn.uninstall()
    broken = [n for n in NAMES if getattr(subprocess, n) is not before[n]]
    for n in broken:
        setattr(subprocess, n, before[n])
    assert not broken, "subprocess not restored: %s" % broken


class SpyImpl:
    """Stands in for the live backend module, counting spawns."""

    def __init__(self, real):
        self._real = real
        self.spawns = 0

    def __getattr__(self, name):
        return getattr(self._real, name)

    def spawn(self, *args):
        self.spawns += 1
        return self._real.spawn(*args)

    def spawn_wait(self, *args):
        self.spawns += 1
        return self._real.spawn_wait(*args)

    def spawn_capture(self, *args):
        self.spawns += 1
        return self._real.spawn_capture(*args)


@pytest.fixture
def spy(monkeypatch, backend):
    s = SpyImpl(backend)
    monkeypatch.setattr(_backend, "impl", s)
    return s


# ---------------------------------------------------------------------------
# install / uninstall


def test_install_swaps_every_name(pristine):
    fastspawn.install()
    assert _install.installed()
    for name in NAMES:
        assert getattr(subprocess, name) is getattr(fastspawn, name), name
    assert subprocess.Popen is fastspawn.Popen
    assert issubclass(subprocess.Popen, pristine["Popen"])


def test_install_serves_the_subprocess_module(pristine, spy):
    fastspawn.install()
    n = spy.spawns
    r = subprocess.run(["sh", "-c", "echo run"], capture_output=True)
    assert (r.returncode, r.stdout) == (0, b"run\n")
    assert spy.spawns == n + 1
    assert subprocess.check_output(["echo", "co"]) == b"co\n"
    assert spy.spawns == n + 2
    with subprocess.Popen(["true"]) as p:
        assert type(p) is fastspawn.Popen
    assert p.returncode == 0
    assert spy.spawns == n + 3
    assert subprocess.call(["sh", "-c", "exit 3"]) == 3
    assert subprocess.check_call(["true"]) == 0
    assert subprocess.getoutput("echo go") == "go"
    assert subprocess.getstatusoutput("exit 4") == (4, "")
    assert spy.spawns == n + 7
    with pytest.raises(subprocess.CalledProcessError):
        subprocess.run(["false"], check=True)
    assert spy.spawns == n + 8

    fastspawn.uninstall()
    r = subprocess.run(["true"])
    with subprocess.Popen(["true"]) as p:
        assert type(p) is pristine["Popen"]
    assert spy.spawns == n + 8        # the stdlib's own machinery again


def test_install_serves_helpers_imported_before(pristine, spy):
    """``from subprocess import run`` done before install(): the stdlib
    function looks Popen up in the subprocess module, so it is served by
    fastspawn too."""
    early_run = pristine["run"]
    early_check_output = pristine["check_output"]
    early_call = pristine["call"]
    fastspawn.install()
    n = spy.spawns
    assert early_run(["echo", "x"], capture_output=True).stdout == b"x\n"
    assert early_check_output(["echo", "y"]) == b"y\n"
    assert early_call(["true"]) == 0
    assert spy.spawns == n + 3


def _asyncio_main(shell):
    async def main():
        if shell:
            proc = await asyncio.create_subprocess_shell(
                "echo from shell; echo err >&2; exit 5",
                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        else:
            proc = await asyncio.create_subprocess_exec(
                "cat", stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE)
        popen_type = type(proc._transport.get_extra_info("subprocess"))
        out, err = await proc.communicate(None if shell else b"via asyncio")
        return popen_type, out, err, proc.returncode
    return asyncio.run(main())


@pytest.mark.parametrize("shell", [False, True], ids=["exec", "shell"])
def test_install_serves_asyncio(pristine, spy, shell):
    fastspawn.install()
    n = spy.spawns
    try:
        popen_type, out, err, rc = _asyncio_main(shell)
    finally:
        gc.collect()        # the transport's Popen (and its pidfd)
    assert popen_type is fastspawn.Popen
    assert spy.spawns == n + 1
    if shell:
        assert (out, err, rc) == (b"from shell\n", b"err\n", 5)
    else:
        assert (out, err, rc) == (b"via asyncio", b"", 0)

    fastspawn.uninstall()
    try:
        popen_type, out, _, rc = _asyncio_main(shell)
    finally:
        gc.collect()
    assert popen_type is pristine["Popen"]
    assert spy.spawns == n + 1


def test_install_is_idempotent(pristine):
    fastspawn.install()
    first = snapshot()
    fastspawn.install()
    assert same_objects(snapshot(), first)
    assert _install.installed()
    fastspawn.uninstall()          # one uninstall undoes both installs
    assert same_objects(snapshot(), pristine)
    assert not _install.installed()


def test_uninstall_is_idempotent(pristine):
    fastspawn.uninstall()          # never installed: nothing changes
    assert same_objects(snapshot(), pristine)
    fastspawn.install()
    fastspawn.uninstall()
    fastspawn.uninstall()
    assert same_objects(snapshot(), pristine)
    for _ in range(3):             # cycles
        fastspawn.install()
        assert subprocess.Popen is fastspawn.Popen
        fastspawn.uninstall()
        assert same_objects(snapshot(), pristine)


def test_uninstall_restores_what_was_there_not_the_stdlib(pristine):
    """Someone else patched subprocess first: uninstall() puts back *their*
    objects (identity), not the stdlib's."""
    class TheirPopen(pristine["Popen"]):
        pass

    def their_run(*a, **k):
        return "theirs"

    subprocess.Popen = TheirPopen
    subprocess.run = their_run
    try:
        theirs = snapshot()
        fastspawn.install()
        assert subprocess.Popen is fastspawn.Popen
        assert subprocess.run is fastspawn.run
        fastspawn.uninstall()
        assert same_objects(snapshot(), theirs)
        assert subprocess.Popen is TheirPopen
        assert subprocess.run is their_run
    finally:
        fastspawn.uninstall()
        subprocess.Popen = pristine["Popen"]
        subprocess.run = pristine["run"]


def test_results_unchanged_by_install(pristine):
    """The same calls through subprocess give the same results installed
    and not installed."""
    def calls():
        out = []
        r = subprocess.run(["sh", "-c", "printf 'a\\r\\nb'; exit 3"],
                           capture_output=True, text=True)
        out.append((r.args, r.returncode, r.stdout, r.stderr))
        try:
            subprocess.check_output(["sh", "-c", "echo x; exit 2"])
        except subprocess.CalledProcessError as e:
            out.append((type(e), str(e), e.output))
        try:
            subprocess.run(["nonexistent_prog_fs_xyz"])
        except OSError as e:
            out.append((type(e), str(e), e.filename))
        out.append(subprocess.getstatusoutput("echo s; exit 1"))
        return out

    plain = calls()
    fastspawn.install()
    assert calls() == plain


# ---------------------------------------------------------------------------
# python -m fastspawn run


SCRIPT = textwrap.dedent(r'''
    import json, subprocess, sys
    import fastspawn
    from fastspawn import _backend

    class Spy:
        def __init__(self, real):
            self.real, self.n = real, 0
        def __getattr__(self, name):
            return getattr(self.real, name)
        def spawn(self, *a):
            self.n += 1
            return self.real.spawn(*a)
        def spawn_wait(self, *a):
            self.n += 1
            return self.real.spawn_wait(*a)
        def spawn_capture(self, *a):
            self.n += 1
            return self.real.spawn_capture(*a)

    spy = _backend.impl = Spy(_backend.impl)
    r = subprocess.run(["sh", "-c", "echo child says hi"],
                       capture_output=True, text=True)
    with subprocess.Popen(["true"]) as p:
        pass
    print(json.dumps({
        "popen_is_fastspawn": subprocess.Popen is fastspawn.Popen,
        "run_is_fastspawn": subprocess.run is fastspawn.run,
        "popen_type": type(p).__module__ + "." + type(p).__name__,
        "spawned_by_fastspawn": spy.n,
        "child": r.stdout,
        "name": __name__,
        "argv": sys.argv[1:],
        "argv0": sys.argv[0],
        "file": __file__,
        "path0": sys.path[0],
        "stdin_isatty": sys.stdin.isatty(),
    }), flush=True)
    how = sys.argv[1]
    if how == "raise":
        raise RuntimeError("boom")
    if how == "msg":
        sys.exit("bye")
    if how != "none":
        sys.exit(int(how))
''')

SERVED = {"popen_is_fastspawn": True, "run_is_fastspawn": True,
          "popen_type": "fastspawn._popen.Popen", "spawned_by_fastspawn": 2}
NOT_SERVED = {"popen_is_fastspawn": False, "run_is_fastspawn": False,
              "popen_type": "subprocess.Popen", "spawned_by_fastspawn": 0}


def child_env(backend, *extra_path):
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(os.path.abspath(fastspawn.__file__)))
    env["PYTHONPATH"] = os.pathsep.join([src] + list(extra_path))
    if backend is _backend.py_impl:
        env["FASTSPAWN_NO_EXTENSIONS"] = "1"
    else:
        env.pop("FASTSPAWN_NO_EXTENSIONS", None)
    return env


def launch(argv, env, cwd):
    r = subprocess.run([PY] + argv, env=env, cwd=cwd, capture_output=True,
                       text=True, stdin=subprocess.DEVNULL, timeout=60)
    try:
        report = json.loads(r.stdout.splitlines()[0])
    except (IndexError, ValueError):
        report = None
    return r.returncode, report, r.stderr


def split(report):
    served = {k: report.pop(k) for k in list(SERVED)}
    return served, report


# (exit status wanted, relative script path?)
CLI_CASES = [("0", False), ("7", False), ("none", False), ("raise", False),
             ("msg", False), ("0", True)]


@pytest.mark.parametrize("how,relative", CLI_CASES,
                         ids=["%s-%s" % (h, "rel" if r else "abs")
                              for h, r in CLI_CASES])
def test_cli_run_script(tmp_path, backend, how, relative):
    """``python -m fastspawn run prog.py ARGS`` against ``python prog.py
    ARGS``: the same status, argv, __name__, __file__, sys.path[0] and last
    stderr line; only the first is served by fastspawn."""
    script = tmp_path / "prog.py"
    script.write_text(SCRIPT)
    path = "prog.py" if relative else str(script)
    env = child_env(backend)
    args = [how, "two words", "--flag", "-m", "\u00e9"]

    d_rc, d_report, d_err = launch([path] + args, env, str(tmp_path))
    f_rc, f_report, f_err = launch(["-m", "fastspawn", "run", path] + args,
                                   env, str(tmp_path))
    assert f_report is not None, f_err
    d_served, d_rest = split(d_report)
    f_served, f_rest = split(f_report)
    assert d_served == NOT_SERVED
    assert f_served == SERVED
    assert f_rest["argv"] == args
    assert f_rest["child"] == "child says hi\n"
    # Everything else as if the script had been run directly.
    assert f_rest == d_rest
    assert f_rc == d_rc
    assert f_rc == {"0": 0, "7": 7, "none": 0, "raise": 1, "msg": 1}[how]
    assert f_err.splitlines()[-1:] == d_err.splitlines()[-1:]


@pytest.mark.parametrize("how", ["0", "7", "raise"])
def test_cli_run_module(tmp_path, backend, how):
    (tmp_path / "fs_cli_mod.py").write_text(SCRIPT)
    env = child_env(backend, str(tmp_path))
    args = [how, "x y", "--z"]
    cwd = str(tmp_path / "elsewhere")
    os.mkdir(cwd)

    d_rc, d_report, d_err = launch(["-m", "fs_cli_mod"] + args, env, cwd)
    f_rc, f_report, f_err = launch(
        ["-m", "fastspawn", "run", "-m", "fs_cli_mod"] + args, env, cwd)
    assert f_report is not None, f_err
    d_served, d_rest = split(d_report)
    f_served, f_rest = split(f_report)
    assert d_served == NOT_SERVED
    assert f_served == SERVED
    assert f_rest["argv"] == args
    assert f_rest["name"] == "__main__"
    assert f_rest["argv0"] == str(tmp_path / "fs_cli_mod.py")
    assert f_rest == d_rest
    assert f_rc == d_rc == {"0": 0, "7": 7, "none": 0, "raise": 1}[how]
    assert f_err.splitlines()[-1:] == d_err.splitlines()[-1:]


def test_cli_usage_errors(tmp_path, backend):
    env = child_env(backend)
    rc, _, _ = launch(["-m", "fastspawn", "run"], env, str(tmp_path))
    assert rc == 2
    rc, _, err = launch(["-m", "fastspawn", "run", "-m"], env, str(tmp_path))
    assert rc == 2 and "-m" in err
    rc, _, _ = launch(["-m", "fastspawn", "run", "--help"], env,
                      str(tmp_path))
    assert rc == 0

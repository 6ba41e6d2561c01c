"""Static typing: for a type checker, fastspawn is subprocess (and os).

mypy runs on snippets of *user* code against the installed fastspawn
(from a temporary directory, with a config file of its own, so neither
the source tree nor the project's [tool.mypy] is involved):

* ``GOOD`` must pass ``mypy --strict``; ``assert_type`` pins the inferred
  types (``fastspawn.run(..., capture_output=True)`` is a
  ``CompletedProcess[bytes]``, ``text=True`` gives ``str``, ``Popen[bytes]``
  vs ``Popen[str]``, ...);
* every line of ``BAD`` marked ``# E`` must be an error, and no other line;
* every name in ``fastspawn.__all__`` must be known to mypy;
* stubtest checks the hand-written stubs (_subprocess_api.pyi,
  _osfuncs.pyi, _spawn_c.pyi) against the runtime modules.

Skipped, with the reason, where mypy is not installed or does not run (it
is in the ``test`` extra on CPython; not on PyPy, where it does not run).
"""
import importlib.util
import os
import re
import subprocess
import sys
import textwrap

import pytest

import fastspawn


def _mypy_unusable():
    """Why mypy cannot be used here, or None."""
    if importlib.util.find_spec("mypy") is None:
        return ("mypy is not installed (the test extra has it on CPython: "
                "python -m pip install 'fastspawn[test]')")
    r = subprocess.run([sys.executable, "-m", "mypy", "--version"],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True)
    if r.returncode != 0:
        last = (r.stdout.strip().splitlines() or ["?"])[-1]
        return "mypy is installed but does not run here: " + last
    return None


MYPY_UNUSABLE = _mypy_unusable()
pytestmark = pytest.mark.skipif(MYPY_UNUSABLE is not None,
                                reason=MYPY_UNUSABLE or "")

GOOD = '''
import os
import resource
import subprocess
from typing import Any, List, Optional, Tuple

from typing_extensions import assert_type

import fastspawn
from fastspawn import DEVNULL, PIPE, STDOUT

# run(): subprocess's overloads, fastspawn's CompletedProcess
r: "subprocess.CompletedProcess[bytes]" = fastspawn.run(["true"], capture_output=True)
assert_type(fastspawn.run(["true"], capture_output=True),
            fastspawn.CompletedProcess[bytes])
assert_type(fastspawn.run(["cat"], input=b"x", stdout=PIPE, stderr=STDOUT),
            fastspawn.CompletedProcess[bytes])
assert_type(fastspawn.run(["cat"], input="x", text=True, capture_output=True),
            fastspawn.CompletedProcess[str])
assert_type(fastspawn.run("true", shell=True, universal_newlines=True),
            fastspawn.CompletedProcess[str])
assert_type(fastspawn.run(["true"], encoding="utf-8", cwd="/", env={"A": "b"},
                          timeout=3, check=True, stdin=DEVNULL),
            fastspawn.CompletedProcess[str])
assert_type(fastspawn.run(["true"], errors="replace"),
            fastspawn.CompletedProcess[str])
assert_type(fastspawn.run(["true"], start_new_session=True, pass_fds=(3,),
                          umask=0o22, close_fds=True, restore_signals=False),
            fastspawn.CompletedProcess[bytes])
flag: bool = bool(os.environ.get("X"))
assert_type(fastspawn.run(["true"], text=flag), fastspawn.CompletedProcess[Any])
s: "subprocess.CompletedProcess[str]" = fastspawn.run(["true"], text=True)
out: bytes = fastspawn.run(["true"], capture_output=True).stdout
rc: int = fastspawn.run(["true"]).returncode
assert_type(fastspawn.run(["true"]).rusage, Optional[resource.struct_rusage])
assert_type(fastspawn.run(["true"]).duration, Optional[float])
fastspawn.run(["true"]).check_returncode()

# the other helpers are subprocess's own
assert_type(fastspawn.check_output(["true"]), bytes)
assert_type(fastspawn.check_output(["true"], text=True), str)
assert_type(fastspawn.call(["true"]), int)
assert_type(fastspawn.check_call(["true"]), int)
assert_type(fastspawn.getoutput("true"), str)
assert_type(fastspawn.getstatusoutput("true"), Tuple[int, str])
assert_type(fastspawn.list2cmdline(["a", "b c"]), str)

# Popen[bytes] / Popen[str], a subprocess.Popen
p = fastspawn.Popen(["cat"], stdin=PIPE, stdout=PIPE)
assert_type(p, fastspawn.Popen[bytes])
sp: "subprocess.Popen[bytes]" = p
data, _ = p.communicate(b"hello")
assert_type(p.wait(timeout=1.5), int)
assert_type(p.pid, int)
assert_type(p.rusage, Optional[resource.struct_rusage])
assert_type(p.duration, Optional[float])
with fastspawn.Popen(["cat"], stdout=PIPE, text=True) as q:
    assert_type(q, fastspawn.Popen[str])
    assert q.stdout is not None
    line: str = q.stdout.readline()
assert_type(fastspawn.Popen(["cat"], encoding="utf-8"), fastspawn.Popen[str])
assert_type(fastspawn.Popen("ls", shell=True, bufsize=0, cwd=b"/"),
            fastspawn.Popen[bytes])

# exceptions and constants are subprocess's
try:
    fastspawn.run(["false"], check=True, timeout=1)
except fastspawn.CalledProcessError as e:
    assert_type(e, subprocess.CalledProcessError)
    code: int = e.returncode
except fastspawn.TimeoutExpired as t:
    assert_type(t, subprocess.TimeoutExpired)
except fastspawn.SubprocessError:
    pass
assert_type(fastspawn.PIPE, int)

# os-style API
assert_type(fastspawn.spawnv(fastspawn.P_WAIT, "/bin/true", ["true"]), int)
assert_type(fastspawn.spawnvpe(fastspawn.P_NOWAIT, "env", ("env",), {"A": "1"}), int)
assert_type(fastspawn.spawnlp(fastspawn.P_WAIT, "ls", "ls", "-l"), int)
assert_type(fastspawn.spawnle(os.P_WAIT, "/bin/sh", "sh", "-c", "x", {"A": "1"}), int)
assert_type(fastspawn.system("true"), int)
with fastspawn.popen("ls") as f:
    names: List[str] = f.read().split()

# package attributes
assert_type(fastspawn.USE_EXTENSIONS, bool)
assert_type(fastspawn.BUILD_WARNING, Optional[str])
assert_type(fastspawn.__version__, str)
assert_type(fastspawn.install(), None)
assert_type(fastspawn.uninstall(), None)
'''

BAD = '''
import fastspawn

a: int = fastspawn.run(["true"])  # E
b: bytes = fastspawn.run(["true"], text=True).stdout  # E
c: str = fastspawn.check_output(["true"])  # E
fastspawn.run(["true"], no_such_argument=1)  # E
fastspawn.run(["true"], pass_fds="3")  # E
fastspawn.Popen(["true"], text=True).communicate(input=b"x")  # E
fastspawn.spawnv(fastspawn.P_WAIT, "/bin/true", "true")  # E
fastspawn.system(["true"])  # E
d: str = fastspawn.run(["true"]).rusage  # E
ok = fastspawn.run(["true"])
'''


def _mypy(tmp, name, source, *args):
    """Run mypy on ``source`` saved as ``name`` in ``tmp``; (rc, lines)."""
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(textwrap.dedent(source))
    config = os.path.join(tmp, "mypy.ini")
    with open(config, "w") as f:
        f.write("[mypy]\n")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", config,
         "--cache-dir", os.path.join(tmp, ".mypy_cache"),
         "--no-error-summary", "--show-error-codes", "--hide-error-context",
         "--no-pretty", *args, name],
        cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc.returncode, proc.stdout.splitlines()


@pytest.fixture(scope="module")
def mypy_tmp(tmp_path_factory):
    return str(tmp_path_factory.mktemp("typing"))


@pytest.fixture(scope="module")
def good_result(mypy_tmp):
    return _mypy(mypy_tmp, "good.py", GOOD, "--strict")


@pytest.fixture(scope="module")
def bad_result(mypy_tmp):
    return _mypy(mypy_tmp, "bad.py", BAD, "--strict")


def test_mypy_checks_the_installed_package(mypy_tmp):
    """The fastspawn mypy sees is the installed one, with its stubs."""
    pkg = os.path.dirname(fastspawn.__file__)
    for name in ("py.typed", "_subprocess_api.pyi", "_osfuncs.pyi",
                 "_spawn_c.pyi"):
        assert os.path.isfile(os.path.join(pkg, name)), name
    rc, lines = _mypy(mypy_tmp, "where.py", "import fastspawn\n"
                      "reveal_type(fastspawn.__file__)\n")
    assert rc == 0, "\n".join(lines)


def test_user_code_is_typed_like_subprocess(good_result):
    rc, lines = good_result
    assert rc == 0 and not [ln for ln in lines if ": error:" in ln], \
        "mypy --strict on typical user code:\n" + "\n".join(lines)


def test_misuse_is_rejected(bad_result):
    rc, lines = bad_result
    src = textwrap.dedent(BAD).splitlines()
    expected = {i + 1 for i, ln in enumerate(src) if ln.endswith("# E")}
    got = set()
    for ln in lines:
        m = re.match(r"bad\.py:(\d+): error:", ln)
        if m:
            got.add(int(m.group(1)))
    assert rc == 1, "\n".join(lines)
    assert got == expected, (
        "lines mypy rejected: %s, expected: %s\n%s"
        % (sorted(got), sorted(expected), "\n".join(lines)))


def test_every_public_name_is_known(mypy_tmp):
    source = "import fastspawn\n" + "".join(
        "print(fastspawn.%s)\n" % name for name in fastspawn.__all__)
    rc, lines = _mypy(mypy_tmp, "names.py", source)
    assert rc == 0, "\n".join(lines)


# stubtest: the stubs against the runtime modules. Deliberate differences:
ALLOWLIST = """
# Popen's arguments after ``env`` are keyword-only in the stub (one overload
# per text/bytes case, like typeshed's, without the positional variants).
fastspawn\\._subprocess_api\\.Popen\\.__init__
# Inherited from subprocess.Popen; fastspawn's override takes *args.
fastspawn\\._subprocess_api\\.Popen\\.__del__
# A type alias for the spawn() result, only in the stub.
fastspawn\\._spawn_c\\.SpawnResult
# Cython classes: the constructor is __cinit__, whose signature (from the
# class's text signature) stubtest sees on __new__, the stub's on __init__;
# and extension types are disjoint bases (typing_extensions.disjoint_base).
fastspawn\\._spawn_c\\.(Communicator|RunLoop)\\.__(init|new)__
fastspawn\\._spawn_c\\.(Communicator|RunLoop)
"""


def test_stubs_match_runtime(mypy_tmp):
    modules = ["fastspawn._subprocess_api", "fastspawn._osfuncs"]
    if importlib.util.find_spec("fastspawn._spawn_c") is not None:
        modules.append("fastspawn._spawn_c")
    allow = os.path.join(mypy_tmp, "allowlist.txt")
    with open(allow, "w") as f:
        f.write(ALLOWLIST)
    config = os.path.join(mypy_tmp, "stubtest.ini")
    with open(config, "w") as f:
        # Only the stubs are under test, not the implementation modules
        # they import.
        f.write("[mypy]\n[mypy-fastspawn.*]\nignore_errors = True\n"
                "[mypy-fastspawn._subprocess_api,fastspawn._osfuncs,"
                "fastspawn._spawn_c]\nignore_errors = False\n"
                "[mypy-matplotlib.*]\nignore_missing_imports = True\n")
    proc = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "--concise",
         "--mypy-config-file", config, "--allowlist", allow,
         "--ignore-unused-allowlist", *modules],
        cwd=mypy_tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)
    assert proc.returncode == 0, proc.stdout

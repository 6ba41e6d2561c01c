"""The constants C and Python share: written once, in the C headers;
_constants.py and _constants.pxi are generated from them and must not
drift."""
import os
import shutil
import subprocess
import sys

import pytest

import fastspawn
from fastspawn import _constants as K

PKG_DIR = os.path.dirname(os.path.abspath(fastspawn.__file__))
ROOT = os.path.dirname(os.path.dirname(PKG_DIR))
GEN = os.path.join(ROOT, "scripts", "gen_constants.py")
in_tree = pytest.mark.skipif(
    not (os.path.isfile(GEN) and os.path.isdir(os.path.join(ROOT, "csrc"))),
    reason="needs the source tree (csrc/, scripts/)")

# ---------------------------------------------------------------------------
# constants: one source (the headers), generated, checked


@in_tree
def test_constants_are_generated_from_the_headers():
    r = subprocess.run([sys.executable, GEN, "--check"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stdout + r.stderr


@in_tree
def test_constants_drift_is_caught(tmp_path):
    """A header value changed without regenerating: --check fails."""
    for d in ("csrc", "scripts", os.path.join("src", "fastspawn")):
        os.makedirs(tmp_path / d)
    shutil.copy(GEN, tmp_path / "scripts")
    for h in ("fs_spawn.h", "fs_loop.h"):
        shutil.copy(os.path.join(ROOT, "csrc", h), tmp_path / "csrc")
    for f in ("_constants.py", "_constants.pxi"):
        shutil.copy(os.path.join(PKG_DIR, f), tmp_path / "src" / "fastspawn")
    gen = str(tmp_path / "scripts" / "gen_constants.py")
    assert subprocess.run([sys.executable, gen, "--check"],
                          capture_output=True).returncode == 0
    loop_h = tmp_path / "csrc" / "fs_loop.h"
    text = loop_h.read_text()
    assert "#define FS_LOOP_NOTIFY   7" in text
    loop_h.write_text(text.replace("#define FS_LOOP_NOTIFY   7",
                                   "#define FS_LOOP_NOTIFY   8"))
    r = subprocess.run([sys.executable, gen, "--check"], capture_output=True,
                       text=True)
    assert r.returncode == 1
    assert "+LOOP_NOTIFY = 8" in r.stdout and "_constants.py" in r.stdout


def test_constants_module_lists_what_it_defines():
    values = {n for n in vars(K) if n.isupper()}
    assert set(K.__all__) == values
    assert all(type(getattr(K, n)) is int for n in K.__all__)


@pytest.mark.c_extension
def test_c_module_refuses_stale_constants():
    """The compiled values are compared with _constants.py at import."""
    # The package without its __init__ (which would import _spawn_c
    # first), a stale _constants, then the C module.
    code = ("import importlib, importlib.util, sys, types\n"
            "sys.path[:0] = %r\n"
            "spec = importlib.util.find_spec('fastspawn')\n"
            "pkg = types.ModuleType('fastspawn')\n"
            "pkg.__path__ = list(spec.submodule_search_locations)\n"
            "sys.modules['fastspawn'] = pkg\n"
            "import fastspawn._constants as k\n"
            "k.LOOP_IDLE = 99\n"
            "try:\n"
            "    import fastspawn._spawn_c\n"
            "except ImportError as e:\n"
            "    print('refused:', e)\n" % ([p for p in sys.path if p],))
    env = dict(os.environ)
    env.pop("FASTSPAWN_NO_EXTENSIONS", None)
    r = subprocess.run([sys.executable, "-I", "-c", code], env=env,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("refused:") and "disagree" in r.stdout

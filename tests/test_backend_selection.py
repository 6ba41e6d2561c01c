"""Which backend fastspawn picks at import, checked in fresh interpreters."""
import os
import subprocess
import sys

import pytest

import fastspawn
from fastspawn import _backend
from fsutil import no_c_backend_reason

NO_EXT = "FASTSPAWN_NO_EXTENSIONS"

REPORT = """
import fastspawn, fastspawn._backend as b
rc = fastspawn.spawnv(fastspawn.P_WAIT, '/bin/true', ['true'])
print(fastspawn.USE_EXTENSIONS, b.impl is b.c_impl, b.impl is b.py_impl,
      b.c_impl is None, b.USE_EXTENSIONS, rc)
"""


def run_fresh(code, env_update=None, drop=()):
    """Run ``code`` in a fresh isolated interpreter (-I) that sees this
    process's sys.path (-I drops PYTHONPATH, so pass it explicitly)."""
    env = dict(os.environ)
    for name in drop:
        env.pop(name, None)
    env.update(env_update or {})
    prefix = "import sys; sys.path[:0] = %r\n" % ([p for p in sys.path if p],)
    return subprocess.run([sys.executable, "-I", "-c", prefix + code],
                          env=env, capture_output=True, text=True,
                          timeout=120)


def _fields(proc):
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_default_uses_c_extension():
    if no_c_backend_reason() is not None:
        pytest.skip(no_c_backend_reason())
    out = _fields(run_fresh(REPORT, drop=[NO_EXT]))
    assert out == ["True", "True", "False", "False", "True", "0"], \
        "the compiled backend must be the default"


@pytest.mark.parametrize("value", ["", "0"])
def test_env_empty_or_zero_keeps_c_extension(value):
    if no_c_backend_reason() is not None:
        pytest.skip(no_c_backend_reason())
    out = _fields(run_fresh(REPORT, env_update={NO_EXT: value}))
    assert out == ["True", "True", "False", "False", "True", "0"]


@pytest.mark.parametrize("value", ["1", "yes", "true"])
def test_env_switches_to_pure(value):
    out = _fields(run_fresh(REPORT, env_update={NO_EXT: value}))
    assert out == ["False", "False", "True", "True", "False", "0"]


def test_missing_extension_falls_back_to_pure():
    code = ("sys.modules['fastspawn._spawn_c'] = None  # import fails\n"
            + REPORT)
    out = _fields(run_fresh(code, drop=[NO_EXT]))
    assert out == ["False", "False", "True", "True", "False", "0"]


def test_non_posix_import_error():
    code = """
import os
os.name = "nt"
try:
    import fastspawn
except ImportError as e:
    print("IMPORTERROR:" + str(e))
else:
    print("IMPORTED")
"""
    proc = run_fresh(code)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.strip()
    assert out.startswith("IMPORTERROR:"), out
    msg = out[len("IMPORTERROR:"):]
    assert "POSIX" in msg or "posix" in msg
    assert "nt" in msg


def test_in_process_state_is_consistent(backend):
    assert fastspawn.USE_EXTENSIONS is _backend.USE_EXTENSIONS
    assert _backend.NO_EXTENSIONS_ENV == NO_EXT
    assert _backend.py_impl is not None
    assert _backend.impl is backend     # the fixture switched it
    if _backend.c_impl is not None:
        assert fastspawn.USE_EXTENSIONS
        assert _backend.c_impl.__name__ == "fastspawn._spawn_c"
    assert _backend.py_impl.__name__ == "fastspawn._spawn_py"


def test_backends_share_interface():
    names = {"spawn", "spawn_method", "FEATURES"}
    for mod in (_backend.c_impl, _backend.py_impl):
        if mod is None:
            continue
        assert names <= set(dir(mod)), mod

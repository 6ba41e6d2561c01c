"""Shared test infrastructure for fastspawn.

* ``backend``: every test runs once per backend ("c" = the compiled
  ``_spawn_c``, "py" = the pure ``_spawn_py``), with
  ``fastspawn._backend.impl`` pointed at it. The C backend is never skipped
  silently: if it is missing, the "c" runs fail unless
  ``FASTSPAWN_NO_EXTENSIONS`` is set.
* ``_no_leaks``: every test must leave no fd open and no child behind.

pytest settings live here (not in pyproject.toml, which is owned
elsewhere).
"""
import os
import signal
import sys

import pytest

# Helpers shared by the test modules live in tests/fsutil.py.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# libffi >= 3.4 (static trampolines; e.g. Debian sid) opens its own shared
# object when ctypes is first imported and keeps that fd for good. Tests and
# the pure backend (its C environ view) import ctypes on first use: import
# it before any leak check counts fds.
import ctypes  # noqa: E402,F401

from fastspawn import _backend  # noqa: E402
from fsfault import build_echo, children, open_fds  # noqa: E402
from fsutil import no_c_backend_reason  # noqa: E402

NO_EXT_ENV = "FASTSPAWN_NO_EXTENSIONS"


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "c_extension: only meaningful for the compiled backend "
        "(skipped for the pure one)")
    config.addinivalue_line(
        "markers",
        "stress: the full stress run (minutes); deselected unless "
        "FASTSPAWN_STRESS=1 or -m selects it")
    config.addinivalue_line(
        "markers",
        "dispositions: checks the child's exact signal dispositions")


def pytest_collection_modifyitems(config, items):
    # The full stress run only on request: FASTSPAWN_STRESS=1, or a -m
    # expression that names it (e.g. -m stress).
    if (os.environ.get("FASTSPAWN_STRESS", "") not in ("", "0")
            or "stress" in (config.getoption("markexpr") or "")):
        return
    keep = [i for i in items if i.get_closest_marker("stress") is None]
    if len(keep) != len(items):
        config.hook.pytest_deselected(
            items=[i for i in items if i.get_closest_marker("stress")])
        items[:] = keep


# ---------------------------------------------------------------------------
# backend selection


@pytest.fixture(autouse=True, params=["c", "py"], ids=["c", "py"])
def backend(request, monkeypatch):
    # In JUnit XML reports (scripts/test-pythons.sh counts per backend).
    request.node.user_properties.append(("backend", request.param))
    if request.param == "c":
        mod = _backend.c_impl
        if mod is None:
            reason = no_c_backend_reason()
            if reason is not None:
                pytest.skip(reason)
            pytest.fail("C extension not built/importable "
                        "(fastspawn._backend.c_impl is None and %s is not set)"
                        % NO_EXT_ENV, pytrace=False)
    else:
        if request.node.get_closest_marker("c_extension") is not None:
            pytest.skip("test only applies to the compiled backend")
        mod = _backend.py_impl
    monkeypatch.setattr(_backend, "impl", mod)
    yield mod


# ---------------------------------------------------------------------------
# leak checks


def _fd_desc(fd):
    try:
        return "%d -> %s" % (fd, os.readlink("/proc/self/fd/%d" % fd))
    except OSError:
        return str(fd)


def _reap_all():
    """Reap every child; kill the running ones first. Returns a report."""
    found = []
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return found
        if pid == 0:
            kids = [pid for pid, _ in children()]
            found.append("running children %r (killed)" % (kids,))
            for k in kids:
                try:
                    os.kill(k, signal.SIGKILL)
                except OSError:
                    pass
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                return found
        found.append("unreaped child %d (status %#x)" % (pid, status))


@pytest.fixture(autouse=True)
def _no_leaks():
    before = open_fds()
    yield
    leaked_children = _reap_all()
    after = open_fds()
    leaked = sorted(after - before)
    descs = [_fd_desc(fd) for fd in leaked]
    for fd in leaked:
        try:
            os.close(fd)
        except OSError:
            pass
    problems = []
    if leaked:
        problems.append("leaked fds: %s" % ", ".join(descs))
    if leaked_children:
        problems.append("; ".join(leaked_children))
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def echo(tmp_path_factory):
    """A tiny C program that reports its argv and environment exactly
    (fsfault.build_echo), built once per module that asks for it."""
    exe = build_echo(str(tmp_path_factory.mktemp("echo")))
    if exe is None:
        pytest.skip("no C compiler for the echo program")
    return exe

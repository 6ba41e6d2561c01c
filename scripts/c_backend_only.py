"""pytest plugin for scripts/sanitize.sh: keep only the tests that run on
the compiled backend (the ``backend`` fixture's "c" parameter, and tests
that do not use it), and skip what cannot work under a sanitizer.

Load with ``-p c_backend_only`` and this directory on PYTHONPATH."""
import os

import pytest


def _under_asan():
    try:
        with open("/proc/self/maps") as f:
            return "libasan" in f.read()
    except OSError:
        return False


UNDER_ASAN = _under_asan()
# Tests whose child runs under RLIMIT_AS: ASan's shadow memory needs far
# more address space than any such limit leaves.
_ASAN_INCOMPATIBLE = ("test_memory_exhaustion_while_capturing",
                      "test_timeout_with_endless_output")


def pytest_configure(config):
    if UNDER_ASAN:
        # Children inherit LD_PRELOAD (Python children that load the
        # extension need it). Let them die of their signals as usual
        # instead of printing ASan's SEGV report: this process has read
        # its own options already and keeps its handlers.
        os.environ["ASAN_OPTIONS"] = (
            os.environ.get("ASAN_OPTIONS", "")
            + ":handle_segv=0:handle_sigbus=0:handle_sigfpe=0").lstrip(":")


def pytest_collection_modifyitems(config, items):
    keep, drop = [], []
    for item in items:
        cs = getattr(item, "callspec", None)
        if cs is not None and cs.params.get("backend") == "py":
            drop.append(item)
        else:
            keep.append(item)
            if UNDER_ASAN and item.originalname in _ASAN_INCOMPATIBLE:
                item.add_marker(pytest.mark.skip(
                    reason="RLIMIT_AS and ASan's shadow memory exclude "
                           "each other"))
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_report_header(config):
    from fastspawn import _backend
    return ["fastspawn C backend only: %s (ASan %s)" % (
        getattr(_backend.c_impl, "__file__", None),
        "loaded" if UNDER_ASAN else "not loaded")]

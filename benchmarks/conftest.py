"""Shared fixtures for the benchmarks: contenders to compare side by side."""
import contextlib
import os

import pytest

import fastspawn
from fastspawn import _backend


@contextlib.contextmanager
def use_backend(name):
    """Make ``name`` ("c" or "py") the live backend for the block."""
    impl = _backend.c_impl if name == "c" else _backend.py_impl
    if impl is None:
        pytest.skip("C backend not built")
    saved = _backend.impl
    _backend.impl = impl
    try:
        yield
    finally:
        _backend.impl = saved


@pytest.fixture(params=["c", "py"])
def fastspawn_backend(request):
    with use_backend(request.param):
        yield request.param


def pytest_report_header(config):
    return (f"fastspawn {fastspawn.__version__}, C backend built: "
            f"{_backend.c_impl is not None}, cpus: {os.cpu_count()}")

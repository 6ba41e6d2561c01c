"""The installed distribution: metadata, typing files, and the packaging
configuration agreeing with itself (supported Pythons, wheel builds).

The sdist/wheel round trip itself is scripts/check-dist.sh."""
import os
import re
import sys

import pytest

import fastspawn

if sys.version_info >= (3, 10):
    from importlib import metadata
else:  # pragma: no cover - 3.9
    import importlib.metadata as metadata

SUPPORTED = ["3.9", "3.10", "3.11", "3.12", "3.13", "3.14"]
PYPROJECT = os.path.join(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))), "pyproject.toml")


@pytest.fixture(scope="module")
def meta():
    try:
        return metadata.metadata("fastspawn")
    except metadata.PackageNotFoundError:
        pytest.skip("fastspawn is not installed (imported from a path)")


def test_version_matches_metadata(meta):
    assert meta["Version"] == fastspawn.__version__


def test_core_metadata(meta):
    assert meta["Name"] == "fastspawn"
    assert meta["Requires-Python"] == ">=3.9"
    assert meta["Summary"]
    assert meta["Description-Content-Type"] == "text/markdown"
    assert "fastspawn" in (meta["Description"] or meta.get_payload())
    # PEP 639 (metadata 2.4) or the older License field.
    assert "MIT" in (meta.get("License-Expression") or meta.get("License") or "")
    classifiers = meta.get_all("Classifier")
    for v in SUPPORTED:
        assert "Programming Language :: Python :: %s" % v in classifiers
    for c in ("Operating System :: POSIX :: Linux", "Operating System :: MacOS",
              "Typing :: Typed"):
        assert c in classifiers
    assert meta.get_all("Project-URL")


def test_extras(meta):
    extras = set(meta.get_all("Provides-Extra"))
    assert {"test", "bench", "plot"} <= extras
    reqs = meta.get_all("Requires-Dist")

    def extra(name):
        return [r for r in reqs if re.search(r"extra\s*==\s*['\"]%s['\"]" % name, r)]
    assert any(r.startswith("mypy") for r in extra("test"))
    assert any(r.startswith("pytest") for r in extra("test"))
    assert any(r.startswith("matplotlib") for r in extra("plot"))


def test_license_file_is_installed(meta):
    files = metadata.distribution("fastspawn").files or []
    assert any(os.path.basename(str(f)) == "LICENSE" for f in files), files


def test_typing_files_are_installed():
    pkg = os.path.dirname(os.path.abspath(fastspawn.__file__))
    for name in ("py.typed", "_subprocess_api.pyi", "_osfuncs.pyi",
                 "_spawn_c.pyi"):
        assert os.path.isfile(os.path.join(pkg, name)), name


@pytest.fixture(scope="module")
def pyproject():
    if not os.path.isfile(PYPROJECT):
        pytest.skip("no pyproject.toml next to the tests")
    try:
        import tomllib
    except ImportError:
        try:
            import tomli as tomllib
        except ImportError:
            pytest.skip("no TOML parser (tomllib is 3.11+)")
    with open(PYPROJECT, "rb") as f:
        return tomllib.load(f)


def test_wheel_builds_cover_the_supported_pythons(pyproject):
    cibw = pyproject["tool"]["cibuildwheel"]
    builds = cibw["build"]
    assert builds == ["cp%s-*" % v.replace(".", "") for v in SUPPORTED]
    classifiers = pyproject["project"]["classifiers"]
    listed = [c.rsplit(" :: ", 1)[1] for c in classifiers
              if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)]
    assert listed == SUPPORTED
    # A wheel without the extension must never ship.
    assert cibw["environment"]["FASTSPAWN_REQUIRE_EXTENSIONS"] == "1"
    assert "pp*" in cibw["skip"]
    assert cibw["linux"]["archs"] == ["x86_64", "aarch64"]
    assert cibw["macos"]["archs"] == ["x86_64", "arm64"]

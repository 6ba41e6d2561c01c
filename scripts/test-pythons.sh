#!/usr/bin/env bash
# The suite on other CPythons, each in a Debian chroot that has it:
#
#   bullseye  CPython 3.9   glibc 2.31 (no addclosefrom_np, old posix_spawn)
#   trixie    CPython 3.13  glibc 2.41
#   sid       CPython 3.14  (Debian's newest)
#
#   sudo scripts/test-pythons.sh                       all three, whole suite
#   sudo scripts/test-pythons.sh trixie sid            some of them
#   sudo scripts/test-pythons.sh trixie -- -x tests/test_core.py
#                                                      pytest arguments
#   sudo scripts/test-pythons.sh --c-only trixie -- -q  the C backend's runs
#                                                      only (scripts/c_backend_only.py)
#
# For each suite: debootstrap a minimal chroot with that Python, its headers,
# venv and gcc (once; kept for the next run), copy the checkout in (tracked
# and untracked files, no build artefacts), make a fresh venv there,
# `pip install ".[test]"` with FASTSPAWN_REQUIRE_EXTENSIONS=1 (a failed C
# build is fatal), check the C backend is the one imported, and run the
# suite (both backends, through the suite's fixture). Then one summary line
# per Python: passed/failed/errors/skipped for each backend, from the
# suite's JUnit XML. Exit status: 0 when every run passed.
#
# Needs root (debootstrap, chroot, mounts) and Debian's package archive.
# pip inside the chroot uses this machine's pip configuration and CA
# certificates (copied in at every run). Environment:
#   FASTSPAWN_CHROOTS  where the chroots live (default /var/tmp/fastspawn-chroots;
#                      one directory per suite)
#   FASTSPAWN_CHROOT_WORK  the work directory inside each chroot
#                      (default /fastspawn; separate ones let several
#                      checkouts share the chroots)
#   DEBIAN_MIRROR      default http://deb.debian.org/debian
# /proc and /dev are mounted in a chroot for its run and unmounted after
# (unless they were mounted already).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

base=${FASTSPAWN_CHROOTS:-/var/tmp/fastspawn-chroots}
work=${FASTSPAWN_CHROOT_WORK:-/fastspawn}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

suites=()
plugin=()
if [ "${1:-}" = "--c-only" ]; then
    # The pure backend's runs deselected: PYTHONPATH=scripts in the chroot.
    plugin=(-p c_backend_only)
    shift
fi
while [ $# -gt 0 ] && [ "$1" != "--" ]; do
    suites+=("$1"); shift
done
[ $# -gt 0 ] && shift        # the "--"
pytest_args=("$@")
[ ${#suites[@]} -gt 0 ] || suites=(bullseye trixie sid)

if [ "$(id -u)" != 0 ]; then
    echo "$0: needs root (debootstrap, chroot)" >&2
    exit 2
fi

# The Python and the packages of each suite. bullseye's distutils is
# python3-distutils (there is no python3.9-distutils); pip's build of the
# sdist needs it there for the venv's ensurepip.
python_of() {
    case $1 in
        bullseye) echo python3.9 ;;
        trixie) echo python3.13 ;;
        sid) echo python3 ;;
        *) echo "$0: unknown suite $1 (bullseye, trixie, sid)" >&2; return 2 ;;
    esac
}
packages_of() {
    local py
    py=$(python_of "$1")
    case $1 in
        bullseye) echo "$py,$py-dev,$py-venv,python3-distutils,gcc,libc6-dev" ;;
        *) echo "$py,$py-dev,$py-venv,gcc,libc6-dev" ;;
    esac
}

make_chroot() {     # make_chroot SUITE DIR: debootstrap once, then refresh
    local suite=$1 dir=$2
    if [ ! -x "$dir/usr/bin/gcc" ]; then
        command -v debootstrap >/dev/null \
            || { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; } \
            || return 1
        # A half-made chroot (an earlier debootstrap that failed) first.
        rm -rf --one-file-system "$dir"
        mkdir -p "$dir"
        debootstrap --variant=minbase --include="$(packages_of "$suite")" \
            "$suite" "$dir" "$mirror" || return 1
    fi
    # Name resolution, pip's configuration and CA certificates as here
    # (after every apt-get inside: ca-certificates replaces the bundle).
    cp /etc/resolv.conf "$dir/etc/"
    [ -f /etc/pip.conf ] && cp /etc/pip.conf "$dir/etc/pip.conf"
    [ -d /etc/xdg/pip ] && mkdir -p "$dir/etc/xdg" && cp -r /etc/xdg/pip "$dir/etc/xdg/"
    [ -f /etc/ssl/certs/ca-certificates.crt ] \
        && mkdir -p "$dir/etc/ssl/certs" \
        && cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/"
    # Mounted for this run only (left alone if someone else's run did).
    mounted=()
    if ! mountpoint -q "$dir/proc"; then
        mount -t proc proc "$dir/proc" && mounted+=("$dir/proc")
    fi
    if ! mountpoint -q "$dir/dev"; then
        mount --rbind /dev "$dir/dev" && mounted+=("$dir/dev")
    fi
}

unmount() {         # what make_chroot mounted
    local m
    for m in "${mounted[@]}"; do
        umount -R "$m" || umount -lR "$m" || true
    done
    mounted=()
}
mounted=()
trap unmount EXIT

copy_checkout() {   # copy_checkout DEST: the sources, not the build
    rm -rf "$1"
    mkdir -p "$1"
    if git -C "$root" rev-parse --git-dir >/dev/null 2>&1; then
        (cd "$root" && git ls-files -co --exclude-standard -z) \
            | (cd "$root" && tar --null -T - -cf -) | tar -xf - -C "$1"
    else
        (cd "$root" && tar --exclude=./build --exclude='*.so' \
            --exclude=./src/fastspawn/_spawn_c.c --exclude='*.egg-info' \
            --exclude=__pycache__ -cf - .) | tar -xf - -C "$1"
    fi
}

# Per-backend counts from pytest's JUnit XML: the suite's backend fixture
# records each test's backend as a property (tests without one, skipped
# before any fixture ran: "none").
summarize() {       # summarize PYTHON XML
    chroot "$dir" "$1" - "$2" <<'EOF'
import sys
import xml.etree.ElementTree as ET
counts = {}
for case in ET.parse(sys.argv[1]).getroot().iter("testcase"):
    props = {p.get("name"): p.get("value")
             for p in case.iter("property")}
    kinds = {child.tag for child in case}
    if "failure" in kinds:
        kind = "failed"
    elif "error" in kinds:
        kind = "errors"
    elif "skipped" in kinds:
        kind = "skipped"
    else:
        kind = "passed"
    c = counts.setdefault(props.get("backend", "none"), dict.fromkeys(
        ("passed", "failed", "errors", "skipped"), 0))
    c[kind] += 1
print(" | ".join("%s: %s" % (b, ", ".join("%d %s" % (n, k)
                                          for k, n in c.items()))
                 for b, c in sorted(counts.items())))
EOF
}

declare -A summary
status=0
for suite in "${suites[@]}"; do
    py=$(python_of "$suite")
    dir=$base/$suite
    echo "== $suite: chroot at $dir =="
    if ! make_chroot "$suite" "$dir"; then
        summary[$suite]="$suite: making the chroot FAILED"
        status=1
        unmount
        continue
    fi
    copy_checkout "$dir$work/src"
    version=$(chroot "$dir" "$py" -c 'import sys, platform; print("%s (glibc %s)" % (platform.python_version(), platform.libc_ver()[1]))')
    echo "== $suite: $version: install =="
    start=$SECONDS
    rc=0
    chroot "$dir" /bin/bash -c '
        set -euo pipefail
        rm -rf "$1/venv"
        "$2" -m venv "$1/venv"
        cd "$1/src"
        FASTSPAWN_REQUIRE_EXTENSIONS=1 "$1/venv/bin/python" -m pip install -q \
            --no-cache-dir ".[test]"
        cd /
        "$1/venv/bin/python" -c "import fastspawn, sys; assert fastspawn.USE_EXTENSIONS, fastspawn.BUILD_WARNING; print(\"fastspawn C backend:\", fastspawn._backend.c_impl.__file__)"
    ' - "$work" "$py" || rc=$?
    if [ $rc -ne 0 ]; then
        summary[$suite]="$suite $version: install FAILED (exit $rc)"
        status=1
        unmount
        continue
    fi
    echo "== $suite: $version: the suite =="
    rm -f "$dir$work/junit.xml"
    chroot "$dir" /bin/bash -c '
        cd "$1/src" && PYTHONPATH=$1/src/scripts exec "$1/venv/bin/python" \
            -m pytest -p no:cacheprovider --junitxml="$1/junit.xml" "${@:2}"
    ' - "$work" "${plugin[@]}" "${pytest_args[@]}" || rc=$?
    counts="(no report)"
    [ -f "$dir$work/junit.xml" ] && counts=$(summarize "$work/venv/bin/python" "$work/junit.xml")
    summary[$suite]="$suite $version: pytest exit $rc, $((SECONDS - start)) s -- $counts"
    [ $rc -eq 0 ] || status=1
    unmount
done

echo "== summary =="
for suite in "${suites[@]}"; do
    echo "${summary[$suite]}"
done
exit $status

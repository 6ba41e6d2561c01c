#!/usr/bin/env bash
# The C core under sanitizers. Both passes install fastspawn into a scratch
# virtualenv (never touching the work tree's build) and run the tests on
# the compiled backend only (scripts/c_backend_only.py deselects the pure
# runs).
#
#   scripts/sanitize.sh            both passes
#   scripts/sanitize.sh asan       ASan + UBSan over every C-backend test
#   scripts/sanitize.sh valgrind   valgrind memcheck over a subset
#   scripts/sanitize.sh asan -x    extra arguments go to pytest
#
# ASan + UBSan: the extension is built with FASTSPAWN_SANITIZE=address,
# undefined (setup.py). The interpreter itself is not instrumented, so the
# ASan runtime is preloaded (LD_PRELOAD); leak detection is off (the
# interpreter's exit would drown it); any UBSan report is fatal.
#
# valgrind: memcheck with PYTHONMALLOC=malloc over the success paths of
# tests/test_core.py plus the communicate-heavy tests of test_badinput
# and test_fuzz. Failure paths are left out: valgrind runs a vfork() or
# posix_spawn() child as a fork()ed copy, so the failure a vfork child
# reports through shared memory never reaches the parent there. The pass
# fails on any memcheck error (invalid read/write, uninitialised value,
# bad free...) whose stack passes through fastspawn's code, and on any
# definitely lost block at all; the interpreter's own noise (optimized
# glibc string functions, CPython internals) is counted and shown only.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

mode=${1:-all}
[ $# -gt 0 ] && shift
case "$mode" in
    all|asan|valgrind) ;;
    *) echo "usage: $0 [all|asan|valgrind] [pytest args...]" >&2; exit 2 ;;
esac

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
py=${PYTHON:-python3}

venv_with() {   # venv_with DIR ENV...: a venv with fastspawn built so
    local dir=$1 src; shift
    "$py" -m venv "$dir"
    # Build from a fresh copy of the sources: pip builds a local directory
    # in place, and setuptools would reuse the objects of an earlier
    # (unsanitized) build in the tree's build/ -- or leave ours for the
    # next plain install.
    src="$dir.src"
    mkdir -p "$src"
    (cd "$root" && { git ls-files -z 2>/dev/null || find . -path ./build -prune -o -type f -print0; } \
        | xargs -0 cp --parents -t "$src")
    env "$@" FASTSPAWN_REQUIRE_EXTENSIONS=1 \
        "$dir/bin/python" -m pip install -q --no-cache-dir "$src[test]"
    # Import from the venv, not the tree; prove the extension is there.
    (cd "$work" && LD_PRELOAD=${PRELOAD:-} ASAN_OPTIONS=detect_leaks=0 \
        "$dir/bin/python" -c \
        'import fastspawn, sys; assert fastspawn.USE_EXTENSIONS, fastspawn.BUILD_WARNING; print("fastspawn C backend:", fastspawn._backend.c_impl.__file__)')
}

pytest_c() {    # pytest_c PYTHON ARGS...: the suite, C backend only
    local python=$1; shift
    PYTHONPATH="$root/scripts" FASTSPAWN_FUZZ_EXAMPLES=${FASTSPAWN_FUZZ_EXAMPLES:-} \
        "$python" -m pytest -p c_backend_only -p no:cacheprovider -q "$@"
}

run_asan() {
    echo "== ASan + UBSan: build =="
    local asan
    asan=$(gcc -print-file-name=libasan.so)
    [ -e "$asan" ] || { echo "libasan not found ($asan)" >&2; exit 1; }
    PRELOAD=$asan venv_with "$work/asan" FASTSPAWN_SANITIZE=address,undefined
    # The module must really be instrumented.
    # (ldd's output taken whole first: `ldd | grep -q` under pipefail fails
    # whenever grep exits before ldd has written everything -- SIGPIPE.)
    local libs
    libs=$(ldd "$work"/asan/lib/python3*/site-packages/fastspawn/_spawn_c*.so)
    grep -q libasan <<<"$libs" || { echo "extension not built with ASan" >&2; exit 1; }
    echo "== ASan + UBSan: C-backend tests =="
    # --capture=sys: a report goes to the real fd 2 (with pytest's fd-level
    # capture it would vanish with the halted process; ASan's log_path is
    # not honoured once libubsan is loaded too). Children that write to
    # an inherited stdout/stderr show up in the log as a result (~100 lines).
    LD_PRELOAD="$asan" \
    ASAN_OPTIONS=detect_leaks=0:halt_on_error=1 \
    UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
        pytest_c "$work/asan/bin/python" --capture=sys tests "$@"
    echo "ASan + UBSan: no report"
}

VALGRIND_TESTS=(
    tests/test_core.py
    tests/test_badinput.py::test_input_like_subprocess
    tests/test_badinput.py::test_expired_timeout_running_child_like_subprocess
    tests/test_badinput.py::test_nan_timeout_like_subprocess
    tests/test_badinput.py::test_undecodable_output_like_subprocess
    tests/test_fuzz.py::test_stdin_payload_roundtrip
    tests/test_fuzz.py::test_argv_env_roundtrip_popen
    tests/test_faults.py::test_child_closes_stdin_early_like_subprocess
)
# test_core's failure paths (see above) and what valgrind itself changes
# (it keeps fds of its own near the limit; it has no pidfd_open).
VALGRIND_DESELECT="not (cwd_is_a_file or cwd_missing or cwd_ok_program_missing or exec_error or exec_errors or invalid_pass_fd or invalid_std_fd or pgroup_nonexistent or want_pidfd or child_failure or threads_at_once or signal_storm)"

run_valgrind() {
    command -v valgrind >/dev/null || { echo "valgrind not installed" >&2; exit 1; }
    echo "== valgrind: build =="
    venv_with "$work/vg" CFLAGS="-O1 -g -fno-omit-frame-pointer"
    echo "== valgrind: memcheck over a subset of the C-backend tests =="
    local log="$work/valgrind.log" rc=0
    # (No wrapper between valgrind and python: valgrind stops at an exec.)
    FASTSPAWN_FUZZ_EXAMPLES=${FASTSPAWN_FUZZ_EXAMPLES:-8} PYTHONMALLOC=malloc \
    PYTHONPATH="$root/scripts" \
        valgrind --tool=memcheck --leak-check=full \
        --show-leak-kinds=definite --errors-for-leak-kinds=definite \
        --num-callers=40 --child-silent-after-fork=yes --error-limit=no \
        --log-file="$log" \
        "$work/vg/bin/python" -m pytest \
        -p c_backend_only -p no:cacheprovider -q \
        "${VALGRIND_TESTS[@]}" -k "$VALGRIND_DESELECT" "$@" || rc=$?
    grep -q "Memcheck, a memory error detector" "$log" \
        || { echo "valgrind did not run" >&2; return 1; }
    "$py" - "$log" <<'EOF' || rc=1
import re, sys
log = open(sys.argv[1], errors="replace").read().splitlines()
ours = re.compile(r"_spawn_c|fs_spawn\.c|fs_io\.c|fs_loop\.c|__pyx_|"
                  r"\bfs_[a-z_]+ \(")
blocks, cur = [], None
for line in log:
    m = re.match(r"==\d+== (.*)", line)
    if not m:
        continue
    text = m.group(1)
    if not text.strip():
        cur = None
        continue
    if text.startswith(("at 0x", "by 0x", "Address 0x", "   ")) or \
            text.lstrip().startswith(("at 0x", "by 0x")):
        if cur is not None:
            cur.append(text)
        continue
    cur = [text]
    blocks.append(cur)
kinds = re.compile(r"^(Invalid (read|write|free)|Conditional jump|Use of "
                   r"uninitialised|Syscall param|Mismatched free|Source and "
                   r"destination overlap|.*definitely lost in loss record)")
bad, noise = [], 0
for b in blocks:
    if not kinds.match(b[0]):
        continue
    if "definitely lost" in b[0] or any(ours.search(l) for l in b):
        bad.append(b)
    else:
        noise += 1
summary = [l for l in log if "ERROR SUMMARY" in l or "definitely lost:" in l]
print("valgrind:", *summary[-2:], sep="\n  ")
print("valgrind: %d error contexts in the interpreter itself (ignored)" % noise)
if bad:
    print("valgrind: %d problem(s) in fastspawn's code or definite leaks:"
          % len(bad))
    for b in bad:
        print("\n".join("    " + l for l in b[:30]))
    sys.exit(1)
print("valgrind: no invalid access, no uninitialised use, no definite leak "
      "in fastspawn's code")
EOF
    return $rc
}

case "$mode" in
    asan) run_asan "$@" ;;
    valgrind) run_valgrind "$@" ;;
    all) run_asan "$@"; run_valgrind "$@" ;;
esac

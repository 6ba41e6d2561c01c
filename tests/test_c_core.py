"""The C core below Python: tests/c/child_calls.c exercises csrc/fs_spawn.c's
child system-call layer and fs_spawn_wait() through every mechanism, built
three ways -- as shipped (raw, errno-free calls on x86-64 Linux), with
libc's wrappers instead (the build every other platform gets), and, where a
cross compiler and qemu-user are installed, for AArch64 under emulation."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fsfault import find_cc

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "tests" / "c" / "child_calls.c"
CSRC = ROOT / "csrc" / "fs_spawn.c"

pytestmark = [
    pytest.mark.c_extension,     # the C core's own test: once, as "c"
    pytest.mark.skipif(not sys.platform.startswith("linux"),
                       reason="the C test program is Linux-specific"),
    pytest.mark.skipif(not CSRC.exists(),
                       reason="needs the source tree's csrc/"),
]


AARCH64_SYSROOT = "/usr/aarch64-linux-gnu"


def _variants():
    native = pytest.param(None, [], [], id="native")
    libc = pytest.param(None, ["-DFS_NO_RAW_SYSCALLS"], [], id="libc")
    cross = shutil.which("aarch64-linux-gnu-gcc")
    qemu = shutil.which("qemu-aarch64")
    aarch64 = pytest.param(
        cross, ["-DFS_AARCH64_RAW"], ["--no-failure-reports"],
        id="aarch64-qemu",
        marks=pytest.mark.skipif(
            not (cross and qemu and os.path.isdir(AARCH64_SYSROOT)),
            reason="needs aarch64-linux-gnu-gcc and qemu-aarch64 (apt-get "
                   "install gcc-aarch64-linux-gnu qemu-user)"))
    return [native, libc, aarch64]


@pytest.mark.parametrize("compiler, defines, extra", _variants())
def test_child_calls_program(tmp_path, compiler, defines, extra):
    cc = compiler or find_cc()
    if cc is None:
        pytest.skip("no C compiler")
    exe = tmp_path / "child_calls"
    build = subprocess.run(
        [cc, "-O2", "-Wall", "-Wextra", "-Werror", *defines, "-o", str(exe),
         str(SOURCE), "-lpthread"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    assert build.returncode == 0, build.stdout.decode(errors="replace")
    cmd = [str(exe), str(tmp_path), *extra]
    if compiler is not None:        # the AArch64 build, emulated
        cmd = [shutil.which("qemu-aarch64"), "-L", AARCH64_SYSROOT, *cmd]
    run = subprocess.run(cmd, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=120)
    out = run.stdout.decode(errors="replace")
    assert run.returncode == 0 and out.rstrip().endswith("ALL OK"), out
    raw = "-DFS_NO_RAW_SYSCALLS" not in defines and (
        compiler is not None or os.uname().machine == "x86_64")
    assert ("raw system calls: yes" in out) == raw, out

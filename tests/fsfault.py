"""Helpers for the robustness suites (test_badinput, test_faults,
test_stress, test_fuzz, test_security): differential outcomes against
subprocess/os, fd and child accounting, fd-limit fault injection, running a
scenario in a separate (possibly unprivileged) interpreter, and a tiny C
program that echoes its argv and environment exactly."""
import contextlib
import errno
import fcntl
import json
import os
import resource
import shutil
import subprocess
import sys
import textwrap

PY = sys.executable


def _package_root():
    """The directory holding the fastspawn package this process imported
    (the tree's src/, or an installed site-packages): a scenario's
    interpreter must import that very one, with its built extension."""
    import fastspawn
    return os.path.dirname(os.path.dirname(os.path.abspath(
        fastspawn.__file__)))


def private_uid():
    """A uid/gid no account uses, so that RLIMIT_NPROC counts only the
    processes of the test that switched to it (65534 may be busy with
    other jobs on the machine)."""
    return 1900000000 + os.getpid() % 1000000


# ---------------------------------------------------------------------------
# accounting


# /dev/fd where there is no procfs (macOS).
_FD_DIR = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"


def open_fds():
    """The fds open in this process (without the one listdir used)."""
    fds = set()
    for name in os.listdir(_FD_DIR):
        fd = int(name)
        try:
            os.fstat(fd)
        except OSError:
            continue            # the directory fd listdir used (now closed)
        fds.add(fd)
    return fds


def children(pid=None):
    """[(pid, state letter)] of the children of ``pid`` (default: us)."""
    me = os.getpid() if pid is None else pid
    kids = []
    if not os.path.isdir("/proc/self"):
        # No procfs (macOS): ask pgrep, through the stdlib (its child is
        # reaped before we look for ours); the state is not known there.
        import subprocess
        out = subprocess.run(["pgrep", "-P", str(me)], capture_output=True,
                             text=True).stdout
        return [(int(x), "?") for x in out.split()]
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as f:
                stat = f.read()
        except OSError:
            continue
        rest = stat[stat.rfind(b")") + 2:].split()
        if int(rest[1]) == me:
            kids.append((int(name), rest[0].decode()))
    return kids


def free_fd():
    """An fd number that is certainly not open (and stays so briefly: it
    lies far above anything this process opens)."""
    fd = max(open_fds()) + 200
    while True:
        try:
            os.fstat(fd)
        except OSError:
            return fd
        fd += 1


# ---------------------------------------------------------------------------
# outcomes


def _close_streams(p):
    for f in (p.stdin, p.stdout, p.stderr):
        if f is not None:
            try:
                f.close()
            except OSError:
                pass


def describe(exc):
    """(type name, str, errno, filename) of an exception."""
    return ("raised", type(exc).__name__, str(exc),
            getattr(exc, "errno", None), getattr(exc, "filename", None))


def outcome(func, *args, **kwargs):
    """What ``func(*args, **kwargs)`` did, in a comparable form. A Popen
    that started is waited for (its streams closed): its returncode is the
    value."""
    try:
        value = func(*args, **kwargs)
    except Exception as e:
        return describe(e)
    if isinstance(value, subprocess.Popen):
        _close_streams(value)
        return ("popen", value.wait())
    if isinstance(value, subprocess.CompletedProcess):
        return ("completed", value.returncode, value.stdout, value.stderr)
    return ("returned", value)


def without_timeout_value(res):
    """An outcome() with the number in "timed out after N seconds" removed:
    on the paths that run subprocess's own code, both report the time that
    was left (wait(timeout=remaining)), which differs from call to call."""
    if res[:2] == ("raised", "TimeoutExpired"):
        head = res[2].partition(" timed out after ")[0]
        return res[:2] + (head + " timed out",) + res[3:]
    return res


# ---------------------------------------------------------------------------
# fault injection: the fd limit


# The lowest top of the fd table fds_exhausted() works with (see there).
_MIN_TOP = 64
_F_DUPFD_CLOEXEC = getattr(fcntl, "F_DUPFD_CLOEXEC", 1030)   # PyPy 3.9


@contextlib.contextmanager
def fds_exhausted(free=0):
    """Make exactly ``free`` fd numbers available: RLIMIT_NOFILE ``free``
    numbers above the highest open fd, every unused number below it filled,
    then ``free`` of those fillers closed again. Works whether the open fds
    have holes or are dense (0..N with none: the usual case under a CI
    runner, where a limit of top+1 would leave nothing to free). Restores
    everything on exit (before the caller's accounting, which itself needs
    an fd)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # Children inherit the limit. A limit near 0..N of a short fd table
    # breaks them on their own (dash saves an fd with F_DUPFD 10 for each
    # redirection: EINVAL at a limit of 10), so the fd table is made to
    # reach _MIN_TOP first; the parent still gets exactly `free` fds.
    anchor = -1
    if max(open_fds()) < _MIN_TOP:
        tmp = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        try:
            anchor = fcntl.fcntl(tmp, _F_DUPFD_CLOEXEC, _MIN_TOP)
        finally:
            os.close(tmp)
    top = max(open_fds())
    limit = top + 1 + free
    if hard != resource.RLIM_INFINITY and limit > hard:
        import pytest
        pytest.skip("RLIMIT_NOFILE hard limit %d leaves no room above fd %d"
                    % (hard, top))
    filler = []
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
        while True:
            try:
                filler.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
            except OSError as e:
                assert e.errno == errno.EMFILE, e
                break
        # Every number below the limit is taken now; free exactly `free`.
        assert len(filler) >= free, (len(filler), free, top)
        for _ in range(free):
            os.close(filler.pop())
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        for fd in filler:
            os.close(fd)
        if anchor >= 0:
            os.close(anchor)


# ---------------------------------------------------------------------------
# a scenario in another interpreter (root-only limits, setuid...)

_PRELUDE = r"""
import json, os, sys
sys.path.insert(0, %(src)r)
sys.path.insert(0, %(tests)r)
from fastspawn import _backend
_be = %(backend)r
if _be == "c":
    assert _backend.c_impl is not None
    _backend.impl = _backend.c_impl
else:
    _backend.impl = _backend.py_impl
import fastspawn
from fsfault import outcome, open_fds, children
RESULT = {}
def _jsonable(v):
    if isinstance(v, bytes):
        return {"bytes": v.hex()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, dict):
        return {k: _jsonable(x) for k, x in v.items()}
    return v
"""

_POSTLUDE = r"""
sys.stdout.write("\n@@RESULT@@" + json.dumps(_jsonable(RESULT)))
"""


def _unjson(v):
    if isinstance(v, dict):
        if set(v) == {"bytes"}:
            return bytes.fromhex(v["bytes"])
        return {k: _unjson(x) for k, x in v.items()}
    if isinstance(v, list):
        return tuple(_unjson(x) for x in v)
    return v


def run_scenario(backend_name, body, timeout=60):
    """Run ``body`` (Python source) in a fresh interpreter on the named
    backend ("c" or "py"); the body stores what it found in the dict
    RESULT (bytes, lists, tuples, dicts and scalars; lists come back as
    tuples). Uses the stdlib's subprocess, never fastspawn, to start it."""
    src = (_PRELUDE % {"src": _package_root(), "tests": os.path.dirname(
        os.path.abspath(__file__)), "backend": backend_name}
        + textwrap.dedent(body) + _POSTLUDE)
    env = dict(os.environ)
    if backend_name == "c":
        env.pop("FASTSPAWN_NO_EXTENSIONS", None)
    r = subprocess.run([PY, "-c", src], capture_output=True, timeout=timeout,
                       env=env)
    out = r.stdout.decode("utf-8", "replace")
    if r.returncode != 0 or "@@RESULT@@" not in out:
        raise AssertionError("scenario failed (exit %d):\n%s\n%s" % (
            r.returncode, out, r.stderr.decode("utf-8", "replace")))
    return _unjson(json.loads(out.rsplit("@@RESULT@@", 1)[1]))


# ---------------------------------------------------------------------------
# the echo program: argv and environ, exactly, length-prefixed

ECHO_C = r"""
#include <stdio.h>
#include <string.h>
#include <unistd.h>
extern char **environ;
static void put(char tag, const char *s) {
    size_t n = strlen(s);
    printf("%c%zu:", tag, n);
    fwrite(s, 1, n, stdout);
}
int main(int argc, char **argv) {
    int i;
    for (i = 0; i < argc; i++)
        put('A', argv[i]);
    for (i = 0; environ[i] != NULL; i++)
        put('E', environ[i]);
    return fflush(stdout) == 0 ? 0 : 1;
}
"""


def find_cc():
    """The C compiler tests build helpers with (cc, gcc, clang), or None."""
    return shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def build_echo(directory):
    """Compile ECHO_C into ``directory``; its path (str), or None when
    there is no C compiler."""
    cc = find_cc()
    if cc is None:
        return None
    src = os.path.join(directory, "fsecho.c")
    exe = os.path.join(directory, "fsecho")
    with open(src, "w") as f:
        f.write(ECHO_C)
    subprocess.run([cc, "-O1", "-o", exe, src], check=True,
                   capture_output=True)
    return exe


def parse_echo(data):
    """(argv list, environ list) of bytes from the echo program's output."""
    argv, env = [], []
    i = 0
    while i < len(data):
        tag = data[i:i + 1]
        colon = data.index(b":", i)
        n = int(data[i + 1:colon])
        item = data[colon + 1:colon + 1 + n]
        (argv if tag == b"A" else env).append(item)
        i = colon + 1 + n
    return argv, env

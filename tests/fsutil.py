"""Helpers shared by the fastspawn tests (imported by the test modules;
conftest.py puts this directory on sys.path)."""
import contextlib
import os
import sys

PY = sys.executable


def no_c_backend_reason():
    """Why this run has no C backend to test, or None when it must have
    one (its absence is then a failure, never a silent skip): disabled by
    FASTSPAWN_NO_EXTENSIONS, or an interpreter other than CPython, for
    which setup.py builds no extension."""
    if os.environ.get("FASTSPAWN_NO_EXTENSIONS", "") not in ("", "0"):
        return "C backend disabled by FASTSPAWN_NO_EXTENSIONS"
    if sys.implementation.name != "cpython":
        return ("no C extension is built for %s (the pure backend is "
                "fastspawn there)" % sys.implementation.name)
    return None


def glibc_version():
    """The running glibc's (major, minor), or None elsewhere."""
    try:
        name, _, ver = os.confstr("CS_GNU_LIBC_VERSION").partition(" ")
    except (AttributeError, ValueError, OSError):
        return None
    if name != "glibc":
        return None
    return tuple(int(x) for x in ver.split(".")[:2])


#: posix_spawn_file_actions_addclosefrom_np: glibc 2.34 (bullseye has 2.31).
HAVE_ADDCLOSEFROM = (glibc_version() or (0, 0)) >= (2, 34)


def read_all(fd):
    """Read ``fd`` to EOF, close it and return the bytes."""
    chunks = []
    try:
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
    finally:
        os.close(fd)
    return b"".join(chunks)


def write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def wait_exitcode(pid):
    """Wait for ``pid``; exit code, or -signal like os.spawn*'s P_WAIT."""
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def wait_exited(pid, limit=10.0):
    """Block until our child ``pid`` has exited, without reaping it:
    waitid(WNOWAIT), or where os has no waitid() (PyPy 3.9) the zombie
    state in /proc (Linux)."""
    import time
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if hasattr(os, "waitid"):
            if os.waitid(os.P_PID, pid,
                         os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None:
                return
        else:
            with open("/proc/%d/stat" % pid, "rb") as f:
                # "pid (comm) S ...": comm may hold spaces and parentheses.
                if f.read().rpartition(b")")[2].split()[0] in (b"Z", b"X"):
                    return
        time.sleep(0.002)
    raise AssertionError("child %d did not exit" % pid)


def make_script(path, body, mode=0o755):
    """A ``#!/bin/sh`` script at ``path`` with ``body``."""
    with open(path, "w") as f:
        f.write("#!/bin/sh\n" + body + "\n")
    os.chmod(path, mode)
    return path


@contextlib.contextmanager
def std_fds(fd0=None, fd1=None, fd2=None):
    """Temporarily make this process's fds 0/1/2 copies of the given fds
    (None: leave that one alone); everything is restored afterwards."""
    wanted = {0: fd0, 1: fd1, 2: fd2}
    saved = {}
    try:
        for target, src in wanted.items():
            if src is None:
                continue
            saved[target] = os.dup(target)
        for target, src in wanted.items():
            if src is not None:
                os.dup2(src, target, inheritable=True)
        yield
    finally:
        for target, copy in saved.items():
            os.dup2(copy, target, inheritable=True)
            os.close(copy)


def os_exec_error(func, *args):
    """What ``os.<func>(*args)`` raises, found in a forked child so that a
    call that does not raise cannot replace this process.

    Returns ``(exception class name, str(exception))`` or ``None`` when the
    call did not raise before exec."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        try:
            os.close(r)
            try:
                getattr(os, func)(*args)
            except BaseException as e:
                msg = ("%s\0%s" % (type(e).__name__, e)).encode(
                    "utf-8", "surrogateescape")
                os.write(w, msg)
        finally:
            os._exit(0)
    os.close(w)
    data = read_all(r)
    os.waitpid(pid, 0)
    if not data:
        return None
    name, msg = data.decode("utf-8", "surrogateescape").split("\0", 1)
    return name, msg


def exc_info(callable_, *args, **kwargs):
    """``(class name, str(exc))`` of what ``callable_`` raises."""
    try:
        callable_(*args, **kwargs)
    except Exception as e:
        return type(e).__name__, str(e)
    raise AssertionError("%r did not raise" % (callable_,))


def parse_env_output(data):
    """The set of lines ``/usr/bin/env`` printed (bytes)."""
    return set(data.split(b"\n")) - {b""}


# A small Python child that reports what it sees (open fds, identity of
# fds 0-2, cwd, ids, umask, argv) as JSON into the file named by argv[1].
# (Not for signals or the environment: Python changes both at startup.)
PROBE = r"""
import os, sys, json
fds = []
for name in os.listdir('/proc/self/fd'):
    fd = int(name)
    try:
        os.fstat(fd)
    except OSError:
        continue
    fds.append(fd)
ids = {}
for fd in (0, 1, 2):
    try:
        st = os.fstat(fd)
        ids[fd] = [st.st_dev, st.st_ino]
    except OSError:
        ids[fd] = None
m = os.umask(0)
info = dict(
    fds=sorted(fds), ids=ids, cwd=os.getcwd(), pid=os.getpid(),
    sid=os.getsid(0), pgid=os.getpgid(0), umask=m,
    argv=[os.fsencode(a).hex() for a in sys.argv[1:]],
)
with open(sys.argv[1], 'w') as f:
    json.dump(info, f)
"""


def probe_argv(outfile, *extra):
    """argv (bytes) running PROBE, which writes its report to ``outfile``."""
    return [os.fsencode(PY), b"-S", b"-c", PROBE.encode(),
            os.fsencode(outfile)] + [os.fsencode(a) for a in extra]


def load_probe(outfile):
    import json
    with open(outfile) as f:
        info = json.load(f)
    info["ids"] = {int(k): (tuple(v) if v else None)
                   for k, v in info["ids"].items()}
    info["argv"] = [bytes.fromhex(a) for a in info["argv"]]
    return info


def fd_id(fd):
    st = os.fstat(fd)
    return (st.st_dev, st.st_ino)


# ---------------------------------------------------------------------------
# Differential helpers: run the same thing through ``subprocess`` and
# ``fastspawn`` and compare what came out (used by test_run_*.py,
# test_popen_*.py and test_install.py).

# Exception attributes compared besides the type and str(): OSError's,
# CalledProcessError's and TimeoutExpired's.
EXC_ATTRS = ("errno", "strerror", "filename", "filename2", "cmd",
             "returncode", "output", "stdout", "stderr", "timeout")

_BIG = 4096


def digest(value):
    """``value`` with big bytes/str replaced by a short description, so
    that assertion diffs stay readable (recursing into tuples/lists/dicts)."""
    import hashlib
    if isinstance(value, (bytes, bytearray)) and len(value) > _BIG:
        return "<%s len=%d sha256=%s>" % (
            type(value).__name__, len(value),
            hashlib.sha256(value).hexdigest()[:16])
    if isinstance(value, str) and len(value) > _BIG:
        return "<str len=%d sha256=%s>" % (
            len(value), hashlib.sha256(
                value.encode("utf-8", "surrogatepass")).hexdigest()[:16])
    if isinstance(value, tuple):
        return tuple(digest(v) for v in value)
    if isinstance(value, list):
        return [digest(v) for v in value]
    if isinstance(value, dict):
        return {k: digest(v) for k, v in value.items()}
    return value


def describe_exception(exc):
    """A comparable description of an exception: class, str() and the
    attributes of EXC_ATTRS it has."""
    attrs = {}
    for name in EXC_ATTRS:
        if hasattr(exc, name):
            attrs[name] = getattr(exc, name)
    return digest({"raised": type(exc), "str": str(exc), "attrs": attrs})


def describe_value(value):
    """A comparable description of what a call returned."""
    import subprocess
    if isinstance(value, subprocess.CompletedProcess):
        # fastspawn's is a subclass (it adds rusage/duration): compare what
        # subprocess's has.
        return digest({"returned": "CompletedProcess", "args": value.args,
                       "returncode": value.returncode,
                       "stdout": value.stdout, "stderr": value.stderr,
                       "repr_prefix": repr(value)[:200]})
    return digest({"returned": type(value), "value": value})


def outcome(func, *args, **kwargs):
    """describe_value() of what ``func(*args, **kwargs)`` returns, or
    describe_exception() of what it raises."""
    try:
        value = func(*args, **kwargs)
    except Exception as e:
        return describe_exception(e)
    return describe_value(value)


def approx_timeout(desc, limit):
    """For a TimeoutExpired whose ``timeout`` is the time that was left
    (subprocess reports ``wait(timeout=remaining)`` that way): replace the
    float by whether it lies in (0, limit], in the attributes and str()."""
    import re
    if not isinstance(desc, dict) or "attrs" not in desc:
        return desc
    desc = dict(desc)
    attrs = dict(desc["attrs"])
    t = attrs.get("timeout")
    if isinstance(t, float):
        attrs["timeout"] = "in (0, %s]: %s" % (limit, 0 < t <= limit)
        desc["str"] = re.sub(r"after [-+0-9.e]+ seconds",
                             "after <=%s seconds" % limit, desc["str"])
    desc["attrs"] = attrs
    return desc


def fd_is_open(fd):
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


# glibc's internal signals (SIGCANCEL=32, SIGSETXID=33), as SigIgn bits.
GLIBC_INTERNAL_SIGNALS = (1 << 31) | (1 << 32)


def sigign_quirk(backend):
    """SigIgn bits a child of ``backend`` may have ignored on top of its
    parent's: glibc's internal signals, where the pure backend has to use
    os.posix_spawn by default (the interpreter cannot vfork: CPython < 3.10,
    PyPy) -- see README, "How it works". 0 everywhere else."""
    from fastspawn import _backend, _constants
    if backend is not _backend.py_impl:
        return 0
    if getattr(backend, "_GLIBC", None) is None:
        return 0
    method = backend.spawn_method(b"/bin/true", [b"true"], None, -1, -1, -1,
                                  (), None, 0, -1, -1, -1, -1, None)
    return GLIBC_INTERNAL_SIGNALS if method == _constants.VIA_POSIX_SPAWN else 0


def sig_masks(text):
    """{b"SigIgn": int, b"SigBlk": int, ...} from /proc/PID/status lines."""
    if isinstance(text, str):
        text = text.encode()
    return {line.split(b":")[0]: int(line.split(b":")[1], 16)
            for line in text.splitlines() if b":" in line}


def assert_same_signal_state(ours, theirs, backend):
    """Compare two children's SigIgn/SigBlk lines, allowing only the
    documented sigign_quirk() of ``backend``."""
    a, b = sig_masks(ours), sig_masks(theirs)
    quirk = sigign_quirk(backend)
    assert a.keys() == b.keys()
    for k in a:
        if k == b"SigIgn":
            assert a[k] & ~quirk == b[k] & ~quirk, (k, hex(a[k]), hex(b[k]))
        else:
            assert a[k] == b[k], (k, hex(a[k]), hex(b[k]))

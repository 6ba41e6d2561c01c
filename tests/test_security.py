"""Security hygiene, on both backends:

* shell=False never involves a shell: metacharacters reach the program
  literally and nothing they would do in a shell happens;
* close_fds=True (the default) leaks no fd of the parent into the child,
  whatever the mechanism (the child lists its own /proc/self/fd);
  non-inheritable fds never leak, even with close_fds=False;
* the child's environment is exactly what was asked: nothing added,
  nothing dropped;
* user / group / extra_groups / umask do what subprocess does as root,
  never touch the parent's (or its other threads') credentials, and fail
  cleanly (PermissionError, like subprocess) where they are not allowed --
  checked from an interpreter that dropped to an unprivileged uid.
"""
import grp
import json
import os
import subprocess
import threading

import pytest

import fastspawn
from fastspawn import _constants as K
from fastspawn._launch import launch
from fsfault import (
    PY, outcome, parse_echo, private_uid,
    run_scenario,
)
from fsutil import read_all


def _read_file(path):
    # Closed here, not by the GC (late on PyPy: a leaked fd meanwhile).
    with open(path, "rb") as f:
        return f.read()


PIPE = subprocess.PIPE
DEVNULL = subprocess.DEVNULL
ROOT = os.geteuid() == 0
root_only = pytest.mark.skipif(not ROOT, reason="needs root")


# ---------------------------------------------------------------------------
# shell=False means no shell

METACHARS = [
    "$(touch {canary})", "`touch {canary}`", "; touch {canary}",
    "| touch {canary}", "&& touch {canary}", "|| touch {canary}",
    "> {canary}", "$HOME", "${{PATH}}", "*", "?", "[a-z]", "~", "a b",
    "'quoted'", '"dq"', "\\n", "line1\nline2", "#comment", "!!", "&",
    "<(touch {canary})", "$((1+1))", "{{a,b}}", "%s", "\t",
]


@pytest.mark.parametrize("how", ["Popen", "run", "run-popen", "check_output",
                                 "spawnv", "spawnvp", "call"])
def test_shell_false_passes_metacharacters_literally(how, echo, tmp_path):
    canary = str(tmp_path / "canary")
    args = [m.format(canary=canary) for m in METACHARS]
    out_path = str(tmp_path / "out")
    if how == "Popen":
        p = fastspawn.Popen([echo] + args, stdout=PIPE)
        out = p.communicate()[0]
    elif how == "run":
        out = fastspawn.run([echo] + args, capture_output=True).stdout
    elif how == "run-popen":
        out = fastspawn.run([echo] + args, capture_output=True,
                            close_fds=True).stdout
    elif how == "check_output":
        out = fastspawn.check_output([echo] + args)
    elif how == "call":
        with open(out_path, "wb") as f:
            assert fastspawn.call([echo] + args, stdout=f) == 0
        out = _read_file(out_path)
    else:
        # os-style: the child writes to our fd 1, made a file for it
        fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        saved = os.dup(1)
        try:
            os.dup2(fd, 1)
            func = fastspawn.spawnv if how == "spawnv" else fastspawn.spawnvp
            assert func(fastspawn.P_WAIT, echo, [echo] + args) == 0
        finally:
            os.dup2(saved, 1)
            os.close(saved)
            os.close(fd)
        out = _read_file(out_path)
    argv, _ = parse_echo(out)
    assert argv == [os.fsencode(echo)] + [os.fsencode(a) for a in args]
    assert not os.path.exists(canary)


@pytest.mark.parametrize("name", ["echo; touch {canary}",
                                  "$(touch {canary})", "echo hi",
                                  "`touch {canary}`", "echo|touch {canary}"])
def test_shell_false_program_name_is_not_parsed(name, tmp_path):
    canary = str(tmp_path / "canary")
    prog = name.format(canary=canary)
    for call in (lambda: fastspawn.run([prog]),
                 lambda: fastspawn.Popen([prog]),
                 lambda: fastspawn.Popen(prog),
                 lambda: fastspawn.check_output([prog])):
        want = outcome(lambda: subprocess.Popen([prog]))
        got = outcome(call)
        assert got[:2] == ("raised", "FileNotFoundError"), got
        assert got[:5] == want[:5]
    assert not os.path.exists(canary)


def test_shell_true_is_the_only_way_to_a_shell(tmp_path):
    canary = str(tmp_path / "canary")
    assert fastspawn.run("touch %s" % canary, shell=True).returncode == 0
    assert os.path.exists(canary)


# ---------------------------------------------------------------------------
# close_fds: the child sees only what it was given

_LIST_FDS = r"""
import json, os, sys
fds = []
for name in os.listdir('/proc/self/fd'):
    try:
        os.fstat(int(name))
    except OSError:
        continue           # the listing's own fd
    fds.append(int(name))
sys.stdout.write(json.dumps(sorted(fds)))
"""


@pytest.fixture
def bait():
    """Inheritable and non-inheritable fds at low and high numbers, and the
    set of them that is inheritable."""
    opened = []
    r, w = os.pipe()
    opened += [r, w]
    os.set_inheritable(w, True)
    for target, inh in ((100, True), (101, False), (1000, True),
                        (1001, False)):
        fd = os.open(os.devnull, os.O_RDONLY)
        os.dup2(fd, target, inheritable=inh)
        os.close(fd)
        opened.append(target)
    f = open(os.devnull)         # a Python file object (non-inheritable)
    try:
        yield {fd for fd in opened if os.get_inheritable(fd)}, opened
    finally:
        f.close()
        for fd in opened:
            os.close(fd)


def _child_fds(out):
    return set(json.loads(out))


FD_CALLS = {
    "Popen": lambda kw: fastspawn.Popen([PY, "-S", "-c", _LIST_FDS],
                                        stdout=PIPE, **kw).communicate()[0],
    "run": lambda kw: fastspawn.run([PY, "-S", "-c", _LIST_FDS],
                                    capture_output=True, **kw).stdout,
    "check_output": lambda kw: fastspawn.check_output(
        [PY, "-S", "-c", _LIST_FDS], **kw),
    "Popen-vfork-path": lambda kw: fastspawn.Popen(
        [PY, "-S", "-c", _LIST_FDS], stdout=PIPE, umask=0o22,
        **kw).communicate()[0],
    "Popen-preexec": lambda kw: fastspawn.Popen(
        [PY, "-S", "-c", _LIST_FDS], stdout=PIPE, preexec_fn=lambda: None,
        **kw).communicate()[0],
    "Popen-session": lambda kw: fastspawn.Popen(
        [PY, "-S", "-c", _LIST_FDS], stdout=PIPE, start_new_session=True,
        cwd="/", **kw).communicate()[0],
    "popen": lambda kw: _os_popen(),
}


def _os_popen():
    with fastspawn.popen("%s -S -c '%s'" % (PY, _LIST_FDS.replace("'", '"'))
                         ) as f:
        return f.read()


@pytest.mark.parametrize("how", sorted(FD_CALLS))
def test_close_fds_default_leaks_nothing(how, bait):
    inheritable, _ = bait
    assert inheritable        # the bait is there to be leaked
    got = _child_fds(FD_CALLS[how]({}))
    assert got == {0, 1, 2}, got


@pytest.mark.parametrize("how", ["Popen", "run-popen", "Popen-vfork-path",
                                 "Popen-preexec"])
def test_close_fds_keeps_exactly_pass_fds(how, bait):
    inheritable, opened = bait
    keep = (100, 1001)           # one inheritable, one not: both passed
    f = FD_CALLS["Popen" if how == "run-popen" else how]
    got = _child_fds(f({"pass_fds": keep}))
    assert got == {0, 1, 2} | set(keep), got


@pytest.mark.parametrize("how", ["Popen", "Popen-vfork-path",
                                 "Popen-preexec"])
def test_close_fds_false_passes_only_inheritable_fds(how, bait):
    """subprocess's rule: without close_fds the child gets the parent's
    inheritable fds -- and never a non-inheritable one (nor one of ours:
    every fd fastspawn itself opens is O_CLOEXEC)."""
    inheritable, opened = bait
    got = _child_fds(FD_CALLS[how]({"close_fds": False}))
    want = {0, 1, 2} | inheritable
    # Other inheritable fds the test process may have (none usually).
    extra = {fd for fd in _parent_inheritable() if fd > 2} - inheritable
    assert got - extra == want, (got, want)


def _parent_inheritable():
    out = set()
    for name in os.listdir("/proc/self/fd"):
        try:
            if os.get_inheritable(int(name)):
                out.add(int(name))
        except OSError:
            pass
    return out


@pytest.mark.parametrize("mechanism", ["default", "posix_spawn", "vfork"])
def test_every_mechanism_closes_fds(mechanism, bait):
    flags = K.CLOSE_FDS | {"default": 0,
                           "posix_spawn": K.PREFER_POSIX_SPAWN,
                           "vfork": K.FORCE_VFORK}[mechanism]
    res = launch(os.fsencode(PY), [os.fsencode(PY), b"-S", b"-c",
                                   _LIST_FDS.encode()], None,
                 stdout=K.STDIO_PIPE, flags=flags)
    out = read_all(res[3])
    assert os.waitpid(res[0], 0)[1] == 0
    assert _child_fds(out) == {0, 1, 2}


def test_own_pipes_never_reach_a_sibling(echo):
    """Pipes made for one child (in another thread, at the same time) are
    close-on-exec: a child started with close_fds=False gets none."""
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            fastspawn.run(["cat"], input=b"x" * 1000, capture_output=True)
    t = threading.Thread(target=churn)
    t.start()
    try:
        for _ in range(30):
            out = fastspawn.Popen([PY, "-S", "-c", _LIST_FDS], stdout=PIPE,
                                  close_fds=False).communicate()[0]
            extra = {fd for fd in _parent_inheritable() if fd > 2}
            assert _child_fds(out) - extra == {0, 1, 2}
    finally:
        stop.set()
        t.join()


# ---------------------------------------------------------------------------
# the environment, exactly

ENVS = {
    "empty": {},
    "one": {"A": "1"},
    "bytes": {b"K\xff": b"V\xfe", b"PATH": b"/nowhere"},
    "odd-values": {"E": "", "S": "a b", "NL": "x\ny", "EQ": "a=b=c"},
    "empty-key": {"": "v"},
}
ENV_CALLS = {
    "Popen": lambda m, exe, env: m.Popen(
        [exe], env=env, stdout=PIPE).communicate()[0],
    "run": lambda m, exe, env: m.run([exe], env=env,
                                     capture_output=True).stdout,
    "run-popen": lambda m, exe, env: m.run(
        [exe], env=env, capture_output=True, close_fds=True).stdout,
    "Popen-vfork-path": lambda m, exe, env: m.Popen(
        [exe], env=env, stdout=PIPE, umask=0o22).communicate()[0],
    "Popen-preexec": lambda m, exe, env: m.Popen(
        [exe], env=env, stdout=PIPE, preexec_fn=lambda: None
    ).communicate()[0],
    "Popen-shell": lambda m, exe, env: m.Popen(
        "exec " + exe, shell=True, env=env, stdout=PIPE).communicate()[0],
}


def _env_list(env):
    return sorted(os.fsencode(k) + b"=" + os.fsencode(v)
                  for k, v in env.items())


@pytest.mark.parametrize("how", sorted(ENV_CALLS))
@pytest.mark.parametrize("case", sorted(ENVS))
def test_child_environment_is_exactly_env(case, how, echo):
    env = ENVS[case]
    if how == "Popen-shell" and case != "one":
        pytest.skip("the shell itself adds PWD & co.; checked once below")
    want = outcome(ENV_CALLS[how], subprocess, echo, env)
    if want[0] == "raised":
        # This subprocess refuses it on this path: from 3.13 its
        # os.posix_spawn path (an absolute program, close_fds) refuses an
        # empty name, which its fork_exec path passes on.
        assert outcome(ENV_CALLS[how], fastspawn, echo, env) == want
        return
    out = ENV_CALLS[how](fastspawn, echo, env)
    _, envp = parse_echo(out)
    if how == "Popen-shell":
        # dash exports what it was given plus nothing but PWD.
        assert sorted(e for e in envp if not e.startswith(b"PWD=")) == \
            _env_list(env)
        return
    assert sorted(envp) == _env_list(env)
    # and subprocess agrees
    assert sorted(parse_echo(want[1])[1]) == sorted(envp)


@pytest.mark.parametrize("how", sorted(ENV_CALLS))
def test_child_environment_inherited_exactly(how, echo, monkeypatch):
    if how == "Popen-shell":
        pytest.skip("the shell adds PWD/SHLVL")
    monkeypatch.setenv("FASTSPAWN_SECURITY_PROBE", "yes")
    monkeypatch.delenv("FASTSPAWN_NOT_THERE", raising=False)
    out = ENV_CALLS[how](fastspawn, echo, None)
    _, envp = parse_echo(out)
    # env=None hands over the C-level environ, as execv() and subprocess do
    # (it can hold more than os.environ: e.g. COLUMNS/LINES set by C code).
    sp = subprocess.Popen([echo], stdout=PIPE).communicate()[0]
    assert sorted(envp) == sorted(parse_echo(sp)[1])
    assert b"FASTSPAWN_SECURITY_PROBE=yes" in envp
    assert set(k + b"=" + v for k, v in os.environb.items()) <= set(envp)


@pytest.mark.parametrize("func", ["spawnve", "spawnvpe", "spawnle"])
def test_spawn_e_variants_environment_exactly(func, echo, tmp_path):
    env = {"ONLY": "this", "B": "2"}
    out_path = str(tmp_path / "out")
    fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    saved = os.dup(1)
    try:
        os.dup2(fd, 1)
        if func == "spawnle":
            rc = fastspawn.spawnle(fastspawn.P_WAIT, echo, "x", env)
        else:
            rc = getattr(fastspawn, func)(fastspawn.P_WAIT, echo, ["x"], env)
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(fd)
    assert rc == 0
    _, envp = parse_echo(_read_file(out_path))
    assert sorted(envp) == _env_list(env)


# ---------------------------------------------------------------------------
# credentials as root

_IDS = ["sh", "-c", "id -u; id -g; id -G; umask; grep -E '^(Uid|Gid|Groups)' "
        "/proc/self/status"]


def _nogroup_name():
    for name in ("nogroup", "nobody"):
        try:
            grp.getgrnam(name)
            return name
        except KeyError:
            pass
    return None


CRED_CASES = {
    "user": {"user": 65534},
    "user-name": {"user": "nobody"},
    "group": {"group": 65534},
    "group-name": {"group": "nogroup"},
    "extra_groups": {"extra_groups": [1, 2, 3]},
    "extra_groups-empty": {"extra_groups": []},
    "extra_groups-names": {"extra_groups": ["nogroup", "daemon"]},
    "all": {"user": 65534, "group": 65534, "extra_groups": [65534, 4]},
    "umask": {"umask": 0o27},
    "umask-zero": {"umask": 0},
    "all-and-umask": {"user": 65534, "group": 65534, "extra_groups": [],
                      "umask": 0o77},
    "private-uid": {"user": 1900000123, "group": 1900000123,
                    "extra_groups": [1900000124]},
}


@root_only
@pytest.mark.parametrize("how", ["Popen", "run", "check_output"])
@pytest.mark.parametrize("case", sorted(CRED_CASES))
def test_credentials_like_subprocess_as_root(case, how):
    kw = dict(CRED_CASES[case])
    if "nogroup" in str(kw) and _nogroup_name() != "nogroup":
        pytest.skip("no group named nogroup")
    if how == "Popen":
        f = lambda m: m.Popen(_IDS, stdout=PIPE, **kw).communicate()
    elif how == "run":
        f = lambda m: m.run(_IDS, capture_output=True, **kw)
    else:
        f = lambda m: m.check_output(_IDS, **kw)
    want = outcome(f, subprocess)
    assert want[0] != "raised", want
    assert outcome(f, fastspawn) == want


@root_only
def test_credentials_never_change_the_parent():
    """The child's set*id() calls must not reach the parent or its other
    threads (glibc's setxid broadcast after vfork: bpo-35823)."""
    def creds():
        out = {}
        for tid in os.listdir("/proc/self/task"):
            with open("/proc/self/task/%s/status" % tid) as f:
                out[tid] = [line for line in f if line.startswith(
                    ("Uid:", "Gid:", "Groups:"))]
        return out

    stop = threading.Event()
    t = threading.Thread(target=stop.wait)      # another thread, idle
    t.start()
    try:
        before = creds()
        for kw in CRED_CASES.values():
            if "nogroup" in str(kw) and _nogroup_name() != "nogroup":
                continue
            fastspawn.run(["true"], check=True, **kw)
            p = fastspawn.Popen(["true"], **kw)
            assert p.wait() == 0
        after = creds()
    finally:
        stop.set()
        t.join()
    assert after == before
    assert os.getuid() == os.geteuid() == 0


# ---------------------------------------------------------------------------
# credentials where they are not allowed (an unprivileged interpreter)

_UNPRIV_BODY = r"""
import os, subprocess
uid = %(uid)d
os.setgroups([])
os.setgid(uid)
os.setuid(uid)
fds = open_fds()
ids = ["sh", "-c", "id -u; id -g; umask"]
calls = {
    "user-root": dict(user=0),
    "group-root": dict(group=0),
    "extra_groups-root": dict(extra_groups=[0]),
    "extra_groups-empty": dict(extra_groups=[]),
    "user-other": dict(user=65534),
    "user-self": dict(user=uid),
    "group-self": dict(group=uid),
    "user-self-and-group-root": dict(user=uid, group=0),
    "umask": dict(umask=0o77),
}
for name, kw in calls.items():
    for api in ("Popen", "run", "check_output"):
        if api == "Popen":
            f = lambda m: m.Popen(ids, stdout=subprocess.PIPE,
                                  **kw).communicate()
        elif api == "run":
            f = lambda m: m.run(ids, capture_output=True, **kw)
        else:
            f = lambda m: m.check_output(ids, **kw)
        RESULT[name + "/" + api] = (outcome(f, subprocess),
                                    outcome(f, fastspawn))
        assert open_fds() == fds, (name, open_fds() - fds)
        assert not children(), (name, children())
# The os-style functions have no credentials arguments; spawning still
# works unprivileged.
RESULT["spawnv"] = fastspawn.spawnv(os.P_WAIT, "/bin/true", ["true"])
"""


@root_only
def test_credentials_refused_cleanly_when_unprivileged(backend):
    name = "c" if backend.__name__.endswith("_spawn_c") else "py"
    uid = private_uid()
    res = run_scenario(name, _UNPRIV_BODY % {"uid": uid})
    eperm = ("raised", "PermissionError", "[Errno 1] Operation not permitted",
             1, None)
    assert res.pop("spawnv") == 0
    for key, (want, got) in res.items():
        assert got == want, key
        case = key.split("/")[0]
        if case in ("user-root", "group-root", "extra_groups-root",
                    "extra_groups-empty", "user-other",
                    "user-self-and-group-root"):
            # setgroups() needs CAP_SETGID even for an empty list.
            assert got == eperm, key
        else:
            assert got[0] != "raised", key
    assert res["umask/run"][1][2].endswith(b"0077\n")


@root_only
@pytest.mark.parametrize("kw", [{"user": 3000000000},
                                {"group": 3000000000},
                                {"user": 2 ** 32 - 1},     # (uid_t)-1
                                {"extra_groups": [3000000000]}],
                         ids=["user", "group", "user-minus-1", "groups"])
def test_ids_above_int_max_like_subprocess(kw, backend, request):
    """uid_t/gid_t are unsigned 32-bit: ids >= 2**31 are valid (and
    2**32-1 means "no change" to set*id); fs_request carries them wide
    enough (long long)."""
    f = lambda m: m.run(["sh", "-c", "id -u; id -g; id -G"],
                        capture_output=True, **kw)
    want = outcome(f, subprocess)
    assert want[0] == "completed", want
    got = f(fastspawn)
    assert ("completed", got.returncode, got.stdout, got.stderr) == want


@pytest.mark.parametrize("kw", [{"user": 2 ** 32}, {"group": 2 ** 32},
                                {"user": 2 ** 40}, {"group": 2 ** 63},
                                {"extra_groups": [2 ** 32]}],
                         ids=["user", "group", "user-big", "group-huge",
                              "groups"])
def test_ids_beyond_uid_t_raise_like_subprocess(kw, backend):
    """Ids that do not fit uid_t/gid_t raise subprocess's error before
    anything starts -- never a truncated id (2**32 must not become root)."""
    f = lambda m: m.run(["true"], **kw)
    want = outcome(f, subprocess)
    assert want[0] == "raised", want
    assert outcome(f, fastspawn) == want

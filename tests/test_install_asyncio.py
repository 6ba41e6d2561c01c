"""asyncio after ``fastspawn.install()``: children waited through a pidfd.

Where asyncio's default child watcher starts a thread per child (3.9-3.11,
``_install.asyncio_watcher_wanted()``), install() makes the default policy
create fastspawn's PidfdChildWatcher instead; elsewhere asyncio keeps its
own. Proven here: create_subprocess_exec/shell give the same results as
stock asyncio (differential), no thread per child, many children at once,
signal deaths, cancellation, a child reaped elsewhere, a loop in another
thread, the fallback when no pidfd can be had, a watcher or policy the
program chose is kept, asyncio is never imported by install(), and
uninstall() restores what was there.
"""
import asyncio
import gc
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

import fastspawn
from fastspawn import _install
from fsutil import PY

WANTED = _install.asyncio_watcher_wanted()
needs_watcher = pytest.mark.skipif(
    not WANTED, reason="asyncio here waits without a thread per child "
    "already (3.12+), or has no pidfds: install() leaves it alone")
# asyncio's own default waits through a pidfd here (3.12+ with pidfds).
STOCK_PIDFD = sys.version_info >= (3, 12) and _install._pidfds_work()

if sys.version_info < (3, 12):
    from asyncio import unix_events
    POLICY = unix_events._UnixDefaultEventLoopPolicy
    ORIGINAL_INIT = POLICY.__dict__["_init_watcher"]
else:
    POLICY = ORIGINAL_INIT = None


def _policy_watcher():
    """The default policy's watcher as it is (None: not created yet, or
    asyncio >= 3.12, whose policies are deprecated)."""
    if POLICY is None:
        return None
    return asyncio.get_event_loop_policy()._watcher


def _fresh_policy():
    if POLICY is not None:
        asyncio.set_event_loop_policy(None)


@pytest.fixture
def fresh():
    """A fresh default event loop policy (no watcher yet), fastspawn not
    installed; afterwards uninstalled, asyncio's class restored (checked),
    a fresh policy again."""
    assert not _install.installed()
    _fresh_policy()
    yield
    fastspawn.uninstall()
    _fresh_policy()
    gc.collect()        # the transports' Popen objects (and their pidfds)
    if POLICY is not None:
        assert POLICY.__dict__["_init_watcher"] is ORIGINAL_INIT


def arun(coro):
    try:
        return asyncio.run(coro)
    finally:
        gc.collect()


# ---------------------------------------------------------------------------
# results: the same as stock asyncio


async def _scenarios():
    out = []
    p = await asyncio.create_subprocess_exec(
        "sh", "-c", "echo out; echo err >&2; exit 3",
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out.append(await p.communicate() + (p.returncode,))
    p = await asyncio.create_subprocess_shell(
        "cat; exit 5", stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    out.append(await p.communicate(b"via stdin") + (p.returncode,))
    p = await asyncio.create_subprocess_exec("true")
    out.append(await p.wait())
    p = await asyncio.create_subprocess_exec("sh", "-c", "kill -TERM $$")
    out.append(await p.wait())
    for sig in (signal.SIGKILL, signal.SIGINT):
        # Signalled once it runs: a signal that comes before the exec can be
        # lost in subprocess's own child on 3.9 (a fork child, with the
        # parent's handlers until exec).
        p = await asyncio.create_subprocess_exec(
            "sh", "-c", "echo up; exec sleep 10", stdout=subprocess.PIPE)
        assert await p.stdout.readline() == b"up\n"
        p.send_signal(sig)
        out.append(await p.wait())
    try:
        await asyncio.create_subprocess_exec("/nonexistent/fs-prog")
    except OSError as e:
        out.append((type(e), e.errno, e.filename))
    return out


def test_results_like_stock_asyncio(fresh):
    stock = arun(_scenarios())
    fastspawn.install()
    assert arun(_scenarios()) == stock
    assert stock[:3] == [(b"out\n", b"err\n", 3), (b"via stdin", None, 5), 0]
    assert stock[3:6] == [-signal.SIGTERM, -signal.SIGKILL, -signal.SIGINT]


def _watched(shell):
    async def main():
        if shell:
            p = await asyncio.create_subprocess_shell("exit 7")
        else:
            p = await asyncio.create_subprocess_exec("sh", "-c", "exit 7")
        popen = p._transport.get_extra_info("subprocess")
        return type(popen), await p.wait()
    return arun(main())


@pytest.mark.parametrize("shell", [False, True], ids=["exec", "shell"])
def test_watcher_and_popen_after_install(fresh, shell):
    fastspawn.install()
    popen_type, rc = _watched(shell)
    assert (popen_type, rc) == (fastspawn.Popen, 7)
    watcher = _policy_watcher()
    if WANTED:
        from fastspawn import _aiowatch
        assert type(watcher) is _aiowatch.PidfdChildWatcher
    elif POLICY is not None:
        # No pidfds: asyncio's own.
        assert type(watcher) is unix_events.ThreadedChildWatcher


# ---------------------------------------------------------------------------
# no thread per child


def _threads_during(n, shell=False):
    """Threads alive while ``n`` children run at once (each waits for its
    stdin's EOF); their exit codes."""
    async def main():
        cmds = ["read x; exit %d" % (i % 7) for i in range(n)]
        if shell:
            procs = [await asyncio.create_subprocess_shell(
                c, stdin=subprocess.PIPE) for c in cmds]
        else:
            procs = [await asyncio.create_subprocess_exec(
                "sh", "-c", c, stdin=subprocess.PIPE) for c in cmds]
        await asyncio.sleep(0.05)
        alive = threading.active_count()
        for p in procs:
            p.stdin.close()
        codes = await asyncio.gather(*[p.wait() for p in procs])
        return alive, codes
    return arun(main())


@pytest.mark.parametrize("shell", [False, True], ids=["exec", "shell"])
def test_no_thread_per_child(fresh, shell):
    base = threading.active_count()
    fastspawn.install()
    most, codes = _threads_during(20, shell)
    assert codes == [i % 7 for i in range(20)]
    if WANTED or STOCK_PIDFD:
        assert most == base, (most, base)
    else:
        pytest.skip("no pidfds here: asyncio's thread per child stays")


@pytest.mark.skipif(sys.version_info >= (3, 12),
                    reason="asyncio >= 3.12 starts no thread per child")
def test_stock_asyncio_starts_a_thread_per_child(fresh):
    """What the test above would see without install(): it can fail."""
    base = threading.active_count()
    most, _ = _threads_during(20)
    assert most >= base + 20


def test_many_concurrent_children(fresh):
    fastspawn.install()

    async def one(i):
        p = await asyncio.create_subprocess_exec(
            "sh", "-c", "exit %d" % (i % 256), stdout=subprocess.PIPE)
        out, _ = await p.communicate()
        return out, p.returncode

    async def main():
        return await asyncio.gather(*[one(i) for i in range(300)])
    assert arun(main()) == [(b"", i % 256) for i in range(300)]


# ---------------------------------------------------------------------------
# cancellation, reaped elsewhere, other threads


def test_cancelled_wait_then_kill(fresh):
    fastspawn.install()

    async def main():
        p = await asyncio.create_subprocess_exec("sleep", "10")
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(p.wait(), 0.1)
        task = asyncio.ensure_future(p.wait())
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert p.returncode is None
        p.kill()
        return await p.wait()
    assert arun(main()) == -signal.SIGKILL


def test_cancelled_task_then_more_children(fresh):
    """A task cancelled while its child runs: the child is still reaped
    (no zombie left: the suite's leak check), and the loop goes on."""
    fastspawn.install()

    async def child_task():
        p = await asyncio.create_subprocess_exec("sleep", "0.2")
        await p.wait()

    async def main():
        t = asyncio.ensure_future(child_task())
        await asyncio.sleep(0.05)
        t.cancel()
        with pytest.raises(asyncio.CancelledError):
            await t
        await asyncio.sleep(0.4)     # the child exits, the watcher reaps
        p = await asyncio.create_subprocess_exec("sh", "-c", "exit 4")
        return await p.wait()
    assert arun(main()) == 4


@needs_watcher
def test_child_reaped_elsewhere(fresh, caplog):
    """Status lost to someone else's waitpid(): 255 and asyncio's warning,
    as asyncio's own watchers report it."""
    fastspawn.install()

    async def main():
        # (sleep: the watcher must not reap it while create_... awaits)
        p = await asyncio.create_subprocess_exec("sh", "-c",
                                                 "sleep 0.3; exit 3")
        os.waitpid(p.pid, 0)        # blocks the loop until it exits
        return await p.wait()
    with caplog.at_level("WARNING", logger="asyncio"):
        assert arun(main()) == 255
    assert "will report returncode 255" in caplog.text


def test_loop_in_another_thread(fresh):
    fastspawn.install()
    got = []

    def run():
        async def main():
            p = await asyncio.create_subprocess_exec(
                "sh", "-c", "echo t; exit 6", stdout=subprocess.PIPE)
            out, _ = await p.communicate()
            return out, p.returncode, threading.active_count()
        got.append(asyncio.run(main()))
    t = threading.Thread(target=run)
    t.start()
    t.join()
    gc.collect()
    assert got[0][:2] == (b"t\n", 6)


@needs_watcher
def test_no_pidfd_for_a_child_falls_back_to_a_thread(fresh, monkeypatch):
    """pidfd_open() failing (EMFILE...) for a child: that child is waited
    for as asyncio would, by a thread; results unchanged."""
    import errno
    fastspawn.install()

    def no_pidfd(pid, flags=0):
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    async def main():
        p = await asyncio.create_subprocess_exec("sh", "-c", "exit 9")
        return await p.wait()
    monkeypatch.setattr(os, "pidfd_open", no_pidfd)
    assert arun(main()) == 9
    from fastspawn import _aiowatch
    assert isinstance(_policy_watcher(), _aiowatch.PidfdChildWatcher)


def test_decision_without_pidfds(monkeypatch):
    """No os.pidfd_open (macOS, old builds) or a kernel refusing it: asyncio
    keeps its own watcher."""
    import errno
    monkeypatch.setattr(_install, "_wanted", None)
    monkeypatch.delattr(os, "pidfd_open", raising=False)
    assert _install.asyncio_watcher_wanted() is False
    monkeypatch.setattr(_install, "_wanted", None)

    def enosys(pid, flags=0):
        raise OSError(errno.ENOSYS, os.strerror(errno.ENOSYS))
    monkeypatch.setattr(os, "pidfd_open", enosys, raising=False)
    assert _install.asyncio_watcher_wanted() is False
    monkeypatch.setattr(_install, "_wanted", None)
    monkeypatch.undo()
    assert _install.asyncio_watcher_wanted() is (
        sys.version_info < (3, 12) and _install._pidfds_work())


# ---------------------------------------------------------------------------
# what the program chose is kept; uninstall() restores


@needs_watcher
def test_watcher_set_by_the_program_is_kept(fresh):
    theirs = unix_events.ThreadedChildWatcher()
    asyncio.set_child_watcher(theirs)
    fastspawn.install()
    base = threading.active_count()
    most, codes = _threads_during(5)
    assert asyncio.get_child_watcher() is theirs
    assert most >= base + 5          # theirs: a thread per child
    assert codes == [i % 7 for i in range(5)]
    fastspawn.uninstall()
    assert asyncio.get_child_watcher() is theirs


@needs_watcher
def test_watcher_set_after_install_is_kept(fresh):
    fastspawn.install()
    _watched(False)
    theirs = unix_events.ThreadedChildWatcher()
    asyncio.set_child_watcher(theirs)
    assert _watched(False)[1] == 7
    fastspawn.uninstall()
    assert asyncio.get_child_watcher() is theirs


@needs_watcher
def test_custom_policy_is_kept(fresh):
    class TheirPolicy(asyncio.DefaultEventLoopPolicy):
        pass
    asyncio.set_event_loop_policy(TheirPolicy())
    fastspawn.install()
    assert _watched(False)[1] == 7
    assert type(_policy_watcher()) is unix_events.ThreadedChildWatcher


@needs_watcher
def test_uninstall_restores(fresh):
    fastspawn.install()
    assert POLICY.__dict__["_init_watcher"] is not ORIGINAL_INIT
    _watched(False)
    ours = _policy_watcher()
    fastspawn.uninstall()
    assert POLICY.__dict__["_init_watcher"] is ORIGINAL_INIT
    assert _policy_watcher() is None      # as before install()
    assert _watched(False)[1] == 7
    assert type(_policy_watcher()) is unix_events.ThreadedChildWatcher
    # again: a watcher asyncio made is there now, and is kept
    fastspawn.install()
    assert _watched(False)[1] == 7
    assert type(_policy_watcher()) is unix_events.ThreadedChildWatcher
    fastspawn.uninstall()
    _fresh_policy()
    fastspawn.install()
    _watched(False)
    assert _policy_watcher() is ours


@needs_watcher
def test_uninstall_with_children_running(fresh):
    """Children handed to our watcher before uninstall() are still
    reaped, with their status."""
    async def main():
        fastspawn.install()
        p = await asyncio.create_subprocess_exec("sh", "-c",
                                                 "sleep 0.2; exit 2")
        fastspawn.uninstall()
        q = await asyncio.create_subprocess_exec("sh", "-c", "exit 3")
        return await p.wait(), await q.wait()
    assert arun(main()) == (2, 3)


# ---------------------------------------------------------------------------
# asyncio imported after install(): a fresh interpreter


CHILD = textwrap.dedent(r'''
    import json, sys
    import fastspawn
    how = sys.argv[1]
    before = list(sys.meta_path)
    fastspawn.install()
    report = {"asyncio_imported_by_install": "asyncio" in sys.modules}
    if how == "uninstall-first":
        fastspawn.uninstall()
        report["meta_path_restored"] = sys.meta_path == before
    import asyncio
    import asyncio.unix_events as ue

    async def main():
        p = await asyncio.create_subprocess_exec("sh", "-c", "exit 5")
        return await p.wait()
    report["rc"] = asyncio.run(main())
    w = asyncio.get_event_loop_policy()._watcher if sys.version_info < (
        3, 12) else None
    report["watcher"] = None if w is None else type(w).__module__ + "." + \
        type(w).__name__
    report["meta_path_restored"] = report.get(
        "meta_path_restored", sys.meta_path == before)
    report["real_loader"] = (type(ue.__loader__).__name__,
                             type(ue.__spec__.loader).__name__)
    fastspawn.uninstall()
    report["restored"] = ("_init_watcher" in vars(
        ue._UnixDefaultEventLoopPolicy) and
        ue._UnixDefaultEventLoopPolicy._init_watcher.__module__
        == "asyncio.unix_events") if sys.version_info < (3, 12) else True
    print(json.dumps(report))
''')


@pytest.mark.parametrize("how", ["installed", "uninstall-first"])
def test_asyncio_imported_after_install(tmp_path, backend, how):
    from test_install import child_env
    script = tmp_path / "prog.py"
    script.write_text(CHILD)
    r = subprocess.run([PY, str(script), how], env=child_env(backend),
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["asyncio_imported_by_install"] is False
    assert report["rc"] == 5
    assert report["meta_path_restored"] is True
    assert report["real_loader"] == ["SourceFileLoader", "SourceFileLoader"]
    assert report["restored"] is True
    if sys.version_info >= (3, 12):
        assert report["watcher"] is None
    elif WANTED and how == "installed":
        assert report["watcher"] == "fastspawn._aiowatch.PidfdChildWatcher"
    else:
        assert report["watcher"] == "asyncio.unix_events.ThreadedChildWatcher"

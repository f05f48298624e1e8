"""fork() inside preempt.run(): the child goes on with a working runtime (issue 9, case 5).

Rule numbers are those of ``src/preempt/_runtime/_fork.py``. Every scenario runs in a child
interpreter (the ``child`` fixture), which forks a *grandchild*. The grandchild always ends with
``os._exit``; its parent reaps it with a deadline and SIGKILLs it when the deadline passes (a
hang is reported as "hung"), and it is killed by PR_SET_PDEATHSIG if its parent dies first, so a
broken runtime never leaves a process behind. The parent's runtime is checked after each fork
too: it must keep preempting and its poller must work.

Before these changes every scenario hung or failed in the grandchild: no sysmon (a computing
goroutine was never preempted, so the counter and sleep checks hung), a shared epoll (the fd
scenario's waiter was woken by the parent's pipe), no offload threads (``blocking()`` waited for
ever), a pool thread with no signal blocked, and a scheduler that refused a new ``run()``.
"""

from __future__ import annotations

import textwrap

import pytest

pytestmark = pytest.mark.timeout(120)

PRE = r'''
import ctypes, os, signal, sys, threading, time, traceback
_libc = ctypes.CDLL(None, use_errno=True)
_forker = [os.getpid()]


def _die_with_parent():
    # The grandchild's first at-fork handler (registered before preempt's): SIGKILL when the
    # thread that forked it ends, so a hung grandchild never outlives its parent.
    _libc.prctl(1, signal.SIGKILL, 0, 0, 0)          # PR_SET_PDEATHSIG
    if os.getppid() != _forker[0]:
        os._exit(97)


os.register_at_fork(before=lambda: _forker.__setitem__(0, os.getpid()),
                    after_in_child=_die_with_parent)
MODE = sys.argv[1] if len(sys.argv) > 1 else "c"
if MODE == "python":
    os.environ["PREEMPT_SYSMON"] = "python"          # the fallback monitor
if MODE == "pure":
    os.environ["PREEMPT_PURE"] = "1"                 # no C hand-off path
import preempt

TOP = os.getpid()


def reap(pid, timeout=10.0, nap=time.sleep):
    """Waits for the grandchild; SIGKILLs it at the deadline. Its exit code, or 'hung'."""
    deadline = time.monotonic() + timeout
    while True:
        p, st = os.waitpid(pid, os.WNOHANG)
        if p == pid:
            return os.waitstatus_to_exitcode(st)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return f"hung (killed after {timeout:.0f} s)"
        nap(0.01)


def in_grandchild(fn):
    """Runs fn in the grandchild and ends it with os._exit: 0 when fn returned, else 1."""
    code = 1
    try:
        fn()
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def fork_and_check(child_fn, parent_fn=None, timeout=10.0):
    """Forks from the running goroutine; child_fn runs in the grandchild, parent_fn here."""
    pid = os.fork()
    if pid == 0:
        in_grandchild(child_fn)
    if parent_fn is not None:
        parent_fn()
    rc = reap(pid, timeout, preempt.sleep)
    print("grandchild exit:", rc, flush=True)
    return rc


def check_preempts(who):
    """A CPU-bound goroutine is preempted: another goroutine's counter moves while it computes."""
    cnt = [0]
    stop = [False]

    def counter():
        while not stop[0]:
            cnt[0] += 1

    def busy():
        c0 = cnt[0]
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.3:
            pass
        return cnt[0] - c0

    c = preempt.go(counter, name="counter")
    moved = preempt.go(busy, name="busy").join()
    stop[0] = True
    c.join()
    assert moved > 0, f"{who}: the counter did not move while busy computed"
    print(f"{who}: preempts", flush=True)


def check_sleep(who):
    """sleep(0.05) returns while another goroutine computes (a timer-driven wake-up)."""
    stop = [False]

    def spin():
        while not stop[0]:
            pass

    g = preempt.go(spin, name="spin")
    preempt.gosched()
    t0 = time.monotonic()
    preempt.sleep(0.05)
    dt = time.monotonic() - t0
    stop[0] = True
    g.join()
    assert 0.05 <= dt < 1.0, f"{who}: sleep(0.05) took {dt:.3f} s"
    print(f"{who}: sleeps", flush=True)


def check_poller(who):
    """wait_readable on a fresh pipe returns once a goroutine writes it."""
    r, w = os.pipe()

    def writer():
        preempt.sleep(0.02)
        os.write(w, b"x")

    preempt.go(writer, name="writer")
    assert preempt.wait_readable(r, timeout=5), f"{who}: a fresh pipe never became readable"
    os.close(r)
    os.close(w)
    print(f"{who}: polls", flush=True)


def check_blocking(who):
    assert preempt.blocking(lambda: os.getpid()) == os.getpid(), who
    print(f"{who}: blocking() works", flush=True)
'''


def _script(body: str) -> str:
    return PRE + textwrap.dedent(body)


def _skip_without_async_preemption() -> None:
    """Skips (with preempt's own reason) where the core cannot preempt native code: the
    scenario would prove nothing there, and printing its expected lines would pass it."""
    import preempt

    ok, why = preempt.available()
    if not ok:
        pytest.skip(f"preemption is unavailable here: {why}")


@pytest.mark.parametrize("mode", ["c", "python"])
def test_fork_in_goroutine_child_preempts_and_wakes_sleepers(child, mode):
    """Rule 1: in the grandchild a CPU-bound goroutine is preempted (another goroutine's counter
    moves while it computes), sleep(0.05) returns while one computes, and a goroutine that was
    sleeping at the fork wakes there too; the parent is unaffected."""
    out = child(_script("""
        def main():
            ch = preempt.Chan(1)

            def sleeper():             # exists at the fork: it goes on in both processes
                preempt.sleep(0.2)
                ch.send(os.getpid())

            preempt.go(sleeper, name="sleeper")
            preempt.sleep(0.01)

            def in_child():
                check_preempts("child")
                check_sleep("child")
                assert ch.recv() == os.getpid(), "the pre-fork goroutine did not run in the child"
                print("child: pre-fork goroutine woke", flush=True)

            def in_parent():
                check_preempts("parent")
                check_sleep("parent")
                check_poller("parent")
                assert ch.recv() == os.getpid()

            assert fork_and_check(in_child, in_parent) == 0
            print("PARENT OK", flush=True)

        preempt.run(main)
    """), mode)
    for line in ("child: preempts", "child: sleeps", "child: pre-fork goroutine woke",
                 "parent: preempts", "parent: sleeps", "parent: polls", "PARENT OK"):
        assert line in out, out


def test_fork_child_has_its_own_epoll_and_eventfd(child):
    """Rule 2: wait_readable on a fresh pipe works in the grandchild, and a pipe the parent
    writes after the fork does not wake the grandchild's waiter on the same fd *number* (the
    epoll reports fd numbers: shared, the parent's event would reach the child's waiter)."""
    out = child(_script("""
        FD = 250                       # the same number in both processes, two different pipes

        def main():
            sync_r, sync_w = os.pipe()     # the grandchild says: my waiter is parked

            def in_child():
                r, w = os.pipe()
                os.dup2(r, FD)
                got = []
                g = preempt.go(lambda: got.append(preempt.wait_readable(FD, timeout=0.8)))
                preempt.sleep(0.05)
                os.write(sync_w, b"k")
                g.join()
                assert got == [False], f"the child's waiter on fd {FD} was woken by the parent's pipe"
                check_poller("child")
                print("child: own epoll", flush=True)

            def in_parent():
                r, w = os.pipe()
                os.dup2(r, FD)
                got = []
                g = preempt.go(lambda: got.append(preempt.wait_readable(FD, timeout=5)))
                assert preempt.wait_readable(sync_r, timeout=5), "the grandchild never got ready"

                def hog():             # writes, then keeps the parent's hub away for 0.4 s: the
                    os.write(w, b"p")  # event stays pending in the parent's epoll meanwhile
                    t0 = time.monotonic()
                    while time.monotonic() - t0 < 0.4:
                        pass

                preempt.go(hog, preemptible=False).join()
                g.join()
                assert got == [True], "the parent's waiter missed its own pipe"
                check_preempts("parent")
                check_poller("parent")

            assert fork_and_check(in_child, in_parent) == 0
            print("PARENT OK", flush=True)

        preempt.run(main)
    """))
    for line in ("child: polls", "child: own epoll", "parent: preempts", "parent: polls",
                 "PARENT OK"):
        assert line in out, out


def test_blocking_in_flight_at_fork_fails_in_child_and_returns_in_parent(child):
    """Rule 3: a blocking() call running in the pool at the fork raises the clear PreemptError
    in the grandchild and returns its value in the parent; one that had finished (result
    queued, not yet delivered) returns in both; the grandchild's next blocking() makes a new
    pool."""
    out = child(_script("""
        def main():
            slow_started = threading.Event()
            fast_started = threading.Event()
            release_fast = threading.Event()

            def slow():
                slow_started.set()
                time.sleep(1.0)
                return "slow value"

            def fast():
                fast_started.set()
                release_fast.wait(10)
                return "fast value"

            g_slow = preempt.go(preempt.blocking, slow, name="slow")
            g_fast = preempt.go(preempt.blocking, fast, name="fast")
            while not (slow_started.is_set() and fast_started.is_set()):
                preempt.sleep(0.005)
            poller = preempt._runtime._park.sched.poller
            with preempt.no_preempt():         # the hub cannot run until the fork is done
                release_fast.set()
                deadline = time.monotonic() + 5
                while not poller.completions and time.monotonic() < deadline:
                    time.sleep(0.005)  # fast's thread finishes and queues its completion
                assert poller.completions, "fast() did not finish"
                pid = os.fork()
            if pid == 0:
                def in_child():
                    assert g_fast.join() == "fast value"
                    try:
                        g_slow.join()
                    except preempt.PreemptError as e:
                        assert ("forked while this blocking() call ran in the offload pool; its "
                                "thread does not exist in the child") in str(e), e
                        print("child: in-flight call failed clearly", flush=True)
                    else:
                        raise AssertionError("blocking() returned in the child")
                    check_blocking("child")
                    check_preempts("child")

                in_grandchild(in_child)
            assert g_fast.join() == "fast value"
            assert g_slow.join() == "slow value"
            print("parent: got both values", flush=True)
            check_blocking("parent")
            check_preempts("parent")
            rc = reap(pid, 10.0, preempt.sleep)
            assert rc == 0, rc
            print("PARENT OK", flush=True)

        preempt.run(main)
    """))
    for line in ("child: in-flight call failed clearly", "child: blocking() works",
                 "child: preempts", "parent: got both values", "PARENT OK"):
        assert line in out, out


def test_new_run_after_the_childs_run_returns(child):
    """Rule 1: the grandchild's run() (whose main forked) returns normally once a sleep behind a
    computing goroutine has woken, and a new run() then works there."""
    out = child(_script("""
        def second():
            check_preempts("child run 2")
            check_sleep("child run 2")
            check_poller("child run 2")
            check_blocking("child run 2")
            return "second"

        def main():
            preempt.go(lambda: preempt.sleep(0.1), name="leftover")   # killed when main returns
            pid = os.fork()
            if pid == 0:
                check_sleep("child run 1")
                return "grandchild"
            check_preempts("parent")
            check_poller("parent")
            rc = reap(pid, 10.0, preempt.sleep)
            assert rc == 0, rc
            return "parent"

        try:
            r = preempt.run(main)
        except BaseException:
            if os.getpid() != TOP:         # the grandchild's first run() failed: end it here
                traceback.print_exc()
                sys.stderr.flush()
                os._exit(1)
            raise
        if r == "grandchild":
            in_grandchild(lambda: print("child: run 2 returned", preempt.run(second), flush=True))
        print("PARENT OK", r, flush=True)
    """))
    for line in ("child run 1: sleeps", "child run 2: preempts", "child run 2: sleeps",
                 "child run 2: polls", "child run 2: blocking() works",
                 "child: run 2 returned second", "PARENT OK parent"):
        assert line in out, out


@pytest.mark.parametrize("mode", ["c", "python", "pure"])
def test_fork_from_another_thread_gives_a_child_ready_for_a_new_run(child, mode):
    """Rule 4: a fork on a non-M thread while run() runs: the old runtime is dropped in the
    grandchild (its SIGINT handler put back), and a fresh run() works there; the parent's
    runtime goes on."""
    out = child(_script("""
        def fresh():
            assert threading.current_thread() is threading.main_thread()
            h = signal.getsignal(signal.SIGINT)
            assert h is signal.default_int_handler, f"the dead runtime's SIGINT handler: {h!r}"

            def main2():
                check_preempts("child")
                check_sleep("child")
                check_poller("child")
                check_blocking("child")
                return "fresh"

            assert preempt.run(main2) == "fresh"
            print("child: fresh run() OK", flush=True)

        def forker(out):
            pid = os.fork()
            if pid == 0:
                in_grandchild(fresh)
            out.append(reap(pid, 15.0))

        def main():
            preempt.blocking(lambda: None)            # a pool thread
            r, w = os.pipe()
            waiter = preempt.go(preempt.wait_readable, r, name="fd-waiter")
            preempt.go(preempt.sleep, 0.3, name="sleeper")
            preempt.sleep(0.01)
            out = []
            t = threading.Thread(target=forker, args=(out,), name="forker")
            t.start()
            while t.is_alive():
                preempt.sleep(0.01)
            assert out == [0], out
            check_preempts("parent")
            check_poller("parent")
            os.write(w, b"x")
            assert waiter.join() is True
            print("PARENT OK", flush=True)

        preempt.run(main)
    """), mode)
    for line in ("child: preempts", "child: sleeps", "child: polls", "child: blocking() works",
                 "child: fresh run() OK", "parent: preempts", "parent: polls", "PARENT OK"):
        assert line in out, out


def test_async_preemption_works_in_the_child(child, torture_lib):
    """Rule 1: the M keeps its registry slot and generation across the fork, so sysmon can still
    preempt a goroutine that computes inside registered native code in the grandchild."""
    _skip_without_async_preemption()
    out = child(_script("""
        from _childlib import load, spin_iters

        lib = load(sys.argv[2])
        kern = preempt.preemptible(lib)
        iters = spin_iters(lib, 0.2)

        def native_run(who):
            ticks = []
            stop = [False]

            def ticker():
                while not stop[0]:
                    preempt.sleep(0.001)
                    ticks.append(time.perf_counter())

            tk = preempt.go(ticker, name="ticker")
            preempt.sleep(0.005)
            t0 = time.perf_counter()
            kern.pe_test_spin(iters)
            t1 = time.perf_counter()
            stop[0] = True
            tk.join()
            during = sum(1 for t in ticks if t0 < t < t1)
            assert during >= 3, f"{who}: the ticker did not run during the native call ({during})"
            assert preempt.stats()["async"]["count"] >= 1, preempt.stats()["async"]
            print(f"{who}: native code preempted", flush=True)

        def main():
            assert fork_and_check(lambda: native_run("child"), lambda: native_run("parent")) == 0
            print("PARENT OK", flush=True)

        preempt.run(main)
    """), "c", torture_lib["path"])
    for line in ("child: native code preempted", "parent: native code preempted", "PARENT OK"):
        assert line in out, out


def test_signal_landing_on_an_offload_thread_still_reaches_main(child):
    """offload.py rule 4: pool threads keep their signal mask (a subprocess started inside
    blocking() must get Ctrl-C), and a SIGINT the kernel hands to a pool thread still ends main's
    wait: sysmon sees the tripped handler and signals the M."""
    out = child(_script("""
        import threading
        masks = []
        def in_pool():
            masks.append(signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, []))
            signal.pthread_kill(threading.get_ident(), signal.SIGINT)   # lands on this thread
            time.sleep(0.5)
        def main():
            g = preempt.go(preempt.blocking, in_pool)
            t0 = time.monotonic()
            try:
                preempt.sleep(30)              # the hub sleeps in epoll; the M gets no signal
                return "no KeyboardInterrupt"
            except KeyboardInterrupt:
                return ("KeyboardInterrupt", time.monotonic() - t0 < 20, g)
        r = preempt.run(main)
        assert r[0] == "KeyboardInterrupt" and r[1], r
        assert masks == [False], masks         # what a subprocess started there inherits
        print("OK")
    """), timeout=60)
    assert "OK" in out, out


def test_preexec_fn_child_is_left_alone(child):
    """Rule 6: the child subprocess forks to run ``preexec_fn`` execs right after it; no sysmon
    is started there, so no other goroutine ever runs inside it, even when preexec_fn computes
    for several slices while a timer is due."""
    out = child(_script("""
        import subprocess

        def main():
            r, w = os.pipe()
            stop = [False]

            def spy():                 # must never run in the preexec child
                while not stop[0]:
                    if os.getpid() != TOP:
                        os.write(w, b"LEAK")
                        os._exit(3)
                    preempt.sleep(0.001)

            def slow_preexec():
                t0 = time.monotonic()
                while time.monotonic() - t0 < 0.1:
                    pass

            g = preempt.go(spy, name="spy")
            preempt.sleep(0.01)
            p = subprocess.Popen(["true"], preexec_fn=slow_preexec)
            assert preempt.blocking(p.wait, 10) == 0
            stop[0] = True
            g.join()
            os.close(w)
            leaked = os.read(r, 100)
            assert leaked == b"", "a goroutine ran inside the preexec_fn child"
            check_preempts("parent")
            print("PARENT OK", flush=True)

        preempt.run(main)
    """))
    assert "parent: preempts" in out and "PARENT OK" in out, out


def test_signal_handlers_run_in_a_child_forked_from_another_thread(child):
    """Rule 7: CPython 3.13 leaves the dead main thread's state as the signal target in a child
    forked from another thread, so no Python handler ever ran there (preemption, Ctrl-C). With
    preempt imported the child's handlers run, whether or not run() is running."""
    out = child("""
        import os, signal, threading, time
        import preempt
        def grandchild():
            got = []
            signal.signal(signal.SIGALRM, lambda s, f: got.append(1))
            signal.setitimer(signal.ITIMER_REAL, 0.05)
            t0 = time.monotonic()
            while not got and time.monotonic() - t0 < 5:
                pass                   # a Python handler runs at one of these bytecodes
            os._exit(0 if got else 3)
        def forker(out):
            pid = os.fork()
            if pid == 0:
                try:
                    grandchild()
                finally:
                    os._exit(1)
            out.append(os.waitpid(pid, 0)[1])
        out = []
        t = threading.Thread(target=forker, args=(out,))
        t.start(); t.join(30)
        print("status", out)
    """)
    assert out.strip() == "status [0]", out

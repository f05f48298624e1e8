"""One CPython test module, run once in this process: plain, or inside ``preempt.run()``.

Started by ``run_stdlib_tests.py`` (never imported by pytest): a child process per module and
mode, so a crash, a hang or a leaked patch ends that child and nothing else.

The two modes differ in exactly one way, so that a test that passes in the first and fails in the
second fails because of preempt:

1. ``plain``: the tests of ``test.<module>`` (unittest's loader, so ``load_tests``,
   ``setUpModule`` and class fixtures are CPython's own) run on the main thread, the way
   ``python -m test <module>`` runs them: no resource enabled (``support.use_resources = []``,
   so nothing reaches past loopback), in a fresh temporary working directory.
2. ``preempt``: ``preempt.patch()`` is applied first of all, before ``test.support`` and the
   module are imported (patch rule 2: names bound before the patch stay the stdlib's); then the
   same tests run in the main goroutine of ``preempt.run()``, beside a ticker goroutine that
   sleeps 1 ms at a time. The ticker keeps a timer due every millisecond, so a test that runs
   Python code past its time slice is preempted for real: the last line reports the runtime's
   preemption counts and the ticker's ticks, and the parent asserts preemptions > 0.

Results go to ``--out`` as JSON lines, written and flushed one by one with ``os.write`` (which
patching leaves alone): ``start`` before each test, then its outcome. A child killed mid-test
(a hang caught by the per-test ``faulthandler`` deadline, or a crash) leaves a ``start`` with no
outcome: the parent records that test as hung and starts a new child that skips what is done.

The alternative, running regrtest itself (``test.libregrtest``) and parsing its verbose output,
was rejected: its output format differs between CPython versions, a hang loses every result of
the module, and its own setup (fork of worker processes, signal handlers, its own faulthandler
use) would run inside the goroutine too.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import sys
import tempfile
import time
import traceback

_OUT_FD = -1



# Modules that require the "network" resource but reach only loopback (checked in their source).
LOOPBACK_NETWORK = {"test_socketserver"}

def emit(**rec) -> None:
    """Appends one JSON line to the results file (one write: a kill never leaves half a line)."""
    os.write(_OUT_FD, (json.dumps(rec) + "\n").encode())


def short_id(test, module: str) -> str:
    """``test.test_socket.GeneralModuleTests.test_x`` -> ``GeneralModuleTests.test_x``."""
    tid = test.id()
    prefix = f"test.{module}."
    return tid[len(prefix):] if tid.startswith(prefix) else tid


def make_result_class(unittest, module: str, test_timeout: float):
    class StreamingResult(unittest.TestResult):
        """Records every outcome as a JSON line the moment it is known."""

        def __init__(self) -> None:
            super().__init__()
            self.sub_failed: set = set()
            self.t0 = 0.0
            self.dumped = False

        def startTest(self, test) -> None:
            super().startTest(test)
            self.t0 = time.monotonic()
            self.dumped = False
            # a hang kills this child (exit 1); the parent sees the start with no outcome
            faulthandler.dump_traceback_later(test_timeout, exit=True)
            emit(ev="start", id=short_id(test, module))

        def stopTest(self, test) -> None:
            faulthandler.cancel_dump_traceback_later()
            super().stopTest(test)

        def _out(self, test, outcome: str, detail: str = "") -> None:
            emit(ev="result", id=short_id(test, module), outcome=outcome,
                 secs=round(time.monotonic() - self.t0, 3), detail=detail[-4000:])

        def addSuccess(self, test) -> None:
            super().addSuccess(test)
            tid = short_id(test, module)
            if tid in self.sub_failed:     # a subtest failed: the test did not pass
                return
            self._out(test, "pass")

        def addError(self, test, err) -> None:
            super().addError(test, err)
            self._out(test, "error", self._exc_info_to_string(err, test))

        def addFailure(self, test, err) -> None:
            super().addFailure(test, err)
            self._out(test, "fail", self._exc_info_to_string(err, test))

        def addSkip(self, test, reason) -> None:
            super().addSkip(test, reason)
            self._out(test, "skip", str(reason))

        def addExpectedFailure(self, test, err) -> None:
            super().addExpectedFailure(test, err)
            self._out(test, "xfail")

        def addUnexpectedSuccess(self, test) -> None:
            super().addUnexpectedSuccess(test)
            self._out(test, "xpass")

        def addSubTest(self, test, subtest, err) -> None:
            super().addSubTest(test, subtest, err)
            if err is None:
                return
            tid = short_id(test, module)
            if tid not in self.sub_failed:
                self.sub_failed.add(tid)
                kind = "fail" if issubclass(err[0], test.failureException) else "error"
                self._out(test, kind, f"{subtest.id()}\n" + self._exc_info_to_string(err, test))

    return StreamingResult


def flatten(suite):
    for t in suite:
        if hasattr(t, "__iter__"):
            yield from flatten(t)
        else:
            yield t


def read_ids(path: str) -> set:
    with open(path) as f:
        return {line.strip() for line in f if line.strip()}


def main() -> int:
    global _OUT_FD
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("plain", "preempt"), required=True)
    ap.add_argument("--module", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--skip-file", default=None, help="test ids (one a line) not to run")
    ap.add_argument("--only-file", default=None, help="run only these test ids (one a line)")
    ap.add_argument("--test-timeout", type=float, default=60.0)
    ap.add_argument("--tick-ms", type=float, default=1.0)
    args = ap.parse_args()
    _OUT_FD = os.open(args.out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    faulthandler.enable()

    if args.mode == "preempt":
        import preempt

        preempt.patch()                 # before test.support and the module (rule 2)

    import unittest
    from test import support

    # python -m test's default: no -u. test_socketserver asks for "network" at import, yet every
    # server it starts listens on socket_helper.HOST (loopback): it gets that one resource.
    support.use_resources = ["network"] if args.module in LOOPBACK_NETWORK else []
    support.verbose = False
    skip = read_ids(args.skip_file) if args.skip_file else set()
    only = read_ids(args.only_file) if args.only_file else None

    cwd = tempfile.mkdtemp(prefix=f"cpy-{args.module}-")
    os.chdir(cwd)                       # regrtest runs tests in a temporary directory too
    try:
        mod = __import__(f"test.{args.module}", fromlist=["*"])
        tests = [t for t in flatten(unittest.defaultTestLoader.loadTestsFromModule(mod))
                 if short_id(t, args.module) not in skip
                 and (only is None or short_id(t, args.module) in only)]
    except support.ResourceDenied as e:   # requires() at import: python -m test skips it
        emit(ev="module_skipped", detail=str(e))
        emit(ev="done")
        return 0
    except BaseException:
        emit(ev="import_error", detail=traceback.format_exc()[-4000:])
        return 2
    emit(ev="loaded", n=len(tests))
    suite = unittest.TestSuite(tests)
    result = make_result_class(unittest, args.module, args.test_timeout)()

    if args.mode == "plain":
        suite.run(result)
        emit(ev="done")
        return 0

    import preempt

    box = {"ticks": 0, "stop": False, "stats": None}

    def ticker() -> None:
        # also the hang reporter: faulthandler's dump at the deadline shows only the hub's
        # stack, so 5 s before it the goroutines' own stacks go to stderr (preempt.dump())
        dump_after = max(1.0, args.test_timeout - 5.0)
        while not box["stop"]:
            preempt.sleep(args.tick_ms / 1000.0)
            box["ticks"] += 1
            if (result.t0 and not result.dumped
                    and time.monotonic() - result.t0 > dump_after):
                result.dumped = True
                os.write(2, ("\n=== preempt.dump() of a test that is hanging ===\n"
                             + preempt.dump()).encode())

    def start_offload_pool() -> None:
        # The offload pool (preempt.blocking(): the resolver's getaddrinfo runs there) starts
        # its threads lazily and keeps them until run() ends (offload.py rule 1). Started in the
        # middle of a test, they look like threads the test leaked to CPython's thread checks
        # (threading_helper.wait_threads_exit, reap_threads: _thread._count() must come back),
        # which then fail after 30 s. So the runtime's threads exist before the first test, as
        # if the pool were started with run(): all of them, one blocking call each at once.
        n = int(os.environ.get("PREEMPT_OFFLOAD_THREADS", "4"))
        wg = preempt.WaitGroup()
        wg.add(n)

        def one() -> None:
            try:
                preempt.blocking(time.sleep, 0.05)   # the stdlib's sleep in a pool thread
            finally:
                wg.done()

        for _ in range(n):
            preempt.go(one)
        wg.wait()

    def run_suite() -> None:
        # The ticker first: blocking() submits to the pool before it counts the call as pending
        # I/O, and under patch() submit() itself may park (the pool's locks are green); a call
        # that completes meanwhile is counted off early, and with nothing else pending the hub
        # calls that a deadlock (BUG, reported with issue 24). The ticker's timer is pending.
        preempt.go(ticker, name="ticker")
        start_offload_pool()
        try:
            suite.run(result)
        finally:
            box["stop"] = True
            box["stats"] = preempt.stats()

    try:
        preempt.run(run_suite)
    except BaseException:
        emit(ev="runtime_error", detail=traceback.format_exc()[-4000:])
    st = box["stats"] or {}
    paths = {k: st.get(k, {}).get("count", 0) for k in ("sync", "async", "timer")}
    emit(ev="stats", preemptions=sum(paths.values()), paths=paths, ticks=box["ticks"],
         switches=st.get("switches", 0), spawned=st.get("spawned", 0))
    emit(ev="done")
    return 0


if __name__ == "__main__":
    sys.exit(main())

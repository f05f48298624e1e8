#!/usr/bin/env python3
"""One child of ``run_gevent_tests.py``: one gevent test file, plain or under enable().

    python _child.py --mode plain|preempt --module test__event --out EVENTS.jsonl

What it does, in order:

1. ``chdir`` to gevent's tests directory (gevent's runner runs every file there: some read
   their own files, certificates, helper scripts by relative path).
2. Imports ``gevent.tests.<module>``: the module's own ``monkey.patch_all()`` (most files do it
   at the top) runs first, as when gevent's runner starts the file.
3. In ``preempt`` mode only, then calls ``preempt.gevent.enable()`` on the main thread, after
   the patching: enable() imports ssl and threading, which patch_all() must not find imported
   earlier (a MonkeyPatchWarning some tests assert is absent).
4. Runs the module's tests with unittest and writes one JSON line per outcome, then a ``stats``
   line with the bridge's preemption count (``preempt.gevent.stats()``) and ``done``.

The events file is appended line by line and flushed: if the child hangs and is killed the
parent still knows which test it was in.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import traceback
import unittest


class Events:
    def __init__(self, path: str) -> None:
        self.f = open(path, "a", buffering=1)

    def __call__(self, ev: str, **kw) -> None:
        kw["ev"] = ev
        self.f.write(json.dumps(kw) + "\n")
        self.f.flush()


def test_id(test: unittest.TestCase) -> str:
    """``Class.method`` without the module: the same in both modes."""
    tid = test.id()
    parts = tid.split(".")
    return ".".join(parts[-2:]) if len(parts) >= 2 else tid


class Result(unittest.TextTestResult):
    def __init__(self, emit, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.emit = emit

    def startTest(self, test):
        self.emit("start", id=test_id(test))
        super().startTest(test)

    def _out(self, test, outcome, detail=""):
        self.emit("result", id=test_id(test), outcome=outcome, detail=detail[-3000:])

    def addSuccess(self, test):
        super().addSuccess(test)
        self._out(test, "pass")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._out(test, "fail", self.failures[-1][1])

    def addError(self, test, err):
        super().addError(test, err)
        # setUpClass errors come with a _ErrorHolder, not a TestCase
        self._out(test, "error", self.errors[-1][1])

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._out(test, "skip", reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self._out(test, "xfail")

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._out(test, "xpass")

    def addSubTest(self, test, subtest, err):
        super().addSubTest(test, subtest, err)
        if err is not None:
            self._out(test, "fail", "".join(traceback.format_exception(*err)))


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=("plain", "preempt"), required=True)
    ap.add_argument("--module", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--slice", type=float, default=0.010)
    ap.add_argument("--skip-file", default=None, help="test ids not to run (done or hung)")
    ap.add_argument("--only-file", default=None, help="run only these test ids")
    args = ap.parse_args()
    emit = Events(args.out)

    import gevent.tests
    os.chdir(os.path.dirname(gevent.tests.__file__))
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        suite = unittest.defaultTestLoader.loadTestsFromName("gevent.tests." + args.module)
    except BaseException:
        emit("import_error", detail=traceback.format_exc()[-3000:])
        return 2
    def ids(path):
        return set(open(path).read().split()) if path else None
    skip, only = ids(args.skip_file) or set(), ids(args.only_file)

    def keep(t):
        return test_id(t) not in skip and (only is None or test_id(t) in only)

    def filtered(s):
        out = unittest.TestSuite()
        for t in s:
            if isinstance(t, unittest.TestSuite):
                sub = filtered(t)
                if sub.countTestCases():
                    out.addTest(sub)
            elif keep(t):
                out.addTest(t)
        return out
    suite = filtered(suite)
    stats = None
    if args.mode == "preempt":
        import preempt.gevent
        if not preempt.gevent.enabled():     # hook/sitecustomize.py may have, at patch_all()
            preempt.gevent.enable(slice=args.slice)
    t0 = time.monotonic()
    runner = unittest.TextTestRunner(stream=sys.stderr, verbosity=2,
                                     resultclass=lambda *a, **kw: Result(emit, *a, **kw))
    try:
        runner.run(suite)
    finally:
        if args.mode == "preempt":
            import preempt.gevent
            stats = preempt.gevent.stats()
        emit("stats", secs=time.monotonic() - t0, **(stats or {}))
        emit("done")
    sys.stdout.flush()
    sys.stderr.flush()
    # gevent's tests leave greenlets and threads behind now and then: do not wait for them
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""CPython's own network tests, plain and under ``preempt.patch()``: no new failure allowed.

    python tests/cpython/run_stdlib_tests.py [--python PY] [MODULE ...]

For each module, two fresh child processes of the same interpreter (``_child.py`` says what each
does): a plain baseline, and the same tests in a goroutine under ``preempt.run()`` with
``patch()`` applied before the module is imported and a 1 ms ticker goroutine beside it. Then
per test:

1. A test that passes in the baseline and fails, errors, hangs or is not run under preempt is a
   NEW failure (a test that fails or is skipped in the baseline says nothing about preempt).
2. A new failure listed in ``expected_failures.txt`` (``module Class.test  # reason``) is
   expected; every entry says why: by design, or ``BUG:`` and the bug being fixed.
3. A listed entry whose test passes now is STALE: the list must not outlive its reasons. Only
   an entry marked ``BUG(flaky):`` (a race that fails most runs, not all) may pass.
4. A module whose preempt run counted no preemption fails: the run proved nothing. Unless the
   run was too short to require one: under ``MIN_TICKS`` (100) ticks of the 1 ms ticker, a
   module that spends its few dozen milliseconds parked on I/O need not be computing when a
   timer comes due (test_wsgiref, ~60 ticks: 0 to 50 preemptions from run to run); it is
   reported as too short, not failed.
5. A hang (no outcome within ``--test-timeout``) kills the child; the test is recorded as
   ``hang`` and a new child runs the module's remaining tests. ``--module-timeout`` bounds a
   whole mode of a module: what has not run by then is ``not run``, and the module is named.

A new failure not listed is run again once, alone in a fresh preempt child: if it passes there it
is reported as FLAKY (a warning, printed with its first failure) rather than as a failure, since on
a shared 2-core machine CPython's own timing-based tests also fail now and then in a plain run.

Exit status: 0 when every module is clean (rules 1-4), 1 otherwise. ``--json`` writes the whole
comparison for the pytest entry (tests/test_stdlib_suites.py).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import List, Optional

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from _suite_harness import (ModeRun, compare, keep_unless_flaky, print_findings,  # noqa: E402
                            print_table, read_expected, run_attempts)
CHILD = HERE / "_child.py"
EXPECTED = HERE / "expected_failures.txt"

MODULES = ["test_socket", "test_ssl", "test_httplib", "test_urllib2_localnet",
           "test_socketserver", "test_selectors", "test_smtplib", "test_ftplib", "test_poplib",
           "test_xmlrpc", "test_wsgiref", "test_httpservers"]

MIN_TICKS = 100                       # rule 4: a shorter preempt run need not be preempted


def run_mode(py: str, module: str, mode: str, work: Path, *, test_timeout: float,
             module_timeout: float, only: Optional[List[str]] = None, tag: str = "",
             not_these: List[str] = ()) -> ModeRun:
    """Runs ``module`` in ``mode`` until every test has an outcome (rule 5), but for
    ``not_these`` (the tests that hung or crashed in the baseline: they cannot be new failures,
    and each would cost a whole ``test_timeout`` again)."""
    r = ModeRun()
    t0 = time.monotonic()

    def cmd(out: Path, skipf: Path) -> List[str]:
        return [py, str(CHILD), "--mode", mode, "--module", module, "--out", str(out),
                "--skip-file", str(skipf), "--test-timeout", str(test_timeout)]

    run_attempts(r, mode, work, f"{module}.{mode}{tag}", cmd, what="module", attempts=30,
                 timeout=lambda: max(1.0, module_timeout - (time.monotonic() - t0)),
                 only=only, not_these=not_these, hang_status=(1,),
                 timeout_ends_unit=f"module timeout ({module_timeout:.0f} s) reached: "
                                   "the tests not yet run are 'not run'")
    r.secs = time.monotonic() - t0
    return r


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("modules", nargs="*", default=MODULES)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--expected", default=str(EXPECTED))
    ap.add_argument("--test-timeout", type=float, default=60.0)
    ap.add_argument("--module-timeout", type=float, default=900.0)
    ap.add_argument("--workdir", default=None, help="keep the children's logs here")
    ap.add_argument("--json", default=None, help="write the comparison here")
    ap.add_argument("--no-rerun", action="store_true", help="no second try for new failures")
    args = ap.parse_args(argv)

    ver = subprocess.check_output([args.python, "-c", "import sys; print('%d.%d' % "
                                   "sys.version_info[:2])"], text=True).strip()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="cpython-tests-"))
    work.mkdir(parents=True, exist_ok=True)
    exp = {(e.module, e.test): e for e in read_expected(Path(args.expected)) if e.applies(ver)}
    kw = dict(test_timeout=args.test_timeout, module_timeout=args.module_timeout)
    print(f"CPython {ver} ({args.python}); logs in {work}", flush=True)

    rows, report, bad = [], {"python": ver, "modules": {}}, False
    t_all = time.monotonic()
    for module in args.modules:
        base = run_mode(args.python, module, "plain", work, **kw)
        pre = run_mode(args.python, module, "preempt", work, **kw,
                       not_these=[t for t, o in base.outcomes.items() if o in ("hang", "crash")])
        cmp = compare(module, base, pre, exp, "BUG(flaky):")
        flaky = []
        if cmp["new"] and not args.no_rerun:
            flaky = keep_unless_flaky(cmp, run_mode(args.python, module, "preempt", work,
                                                    tag=".rerun",
                                                    only=[t for t, _ in cmp["new"]], **kw))
        cmp["flaky"] = flaky
        st = pre.stats or {}
        npre = st.get("preemptions", 0)
        too_short = st.get("ticks", 0) < MIN_TICKS
        no_preemption = bool(pre.outcomes) and npre == 0 and not too_short
        no_tests = not base.outcomes and not base.skipped
        mod_bad = bool(cmp["new"] or cmp["stale"] or no_preemption or no_tests)
        bad |= mod_bad
        rows.append((module, len(base.outcomes), base.summary(), pre.summary(),
                     f"{len(cmp['new'])}+{len(cmp['listed'])}L",
                     f"{npre} ({st.get('ticks', 0)} ticks)",
                     f"{base.secs:.0f}+{pre.secs:.0f}s"))
        report["modules"][module] = {
            "tests": len(base.outcomes), "base": base.outcomes, "preempt": pre.outcomes,
            "new": cmp["new"], "listed": cmp["listed"], "stale": cmp["stale"], "flaky": flaky,
            "newly_skipped": cmp["newly_skipped"], "stats": st, "skipped": base.skipped,
            "no_tests": no_tests, "problems": base.problems +
            pre.problems, "no_preemption": no_preemption, "secs": base.secs + pre.secs,
            "details": {t: pre.details.get(t, "") for t, _ in cmp["new"] + flaky}}
        print(f"--- {module}: {rows[-1][1]} tests, baseline {rows[-1][2]}, preempt {rows[-1][3]}"
              f" (pass/fail/skip), {npre} preemptions, {rows[-1][6]}", flush=True)
        print_findings(module, cmp, flaky, pre.details, exp)
        for (m, tid), e in sorted(exp.items()):
            if m == module and base.outcomes and tid not in base.outcomes:
                print(f"  warning: listed but no such test here: {module} {tid} "
                      f"(renamed? limit the entry with py=)")
        if base.skipped:
            print(f"  SKIPPED MODULE (as python -m test skips it): {base.skipped}")
        if no_preemption:
            print(f"  NO PREEMPTION: the preempt run of {module} counted none (rule 4)")
        elif pre.outcomes and npre == 0:
            print(f"  no preemption, but the run was too short to require one: "
                  f"{st.get('ticks', 0)} ticks < {MIN_TICKS} (rule 4)")
        for p in base.problems + pre.problems:
            print("  " + p.splitlines()[0])
        sys.stdout.flush()
    total = time.monotonic() - t_all

    print(f"\nCPython {ver}: {len(args.modules)} modules in {total:.0f} s "
          f"(pass/fail/skip; new = not listed + L listed)")
    print_table(("module", "tests", "baseline", "preempt", "new", "preemptions", "time"), rows)
    report["secs"] = total
    report["ok"] = not bad
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    print("OK: no new failure" if not bad else "FAILED: see NEW / STALE / NO PREEMPTION above")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())

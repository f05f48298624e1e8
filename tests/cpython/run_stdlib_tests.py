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
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

HERE = Path(__file__).resolve().parent
CHILD = HERE / "_child.py"
EXPECTED = HERE / "expected_failures.txt"

MODULES = ["test_socket", "test_ssl", "test_httplib", "test_urllib2_localnet",
           "test_socketserver", "test_selectors", "test_smtplib", "test_ftplib", "test_poplib",
           "test_xmlrpc", "test_wsgiref", "test_httpservers"]

MIN_TICKS = 100                       # rule 4: a shorter preempt run need not be preempted
PASSED = ("pass", "xfail")            # outcomes that count as the test working
FAILED = ("fail", "error", "xpass", "hang", "crash", "not run")


@dataclass
class ModeRun:
    """Everything one mode of one module produced, over all its children."""
    outcomes: Dict[str, str] = field(default_factory=dict)
    details: Dict[str, str] = field(default_factory=dict)
    stats: Optional[dict] = None
    skipped: str = ""                  # the whole module was skipped: why
    problems: List[str] = field(default_factory=list)   # import errors, hangs, timeouts
    secs: float = 0.0
    children: int = 0

    def count(self, *kinds: str) -> int:
        return sum(1 for o in self.outcomes.values() if o in kinds)


def read_events(path: Path) -> List[dict]:
    out = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    return out


def tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


def run_mode(py: str, module: str, mode: str, work: Path, *, test_timeout: float,
             module_timeout: float, only: Optional[List[str]] = None, tag: str = "",
             not_these: List[str] = ()) -> ModeRun:
    """Runs ``module`` in ``mode`` until every test has an outcome (rule 5), but for
    ``not_these`` (the tests that hung or crashed in the baseline: they cannot be new failures,
    and each would cost a whole ``test_timeout`` again)."""
    r = ModeRun()
    t0 = time.monotonic()
    hung: List[str] = list(not_these)
    for attempt in range(1, 30):
        r.children = attempt
        stem = f"{module}.{mode}{tag}.{attempt}"
        out, log, skipf = work / f"{stem}.jsonl", work / f"{stem}.log", work / f"{stem}.skip"
        out.unlink(missing_ok=True)
        skipf.write_text("".join(f"{t}\n" for t in list(r.outcomes) + hung))
        cmd = [py, str(CHILD), "--mode", mode, "--module", module, "--out", str(out),
               "--skip-file", str(skipf), "--test-timeout", str(test_timeout)]
        if only is not None:
            onlyf = work / f"{stem}.only"
            onlyf.write_text("".join(f"{t}\n" for t in only))
            cmd += ["--only-file", str(onlyf)]
        left = module_timeout - (time.monotonic() - t0)
        timed_out = False
        with open(log, "wb") as logf:
            p = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
            try:
                p.wait(timeout=max(1.0, left))
            except subprocess.TimeoutExpired:
                timed_out = True
                os.killpg(p.pid, 9)
                p.wait()
        current = None
        done = False
        for ev in read_events(out):
            kind = ev["ev"]
            if kind == "start":
                current = ev["id"]
            elif kind == "result":
                # a subtest failure is reported before the test's end: the first outcome holds
                r.outcomes.setdefault(ev["id"], ev["outcome"])
                if ev.get("detail") and ev["id"] not in r.details:
                    r.details[ev["id"]] = ev["detail"]
                if ev["id"] == current:
                    current = None
            elif kind == "module_skipped":
                r.skipped = ev["detail"]
            elif kind == "stats":
                r.stats = ev
            elif kind == "import_error":
                r.problems.append(f"{mode}: the module did not import:\n{ev['detail']}")
                done = True
            elif kind == "runtime_error":
                r.problems.append(f"{mode}: preempt.run() raised:\n{ev['detail']}")
            elif kind == "done":
                done = True
        if done and not timed_out:
            break
        if current is None:
            r.problems.append(f"{mode}: child exited {p.returncode} outside any test "
                              f"(log {log}):\n{tail(log, 1500)}")
            break
        why = "hang" if (timed_out or p.returncode == 1) else "crash"
        r.outcomes[current] = why
        r.details[current] = f"{why} (exit {p.returncode}; log {log}):\n{tail(log)}"
        hung.append(current)
        r.problems.append(f"{mode}: {current}: {why} (exit status {p.returncode})")
        if timed_out:
            r.problems.append(f"{mode}: module timeout ({module_timeout:.0f} s) reached: "
                              f"the tests not yet run are 'not run'")
            break
    r.secs = time.monotonic() - t0
    return r


@dataclass
class Expected:
    module: str
    test: str
    reason: str
    pythons: Tuple[str, ...] = ()       # e.g. ("3.13",): only there; () = everywhere

    def applies(self, ver: str) -> bool:
        return not self.pythons or ver in self.pythons


def read_expected(path: Path) -> List[Expected]:
    """``module Class.test [py=3.12,3.13]  # reason``: a reason is required (rule 2)."""
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        body, sep, reason = line.partition("#")
        words = body.split()
        if not sep or not reason.strip() or len(words) not in (2, 3):
            raise SystemExit(f"{path}:{n}: want 'module Class.test [py=3.X,...]  # reason': {line}")
        pys: Tuple[str, ...] = ()
        if len(words) == 3:
            if not words[2].startswith("py="):
                raise SystemExit(f"{path}:{n}: third word must be py=3.X[,3.Y]: {line}")
            pys = tuple(words[2][3:].split(","))
        out.append(Expected(words[0], words[1], reason.strip(), pys))
    return out


def first_line(detail: str) -> str:
    lines = [ln for ln in detail.strip().splitlines() if ln.strip()]
    return lines[-1][:160] if lines else ""


def compare(module: str, base: ModeRun, pre: ModeRun, expected: Dict[Tuple[str, str], Expected]
            ) -> dict:
    new, listed, stale = [], [], []
    for tid, b in sorted(base.outcomes.items()):
        if b not in PASSED:
            continue
        p = pre.outcomes.get(tid, "not run")
        e = expected.get((module, tid))
        if p in PASSED or p == "skip":
            if e is not None and p in PASSED and not e.reason.startswith("BUG(flaky):"):
                stale.append(tid)
            continue
        (listed if e is not None else new).append((tid, p))
    newly_skipped = sorted(t for t, b in base.outcomes.items()
                           if b in PASSED and pre.outcomes.get(t) == "skip")
    return {"new": new, "listed": listed, "stale": stale, "newly_skipped": newly_skipped}


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
        cmp = compare(module, base, pre, exp)
        flaky = []
        if cmp["new"] and not args.no_rerun:
            again = run_mode(args.python, module, "preempt", work, tag=".rerun",
                             only=[t for t, _ in cmp["new"]], **kw)
            keep = []
            for tid, o in cmp["new"]:
                (flaky if again.outcomes.get(tid) in PASSED else keep).append((tid, o))
            cmp["new"] = keep
        cmp["flaky"] = flaky
        st = pre.stats or {}
        npre = st.get("preemptions", 0)
        too_short = st.get("ticks", 0) < MIN_TICKS
        no_preemption = bool(pre.outcomes) and npre == 0 and not too_short
        no_tests = not base.outcomes and not base.skipped
        mod_bad = bool(cmp["new"] or cmp["stale"] or no_preemption or no_tests)
        bad |= mod_bad
        rows.append((module, len(base.outcomes),
                     f"{base.count(*PASSED)}/{base.count(*FAILED)}/{base.count('skip')}",
                     f"{pre.count(*PASSED)}/{pre.count(*FAILED)}/{pre.count('skip')}",
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
        for tid, o in cmp["new"]:
            print(f"  NEW {o}: {module} {tid}\n      {first_line(pre.details.get(tid, ''))}")
        for tid, o in flaky:
            print(f"  FLAKY (passed when run again): {module} {tid} ({o})\n"
                  f"      {first_line(pre.details.get(tid, ''))}")
        for tid, o in cmp["listed"]:
            print(f"  listed {o}: {module} {tid}  # {exp[(module, tid)].reason}")
        for tid in cmp["stale"]:
            print(f"  STALE (listed, but passes now): {module} {tid}")
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
    head = ("module", "tests", "baseline", "preempt", "new", "preemptions", "time")
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    report["secs"] = total
    report["ok"] = not bad
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1))
    print("OK: no new failure" if not bad else "FAILED: see NEW / STALE / NO PREEMPTION above")
    return 0 if not bad else 1


if __name__ == "__main__":
    sys.exit(main())

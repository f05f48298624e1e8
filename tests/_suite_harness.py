"""What the two foreign-suite harnesses share: CPython's network tests under ``patch()``
(``tests/cpython/run_stdlib_tests.py``) and gevent's suite under ``enable()``
(``tests/gevent_suite/run_gevent_tests.py``).

Both run every unit (a CPython test module, a gevent test file) twice in fresh children of
one interpreter — plain, then under preempt — each child writing one JSON event per line
(``start``, ``result``, ``stats``, ``import_error``, ``done``...; the ``_child.py`` beside each
harness). A child that hangs or crashes inside a test is replaced by a new one that skips what
already has an outcome, until every test has one. The two runs are then compared test by test
against a list of expected failures, each with its reason. The rules of each harness are in
its docstring; this module holds the mechanics they share.

Imported by the harnesses as scripts (they put ``tests/`` on ``sys.path``); pure stdlib.
"""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence, Tuple

PASSED = ("pass", "xfail")            # outcomes that count as the test working
FAILED = ("fail", "error", "xpass", "hang", "crash", "not run")


@dataclass
class ModeRun:
    """Everything one mode of one unit produced, over all its children."""
    outcomes: Dict[str, str] = field(default_factory=dict)
    details: Dict[str, str] = field(default_factory=dict)
    stats: Optional[dict] = None       # the last child's ``stats`` event
    preemptions: int = 0               # summed over the children's ``stats`` events
    skipped: str = ""                  # the whole unit was skipped: why
    problems: List[str] = field(default_factory=list)   # import errors, hangs, timeouts
    secs: float = 0.0
    children: int = 0

    def count(self, *kinds: str) -> int:
        return sum(1 for o in self.outcomes.values() if o in kinds)

    def summary(self) -> str:
        """pass/fail/skip counts."""
        return f"{self.count(*PASSED)}/{self.count(*FAILED)}/{self.count('skip')}"


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


def first_line(detail: str) -> str:
    lines = [ln for ln in detail.strip().splitlines() if ln.strip()]
    return lines[-1][:160] if lines else ""


def run_child(cmd: List[str], log: Path, timeout: float,
              env: Optional[Dict[str, str]] = None, cwd: Optional[str] = None
              ) -> Tuple[int, bool]:
    """Runs cmd in a session of its own, output to ``log``; kills the whole session after
    ``timeout`` seconds. Returns (exit status, timed out)."""
    with open(log, "wb") as logf:
        p = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, env=env, cwd=cwd)
        try:
            p.wait(timeout=timeout)
            return p.returncode, False
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, 9)
            p.wait()
            return p.returncode, True


def run_attempts(r: ModeRun, mode: str, work: Path, stem: str,
                 cmd: Callable[[Path, Path], List[str]], *, what: str, attempts: int,
                 timeout: Callable[[], float], only: Optional[List[str]] = None,
                 not_these: Sequence[str] = (), hang_status: Sequence[int] = (),
                 env: Optional[Dict[str, str]] = None,
                 timeout_ends_unit: str = "") -> None:
    """Runs children (``cmd(out, skip_file)``) for one mode of one unit until every test has an
    outcome: a child that dies inside a test records it as ``hang`` (timed out, or an exit
    status in ``hang_status``) or ``crash``, and the next child skips it. ``not_these``: tests
    not to run at all; ``only``: run just these. ``timeout_ends_unit``: when set, a timeout
    ends the unit with this problem (the tests not yet run stay 'not run')."""
    hung: List[str] = list(not_these)
    for attempt in range(1, attempts):
        r.children = attempt
        s = f"{stem}.{attempt}"
        out, log, skipf = work / f"{s}.jsonl", work / f"{s}.log", work / f"{s}.skip"
        out.unlink(missing_ok=True)
        skipf.write_text("".join(f"{t}\n" for t in list(r.outcomes) + hung))
        c = cmd(out, skipf)
        if only is not None:
            onlyf = work / f"{s}.only"
            onlyf.write_text("".join(f"{t}\n" for t in only))
            c += ["--only-file", str(onlyf)]
        rc, timed_out = run_child(c, log, timeout(), env)
        current, done = None, False
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
                r.preemptions += ev.get("preemptions", 0)
            elif kind == "import_error":
                r.problems.append(f"{mode}: the {what} did not import:\n{ev['detail']}")
                done = True
            elif kind == "runtime_error":
                r.problems.append(f"{mode}: preempt.run() raised:\n{ev['detail']}")
            elif kind == "done":
                done = True
        if done and not timed_out:
            break
        if current is None:
            r.problems.append(f"{mode}: child exited {rc} outside any test "
                              f"(log {log}):\n{tail(log, 1500)}")
            break
        why = "hang" if (timed_out or rc in hang_status) else "crash"
        r.outcomes[current] = why
        r.details[current] = f"{why} (exit {rc}; log {log}):\n{tail(log)}"
        hung.append(current)
        r.problems.append(f"{mode}: {current}: {why} (exit status {rc})")
        if timed_out and timeout_ends_unit:
            r.problems.append(f"{mode}: {timeout_ends_unit}")
            break


@dataclass
class Expected:
    module: str
    test: str
    reason: str
    pythons: Tuple[str, ...] = ()       # e.g. ("3.13",): only there; () = everywhere

    def applies(self, ver: str) -> bool:
        return not self.pythons or ver in self.pythons


def read_expected(path: Path, what: str = "module") -> List[Expected]:
    """``unit Class.test [py=3.12,3.13]  # reason``: a reason is required."""
    out = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        body, sep, reason = line.partition("#")
        words = body.split()
        if not sep or not reason.strip() or len(words) not in (2, 3):
            raise SystemExit(f"{path}:{n}: want '{what} Class.test [py=3.X,...]  # reason': "
                             f"{line}")
        pys: Tuple[str, ...] = ()
        if len(words) == 3:
            if not words[2].startswith("py="):
                raise SystemExit(f"{path}:{n}: third word must be py=3.X[,3.Y]: {line}")
            pys = tuple(words[2][3:].split(","))
        out.append(Expected(words[0], words[1], reason.strip(), pys))
    return out


def compare(unit: str, base: ModeRun, pre: ModeRun, expected: Dict[Tuple[str, str], Expected],
            flaky_prefix: str) -> dict:
    """Test by test: ``new`` (passed plain, not under preempt, not listed), ``listed`` (the
    same, listed), ``stale`` (listed, passes now; unless its reason starts ``flaky_prefix``),
    ``newly_skipped``."""
    new, listed, stale = [], [], []
    for tid, b in sorted(base.outcomes.items()):
        if b not in PASSED:
            continue
        p = pre.outcomes.get(tid, "not run")
        e = expected.get((unit, tid))
        if p in PASSED or p == "skip":
            if e is not None and p in PASSED and not e.reason.startswith(flaky_prefix):
                stale.append(tid)
            continue
        (listed if e is not None else new).append((tid, p))
    newly_skipped = sorted(t for t, b in base.outcomes.items()
                           if b in PASSED and pre.outcomes.get(t) == "skip")
    return {"new": new, "listed": listed, "stale": stale, "newly_skipped": newly_skipped}


def keep_unless_flaky(cmp: dict, again: ModeRun) -> list:
    """After a rerun of cmp's new failures alone: those that passed there leave ``new`` and
    are returned (FLAKY, a warning)."""
    flaky, keep = [], []
    for tid, o in cmp["new"]:
        (flaky if again.outcomes.get(tid) in PASSED else keep).append((tid, o))
    cmp["new"] = keep
    return flaky


def print_findings(unit: str, cmp: dict, flaky: list, details: Dict[str, str],
                   expected: Dict[Tuple[str, str], Expected]) -> None:
    """The lines under a unit's summary: NEW, FLAKY, listed and STALE tests."""
    for tid, o in cmp["new"]:
        print(f"  NEW {o}: {unit} {tid}\n      {first_line(details.get(tid, ''))}")
    for tid, o in flaky:
        print(f"  FLAKY (passed when run again): {unit} {tid} ({o})\n"
              f"      {first_line(details.get(tid, ''))}")
    for tid, o in cmp["listed"]:
        print(f"  listed {o}: {unit} {tid}  # {expected[(unit, tid)].reason}")
    for tid in cmp["stale"]:
        print(f"  STALE (listed, but passes now): {unit} {tid}")


def print_table(head: Tuple[str, ...], rows: List[tuple]) -> None:
    widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


def run_selected(request, marker: str, skip_why: str, harness: Path, tmp_path: Path,
                 needs: Sequence[str] = ()) -> Tuple[dict, "subprocess.CompletedProcess[str]"]:
    """The pytest entries' half: skips unless ``-m marker`` selected the test (a suite takes
    minutes) and the modules in ``needs`` import, runs ``harness`` on this interpreter and
    returns its JSON report and process."""
    import sys

    import pytest

    if marker not in (request.config.getoption("markexpr") or ""):
        pytest.skip(skip_why)
    for mod in needs:
        pytest.importorskip(mod)
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, str(harness), "--python", sys.executable,
                           "--workdir", str(tmp_path / "logs"), "--json", str(out)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(proc.stdout)
    assert out.exists(), f"the harness wrote no report (exit {proc.returncode}):\n{proc.stdout}"
    return json.loads(out.read_text()), proc


def unit_problems(units: Dict[str, dict]) -> List[str]:
    """A report's NEW and STALE tests and its units whose baseline ran no test."""
    problems: List[str] = []
    for name, m in units.items():
        problems += [f"NEW {o}: {name} {t}" for t, o in m["new"]]
        problems += [f"STALE (listed, passes now): {name} {t}" for t in m["stale"]]
        if m["no_tests"]:
            problems.append(f"{name}: the baseline ran no test: {m['problems'][:1]}")
    return problems

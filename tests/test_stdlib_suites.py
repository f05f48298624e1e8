"""CPython's own network tests under ``preempt.patch()``: no new failure (issue 24).

Runs ``tests/cpython/run_stdlib_tests.py`` on this interpreter: every module twice, plain and in a
goroutine under ``patch()`` with a 1 ms ticker beside it, and fails on

1. a test that passes plain and fails, errors, hangs or does not run under preempt, unless
   ``tests/cpython/expected_failures.txt`` lists it with its reason;
2. a listed entry (for this CPython) whose test passes now: the list must not go stale;
3. a module whose preempt run counted no preemption (it would prove nothing).

It takes minutes, so it runs only when selected: ``-m stdlib_suites`` (``pytest -m
stdlib_suites tests/test_stdlib_suites.py``); in any other run it is skipped and says so.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).parent / "cpython" / "run_stdlib_tests.py"


@pytest.mark.stdlib_suites
@pytest.mark.timeout(1800)
def test_cpython_network_suites_under_patch(request, tmp_path):
    if "stdlib_suites" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("CPython's network suites take minutes: select them with -m stdlib_suites")
    out = tmp_path / "report.json"
    proc = subprocess.run([sys.executable, str(HARNESS), "--python", sys.executable,
                           "--workdir", str(tmp_path / "logs"), "--json", str(out)],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    print(proc.stdout)
    assert out.exists(), f"the harness wrote no report (exit {proc.returncode}):\n{proc.stdout}"
    report = json.loads(out.read_text())
    problems = []
    for mod, m in report["modules"].items():
        problems += [f"NEW {o}: {mod} {t}" for t, o in m["new"]]
        problems += [f"STALE (listed, passes now): {mod} {t}" for t in m["stale"]]
        if m["no_preemption"]:
            problems.append(f"NO PREEMPTION in {mod}")
        if m["no_tests"]:
            problems.append(f"{mod}: the baseline ran no test: {m['problems'][:1]}")
    assert not problems and report["ok"] and proc.returncode == 0, (
        "\n".join(problems) + "\n\n" + proc.stdout[-6000:])

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

from pathlib import Path

import pytest
from _suite_harness import run_selected, unit_problems

HARNESS = Path(__file__).parent / "cpython" / "run_stdlib_tests.py"


@pytest.mark.stdlib_suites
@pytest.mark.timeout(1800)
def test_cpython_network_suites_under_patch(request, tmp_path):
    report, proc = run_selected(
        request, "stdlib_suites",
        "CPython's network suites take minutes: select them with -m stdlib_suites",
        HARNESS, tmp_path)
    problems = unit_problems(report["modules"])
    problems += [f"NO PREEMPTION in {mod}" for mod, m in report["modules"].items()
                 if m["no_preemption"]]
    assert not problems and report["ok"] and proc.returncode == 0, (
        "\n".join(problems) + "\n\n" + proc.stdout[-6000:])

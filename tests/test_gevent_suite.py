"""gevent's own test suite under ``preempt.gevent.enable()``: no new failure (issue 24).

Runs ``tests/gevent_suite/run_gevent_tests.py`` on this interpreter: every selected gevent test
file twice, plain and with ``enable()`` active in the test process (and, through
``tests/gevent_suite/hook/sitecustomize.py``, in every process the tests start), and fails on

1. a test that passes plain and fails, errors, hangs or does not run under preempt, unless
   ``tests/gevent_suite/expected_failures.txt`` lists it with its reason;
2. a listed entry whose test passes now (unless its reason starts ``flaky:``);
3. a file whose baseline ran no test;
4. zero preemptions summed over all the preempt processes (it would prove nothing).

It takes minutes, so it runs only when selected: ``-m gevent_suite`` (``pytest -m gevent_suite
tests/test_gevent_suite.py``); in any other run it is skipped and says so.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from _suite_harness import run_selected, unit_problems

HARNESS = Path(__file__).parent / "gevent_suite" / "run_gevent_tests.py"


@pytest.mark.gevent_suite
@pytest.mark.timeout(1800)
def test_gevent_suite_under_enable(request, tmp_path):
    report, proc = run_selected(
        request, "gevent_suite", "gevent's suite takes minutes: select it with -m gevent_suite",
        HARNESS, tmp_path, needs=("gevent",))
    problems = unit_problems(report["files"])
    if report["preemptions"] == 0:
        problems.append("NO PREEMPTION in any preempt process")
    assert not problems and report["ok"] and proc.returncode == 0, (
        "\n".join(problems) + "\n\n" + proc.stdout[-6000:])

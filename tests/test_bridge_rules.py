"""One set of rules for the runtime and both bridges (issue 26, part 3): the one "may we switch
here?" predicate (``_preempt.may_switch``), the one monitor lifecycle
(``_sysmon_core.MonitorCore``) and the one interval validation (``_timeouts.check_interval``)
are what ``preempt.run()``, ``preempt.gevent`` and ``preempt.aio`` use. Scenarios that start
the monitor run in child processes."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

pytestmark = pytest.mark.timeout(120)


def test_check_interval_accepts_every_real_and_refuses_what_the_runtime_refuses():
    from decimal import Decimal

    from preempt._runtime._timeouts import SLICE_MAX, check_interval, check_slice

    assert check_interval(Fraction(1, 100), "f()", "slice") == 0.01
    assert check_interval(Decimal("0.002"), "f()", "slice") == 0.002
    assert check_interval(3, "f()", "slice") == 3.0
    for bad, exc, words in ((0, ValueError, "> 0"), (-1, ValueError, ">= 0"),
                            (math.nan, ValueError, "NaN"), (math.inf, ValueError, "at most"),
                            (SLICE_MAX * 2, ValueError, "at most 3600"),
                            ("0.01", TypeError, "number of seconds"),
                            (True, TypeError, "number of seconds")):
        with pytest.raises(exc) as e:
            check_interval(bad, "preempt.gevent.enable()", "slice")
        assert "preempt.gevent.enable(): slice" in str(e.value) and words in str(e.value), e
    # the runtime's slice is the same rule with 0 meaning "off"
    assert check_slice(0) == 0.0 and check_slice(Fraction(1, 50)) == 0.02
    with pytest.raises(ValueError, match="at most 3600"):
        check_slice(SLICE_MAX * 2)


def test_the_bridges_no_longer_restate_the_rules():
    import preempt._bridge as bridge
    import preempt.aio as aio

    assert not hasattr(bridge, "positive_seconds")
    src_aio = open(aio.__file__).read()
    assert "_import_lock_held" not in src_aio and "in_denied" not in src_aio
    pytest.importorskip("gevent")
    import preempt.gevent as pg

    assert not hasattr(pg, "may_switch")      # gevent's own copy is gone
    assert "_classify" not in open(pg.__file__).read()


BOTH_USE_IT = """
import asyncio, sys, time
import preempt
from preempt._runtime import _preempt, _sysmon_core
calls = []
real = _preempt.may_switch
def spy(frame, **kw):
    calls.append(kw.get("held"))
    return False                     # the one predicate says no: nothing is switched
_preempt.may_switch = spy
def compute(s):
    t_end = time.monotonic() + s
    while time.monotonic() < t_end:
        pass
    return "done"
if sys.argv[1] == "gevent":
    import gevent, preempt.gevent as pg
    from fractions import Fraction
    pg.enable(slice=Fraction(1, 500))          # a Fraction is a number of seconds
    assert isinstance(pg._st.mon.core, _sysmon_core.MonitorCore)
    beats = []
    def hb():
        while True:
            beats.append(1); gevent.sleep(0.001)
    h = gevent.spawn(hb); gevent.sleep(0.005)
    n = len(beats)
    gevent.spawn(compute, 0.1).join()
    print(calls != [], pg.stats()["preemptions"], len(beats) - n <= 1)
else:
    import preempt.aio as pa
    async def go():
        task = asyncio.ensure_future(pa.run(compute, 0.1, slice=0.002))
        await asyncio.sleep(0)
        assert isinstance(pa._runner.mon.core, _sysmon_core.MonitorCore)
        return await task
    out = asyncio.run(go())
    print(calls != [], 0, out == "done")
"""


@pytest.mark.parametrize("bridge", ["gevent", "aio"])
def test_each_bridge_asks_the_one_predicate_and_runs_on_the_one_monitor(child, bridge):
    if bridge == "gevent":
        pytest.importorskip("gevent")
    asked, preemptions, rest = child(BOTH_USE_IT, bridge).split()
    assert asked == "True" and preemptions == "0" and rest == "True", (asked, preemptions, rest)


RUNTIME_USES_IT = """
import preempt
from preempt._runtime import _park
def main():
    return type(_park.sched.monitor.core).__name__
print(preempt.run(main))
"""


def test_the_runtime_runs_on_the_one_monitor(child):
    assert child(RUNTIME_USES_IT).strip() == "MonitorCore"


MISUSE = """
import asyncio
import preempt.aio as pa
async def go():
    for bad in (0, -1, float("nan"), 7200, "1"):
        try:
            await pa.run(print, slice=bad)
        except (TypeError, ValueError) as e:
            assert "preempt.aio.run(): slice" in str(e), e
        else:
            raise AssertionError(bad)
    return await pa.run(lambda: 7, slice=__import__("fractions").Fraction(1, 100))
print(asyncio.run(go()))
"""


def test_aio_slice_errors_are_clear_and_fractions_work(child):
    assert child(MISUSE).strip() == "7"

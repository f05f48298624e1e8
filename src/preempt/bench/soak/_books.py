"""The soak's books: the limits it is held to, the state every goroutine records into
(``_State``, with ``_guarded``, the body that wraps each goroutine), and the end-of-run checks
that turn that state into the result and its verdict (``_check_books``; the numbered books of
the package docstring). Imports nothing of preempt at module level, so the harness can read the
limits without loading the runtime.
"""

from __future__ import annotations

import collections
import os
import random
import struct
import traceback
from typing import Any, Dict, List, Optional

ACK_DEADLINE = 10.0      # s a signal may take to reach main before it counts as lost
FORK_DEADLINE = 15.0     # s a fork child may live before it is SIGKILLed (a hang)
DRAIN_DEADLINE = 60.0    # s the workers get to finish after the soak period
WATCHDOG_SLACK = 150.0   # s past the soak period after which faulthandler ends the process
EARLY_TOL = 50e-6        # s a timed wait may return before its timeout (clock granularity)
MAX_FOREVER = 40         # live abandoned goroutines that wait for ever
_ACK = struct.Struct("<q")
_CLAMP = bytes([0] + [1] * 255)


class SoakSignal(Exception):
    """Raised by the soak's SIGUSR1 handler; ``args[0]`` is the signal's sequence number."""


class _State:
    """Everything the soak's goroutines share. Per-goroutine counts live in each goroutine's own
    Counter and are merged when it ends (``_guarded``), so preemption never races an update."""

    def __init__(self, seconds: float, seed: int) -> None:
        self.seconds, self.seed, self.pid = seconds, seed, os.getpid()
        self.rng = random.Random(seed)
        self.n: collections.Counter = collections.Counter()
        self.failures: List[str] = []
        self.stop: Any = None                       # preempt.Event, set when the period ends
        self.quit: Any = None                       # preempt.Chan, closed when the period ends
        self.in_child = False                       # True in a fork child (its own copy)
        self.sent: Dict[tuple, int] = {}            # (lane, producer) -> values sent
        self.ledgers: List[Dict[tuple, bytearray]] = []   # one per consumer: key -> count per seq
        self.forever: List[int] = []                # abandoned goroutines that wait for ever
        self.unwound: List[int] = []                # ... whose finally ran
        self.children: set = set()                  # fork children not reaped yet
        self.ack_r, self.ack_w = os.pipe()
        os.set_blocking(self.ack_w, False)
        self.pending_seq = 0                        # the signal in flight (sender thread)
        self.sig_sent: Dict[str, List[int]] = {"SIGUSR1": [], "SIGUSR2": []}
        self.sig_lost: List[int] = []
        self.sent_at: Dict[int, float] = {}
        self.caught: Dict[int, float] = {}          # seq -> when main caught it
        self.caught_dup: List[int] = []
        self.in_worker: List[str] = []
        self.usr2_handled: List[int] = []
        self.late_usr1: List[int] = []
        self.sender_stop = False
        self.caps: List[List[int]] = []             # [A cap, B cap] per lane
        self.fork_rcs: List[Any] = []               # exit code per fork child, None if hung
        self.worst_late: List[float] = [0.0]        # s, each sleeper's worst sleep() lateness
        self.timeout_late: List[float] = []         # s, inner deadline -> Timeout, in a loop
        self.spin_cancel_s: List[float] = []        # s, cancel() -> a spinner's finally

    def fail(self, what: str) -> None:
        if not self.in_child:
            self.failures.append(what)

    def ack(self, seq: int) -> None:
        """Tells the sender thread the signal ``seq`` arrived. Any goroutine, or a handler."""
        if not self.in_child:
            try:
                os.write(self.ack_w, _ACK.pack(seq))
            except OSError:
                pass

    def rand(self) -> random.Random:
        return random.Random(self.rng.getrandbits(64))

    def go(self, name: str, fn: Any, *args: Any) -> Any:
        import preempt

        return preempt.go(_guarded, self, name, fn, self.rand(), args, name=name)


def _guarded(st: _State, name: str, fn: Any, rng: random.Random, args: tuple) -> Any:
    """Every soak goroutine's body: counts what ``fn`` did and reports what it raised."""
    import preempt
    from greenlet import GreenletExit

    c: collections.Counter = collections.Counter()
    try:
        return fn(st, c, rng, *args)
    except SoakSignal as e:            # rule 2 of _signals.py broken: it landed here, not in main
        st.in_worker.append(f"#{e.args[0]} in {name}")
        st.fail(f"SIGUSR1 exception #{e.args[0]} was raised in goroutine {name!r}, not main")
        st.ack(e.args[0])
    except (GreenletExit, KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:
        st.fail(f"goroutine {name!r} raised {type(e).__name__}: {e}\n"
                + "".join(traceback.format_exception(type(e), e, e.__traceback__)[-12:]))
    finally:
        with preempt.no_preempt():
            st.n.update(c)
    return None



def _check_books(st: _State, m: Dict[str, Any], wall: float, no_native: Optional[str]) -> Dict[str, Any]:
    """Checks the books after run() returned; the result, with its verdict."""
    n = st.n
    sent = sum(st.sent.values())
    received = lost = dup = phantom = 0
    for key in set(st.sent) | {k for led in st.ledgers for k in led}:
        count = st.sent.get(key, 0)
        union = 0                              # bit 8*seq set: some consumer received seq
        for led in st.ledgers:
            b = led.get(key)
            if not b:
                continue
            total, nonzero = sum(b), len(b) - b.count(0)
            received += total
            dup += total - nonzero             # received more than once by one consumer
            tail = b[count:]
            phantom += len(tail) - tail.count(0)
            x = int.from_bytes(bytes(b[:count]).translate(_CLAMP), "little")
            dup += (union & x).bit_count()     # ... or by two
            union |= x
        lost += count - union.bit_count()
    if lost or dup or phantom or received != sent:
        st.fail(f"values: {sent} sent, {received} received: {lost} lost, {dup} duplicated, "
                f"{phantom} received but never sent")
    if m["mutex_value"] is not None and m["mutex_value"] != n["mutex increments"]:
        st.fail(f"Mutex counter is {m['mutex_value']}, but {n['mutex increments']} increments were made")
    usr1 = st.sig_sent["SIGUSR1"]
    usr1_caught = len(set(usr1) & set(st.caught))
    if usr1_caught != len(usr1) or st.sig_lost:
        st.fail(f"SIGUSR1: {len(usr1)} sent, {usr1_caught} caught in main, {len(st.in_worker)} in a "
                f"worker, {len(st.sig_lost)} lost (not acknowledged within {ACK_DEADLINE:.0f} s), "
                f"{len(st.late_usr1)} arrived after the soak")
    usr2 = st.sig_sent["SIGUSR2"]
    if sorted(set(st.usr2_handled)) != sorted(usr2):
        st.fail(f"SIGUSR2: {len(usr2)} sent, {len(set(st.usr2_handled))} handled")
    if len(st.unwound) != len(st.forever):
        st.fail(f"{len(st.forever)} goroutines were abandoned waiting for ever, but only "
                f"{len(st.unwound)} were unwound when run() ended")
    if len(st.fork_rcs) != n["forks"]:
        st.fail(f"{n['forks']} forks, but {len(st.fork_rcs)} children reaped")
    lat = sorted((st.caught[s] - st.sent_at[s]) * 1e3 for s in usr1 if s in st.caught)
    stats = m["stats"]
    pre = {k: stats.get(k, {}).get("count", 0) for k in ("sync", "async", "timer")}
    ok = not st.failures
    return {
        "seconds": st.seconds, "seed": st.seed, "wall_s": wall, "soak_s": m["wall_soak"],
        "drain_s": m["wall_drain"], "ok": ok, "verdict": "PASS" if ok else "FAIL",
        "failures": st.failures[:50], "failures_total": len(st.failures),
        "values": {"channels_caps": st.caps, "producers": len(st.sent), "consumers": len(st.ledgers),
                   "sent": sent, "received": received, "lost": lost, "duplicated": dup,
                   "phantom": phantom, "relayed": n["relayed"]},
        "select": {"calls": n["select"], "timed_out": n["select timed out"],
                   "default_taken": n["select default"]},
        "timeouts": {"zero": n["timeout 0"], "tiny_under_100us": n["timeout tiny"]},
        "mutex": {"increments": n["mutex increments"], "counter": m["mutex_value"]},
        "waitgroup": {"batches": n["waitgroup batches"], "goroutines": n["waitgroup goroutines"]},
        "event_wait": {"calls": n["event waits"], "set": n["event set"], "timed_out": n["event timed out"],
                       "early": n["event early"]},
        "join": {"calls": n["joins"], "joined": n["joined"], "timed_out": n["join timed out"],
                 "abandoned": n["abandoned"], "waiting_for_ever": len(st.forever),
                 "unwound_at_end": len(st.unwound)},
        "sleep": {"calls": n["sleeps"], "early": n["sleep early"], "worst_late_us": max(st.worst_late) * 1e6},
        "cpu": {"chunks": n["cpu chunks"]},
        "native": {"skipped": no_native} if no_native else {"calls": n["native calls"]},
        "signals": {"usr1_sent": len(usr1), "usr1_caught_in_main": usr1_caught,
                    "usr1_in_worker": len(st.in_worker), "usr1_lost": len(st.sig_lost),
                    "usr1_duplicated": len(st.caught_dup), "usr1_late": len(st.late_usr1),
                    "usr1_to_main_ms": _pct(lat), "usr2_sent": len(usr2),
                    "usr2_handled": len(set(st.usr2_handled)),
                    "main_waits": m["main_waits"], "main_interrupted": m["main_interrupted"]},
        "fork": {"forks": n["forks"], "ok": n["forks ok"], "failed": n["forks failed"],
                 "hung": n["forks hung"]},
        "cancellation": {"cancels": n["cancels"], "lane_ops": n["cancel lane ops"],
                         "lane_values": n["cancel lane values"],
                         "lane_timeouts": n["cancel lane timeouts"],
                         "lane_absorbed": n["cancel lane absorbed"],
                         "lane_ended_by_cancel": n["cancel lane ended by cancel"],
                         "groups": {k: n["groups " + k] for k in ("fail", "timeout", "cancel", "owner")},
                         "group_members": n["group members"], "group_failures": n["group failures"],
                         "timeouts_fired": n["timeouts fired"],
                         "timeouts_short": n["timeouts not needed"] + n["timeouts short fired"],
                         "timeout_late_us": _pct([x * 1e6 for x in st.timeout_late]),
                         "spinners_cancelled": n["spinners cancelled"],
                         "spin_cancel_us": _pct([x * 1e6 for x in st.spin_cancel_s])},
        "preemptions": pre, "goroutines_spawned": stats.get("spawned", 0),
        "switches": stats.get("switches", 0),
    }


def _pct(xs: List[float]) -> Dict[str, float]:
    from .._stats import percentiles

    if not xs:
        return {}
    p = percentiles(xs)
    return {"p50": p["p50"], "p99": p["p99"], "max": p["max"]}

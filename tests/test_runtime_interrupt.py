"""An interrupt never loses a value: a goroutine whose wait was already completed (a channel
handed it a value, or took its value) when KeyboardInterrupt or the end of ``run()`` reaches it
finishes the operation first; the exception comes at its next checkpoint (trio's rule: an
operation that succeeded is not undone by a cancellation that arrives late).

Each scenario runs in a child process (SIGINT is real there).
"""

from __future__ import annotations

import textwrap

import pytest

pytestmark = pytest.mark.timeout(120)

PRE = """
import os, signal, preempt

def sigint_soon():
    os.kill(os.getpid(), signal.SIGINT)
    for _ in range(10000):         # the Python-level handler runs at one of these bytecodes
        pass
"""


def test_value_handed_to_main_survives_keyboard_interrupt(child):
    out = child(PRE + textwrap.dedent("""
        got = []
        def main():
            ch = preempt.Chan()
            def sender():
                ch.send(42)            # main is now runnable with 42 in hand
                sigint_soon()
            preempt.go(sender)
            try:
                got.append(ch.recv())
                preempt.sleep(0.5)     # the next checkpoint
                print("no KeyboardInterrupt")
            except KeyboardInterrupt:
                print("KI after", got)
        preempt.run(main)
    """))
    assert "KI after [42]" in out, out


def test_pending_interrupt_reaches_main_while_it_computes(child):
    out = child(PRE + textwrap.dedent("""
        got = []
        def main():
            ch = preempt.Chan()
            def sender():
                ch.send(7)
                sigint_soon()
            preempt.go(sender)
            try:
                got.append(ch.recv())
                x = 0
                while True:            # no blocking operation: the preemption hook delivers it,
                    x += 1             # with the C sysmon or the pure-Python monitor alike
            except KeyboardInterrupt:
                print("KI after", got)
        preempt.run(main)
    """))
    assert "KI after [7]" in out, out


def test_run_raises_interrupt_that_came_after_main_got_its_value(child):
    out = child(PRE + textwrap.dedent("""
        got = []
        def main():
            ch = preempt.Chan()
            def sender():
                ch.send("v")
                sigint_soon()
            preempt.go(sender)
            got.append(ch.recv())
            return "result"
        try:
            preempt.run(main)
            print("no KeyboardInterrupt")
        except KeyboardInterrupt:
            print("run raised KI after", got)
    """))
    assert "run raised KI after ['v']" in out, out


def test_receiver_killed_at_shutdown_keeps_the_value_handed_to_it(child):
    out = child("""
        import preempt
        seen = []
        def receiver(ch):
            try:
                while True:
                    # The kill asks for a preemption at once, and a pending interrupt may be
                    # raised at any safe-point, the one right after recv() returned included;
                    # no_preempt() defers it past the append (where it is raised: block exit).
                    with preempt.no_preempt():
                        seen.append(ch.recv())
            finally:
                seen.append("exit")
        def main():
            ch = preempt.Chan()
            preempt.go(receiver, ch)
            preempt.sleep(0.01)        # the receiver parks in recv()
            ch.send(1)                 # handed over; the receiver has not run yet
            return "done"              # run() now kills the leftovers
        assert preempt.run(main) == "done"
        print("seen", seen)
    """)
    assert "seen [1, 'exit']" in out, out


def test_sender_killed_at_shutdown_after_its_value_was_taken_sees_send_return(child):
    out = child("""
        import preempt
        log = []
        def sender(ch):
            try:
                with preempt.no_preempt():   # the kill's pending GreenletExit may be raised at
                    ch.send(1)               # any safe-point after send returned: not before
                    log.append("sent 1")     # the log (it comes at the block's end)
                ch.send(2)             # nobody takes this one
                log.append("sent 2")
            finally:
                log.append("exit")
        def main():
            ch = preempt.Chan()
            preempt.go(sender, ch)
            preempt.sleep(0.01)        # the sender parks in send(1)
            return ch.recv()           # takes 1; the sender has not run yet
        assert preempt.run(main) == 1
        print("log", log)
    """)
    assert "log ['sent 1', 'exit']" in out, out


def test_select_winner_is_kept_when_interrupted(child):
    out = child(PRE + textwrap.dedent("""
        got = []
        def main():
            a, b = preempt.Chan(), preempt.Chan()
            def sender():
                b.send("from b")
                sigint_soon()
            preempt.go(sender)
            try:
                got.append(preempt.select(preempt.Recv(a), preempt.Recv(b)))
                preempt.gosched()      # a checkpoint
                print("no KeyboardInterrupt")
            except KeyboardInterrupt:
                print("KI after", got)
        preempt.run(main)
    """))
    assert "KI after [(1, 'from b')]" in out, out


def test_interrupt_of_a_wait_not_yet_completed_is_immediate(child):
    # The other side of the rule: a wait nobody completed is undone and the exception is
    # raised right there (the value sent later goes to the next receiver).
    out = child(PRE + textwrap.dedent("""
        def main():
            ch = preempt.Chan(cap=1)
            def interrupter():
                sigint_soon()
                ch.send("later")
            preempt.go(interrupter)
            try:
                ch.recv()
                print("recv returned")
            except KeyboardInterrupt:
                preempt.sleep(0.01)
                print("KI in recv; buffered:", len(ch), ch.recv())
        preempt.run(main)
    """))
    assert "KI in recv; buffered: 1 later" in out, out

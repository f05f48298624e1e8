"""errno across switches (``_runtime/_errno.py``): a goroutine, or a greenlet of a bridge, that is
switched out finds its own errno when it is switched back in, whatever the others did to the
M's errno meanwhile. Each scenario runs in a child process (preemption, signals)."""

from __future__ import annotations

import pytest
from conftest import need_module

pytestmark = pytest.mark.timeout(120)

# errno is written and read at its address (the cell the runtime keeps it through), never
# through a call: nothing but the switch under test stands between the write and the read.
KEEPS = """
import errno, sys, preempt
from preempt._runtime._errno import cell

E = cell()
mode = sys.argv[1]
MINE, THEIRS = errno.ENOTTY, errno.EINVAL

def main():
    n = [0]
    stop = [False]
    ch = preempt.Chan()

    def other():
        while not stop[0]:
            E[0] = THEIRS
            n[0] += 1
            if mode == "park":
                ch.send(n[0])          # wakes main, parked in recv
            preempt.gosched()

    preempt.go(other)
    bad = 0
    for _ in range(50):
        seen = n[0]
        E[0] = MINE
        if mode == "gosched":
            preempt.gosched()               # _park._yield
        elif mode == "park":
            ch.recv()                       # _park.park_checked, or pe_park in C
        elif mode == "sleep":
            while n[0] == seen:             # parked on a timer, through the hub (a loaded
                preempt.sleep(0.001)        # machine may wake it before the other one ran)
        elif mode == "preempt":
            while n[0] == seen:             # pure Python: runs on only once preempted
                pass
        got = E[0]
        assert n[0] != seen, "the other goroutine did not run"
        bad += got != MINE
    stop[0] = True                          # (run() ends the other one if it waits in send)
    print("bad", bad)

preempt.run(main, slice=0.002)
print("OK")
"""


@pytest.mark.parametrize("pure", ["0", "1"])
@pytest.mark.parametrize("mode", ["gosched", "park", "sleep", "preempt"])
def test_a_goroutine_gets_its_errno_back_after_a_switch(child, monkeypatch, mode, pure):
    monkeypatch.setenv("PREEMPT_PURE", pure)       # "1": the Python twins, not pe_hot.c
    out = child(KEEPS, mode)
    assert "OK" in out and "bad 0" in out, out


# issue 24: ssl's load_cert_chain raised OSError(EINVAL) for a wrong password 199 times in 200
# when the password callback was preempted; 0 in 200 without preemption. _ssl.c zeroes errno,
# lets OpenSSL read the key (which calls the callback), and on failure raises OSError when errno
# is non-zero, SSLError otherwise.
LOAD_CERT_CHAIN = """
import os, ssl, sys, tempfile, preempt, trustme
from cryptography.hazmat.primitives import serialization

ca = trustme.CA()
leaf = ca.issue_cert("localhost")
key = serialization.load_pem_private_key(leaf.private_key_pem.bytes(), None)
d = tempfile.mkdtemp()
certfile, keyfile = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
with open(certfile, "wb") as f:
    f.write(leaf.cert_chain_pems[0].bytes())
with open(keyfile, "wb") as f:
    f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.BestAvailableEncryption(b"right")))

def main():
    n = [0]
    stop = [False]

    def failing_syscalls():
        while not stop[0]:
            for _ in range(20):
                try:
                    os.stat("/nonexistent/preempt-errno")     # ENOENT
                except OSError:
                    pass
            try:
                os.lseek(0, -1, 0)                             # EINVAL (or ESPIPE)
            except OSError:
                pass
            n[0] += 1

    preempt.go(failing_syscalls)

    def password():
        seen = n[0]
        while n[0] == seen:         # pure Python until preempted and the other one ran
            pass
        return b"wrong"

    kinds = {}
    for _ in range(int(sys.argv[1])):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            ctx.load_cert_chain(certfile, keyfile, password=password)
            kind = "loaded"
        except ssl.SSLError:
            kind = "SSLError"
        except OSError as e:
            kind = f"OSError({e.errno})"
        kinds[kind] = kinds.get(kind, 0) + 1
    stop[0] = True
    print(sorted(kinds.items()))

preempt.run(main, slice=0.002)
print("OK")
"""


def test_load_cert_chain_with_a_preempted_password_callback_raises_ssl_error(child):
    need_module("trustme")
    need_module("cryptography")
    out = child(LOAD_CERT_CHAIN, "40")
    assert "[('SSLError', 40)]" in out, out


GEVENT = """
import errno, gevent, preempt.gevent as pg
from preempt._runtime._errno import cell

E = cell()
MINE, THEIRS = errno.ENOTTY, errno.EINVAL
pg.enable(slice=0.002)
n = [0]

def other():
    while True:
        E[0] = THEIRS
        n[0] += 1
        gevent.sleep(0)

def computing():
    bad = 0
    for _ in range(30):
        seen = n[0]
        E[0] = MINE
        while n[0] == seen:          # pure Python: the other greenlet runs only if preempted
            pass
        bad += E[0] != MINE
    return bad

o = gevent.spawn(other)
bad = gevent.spawn(computing).get()
o.kill()
print("bad", bad, "preemptions", pg.stats()["preemptions"])
print("OK")
"""


def test_a_preempted_gevent_greenlet_gets_its_errno_back(child):
    need_module("gevent")
    out = child(GEVENT)
    assert "bad 0 " in out, out


AIO = """
import asyncio, errno, preempt.aio
from preempt._runtime._errno import cell

E = cell()
MINE, THEIRS = errno.ENOTTY, errno.EINVAL
n = [0]

def computing():
    bad = 0
    for i in range(30):
        seen = n[0]
        E[0] = MINE
        if i % 2:
            while n[0] == seen:      # pure Python: the loop runs only if preempted
                pass
        else:
            preempt.aio.wait(asyncio.sleep(0.001))        # parked in wait()
        bad += E[0] != MINE
    return bad

async def main():
    async def other():
        while True:
            E[0] = THEIRS
            n[0] += 1
            await asyncio.sleep(0)

    t = asyncio.ensure_future(other())
    bad = await preempt.aio.run(computing)
    t.cancel()
    print("bad", bad)

asyncio.run(main())
print("OK")
"""


def test_a_preempted_or_waiting_aio_function_gets_its_errno_back(child):
    out = child(AIO)
    assert "bad 0" in out, out

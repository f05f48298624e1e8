"""preempt.ssl: TLS on goroutines, against a local server with a certificate made here
(``trustme``: a throwaway CA and a certificate for localhost/127.0.0.1, in memory)."""

from __future__ import annotations

import hashlib
import os
import ssl as stdssl
import time

import pytest

import preempt
from preempt import socket as psocket
from preempt import ssl as pssl

from conftest import need_module  # noqa: E402

trustme = need_module("trustme")
pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def certs():
    ca = trustme.CA()
    return ca, ca.issue_cert("localhost", "127.0.0.1")


def _contexts(certs):
    ca, cert = certs
    server = pssl.SSLContext(pssl.PROTOCOL_TLS_SERVER)
    cert.configure_cert(server)
    client = pssl.create_default_context()
    ca.configure_trust(client)
    assert isinstance(client, pssl.SSLContext)
    return server, client


def _tls_echo_server(server_ctx, n):
    srv = psocket.create_server(("127.0.0.1", 0))

    def handle(raw):
        with server_ctx.wrap_socket(raw, server_side=True) as conn:
            assert isinstance(conn, pssl.SSLSocket)
            while True:
                data = conn.recv(1 << 16)
                if not data:
                    return
                conn.sendall(data)

    def acceptor():
        for _ in range(n):
            raw, _ = srv.accept()
            preempt.go(handle, raw)
        srv.close()

    preempt.go(acceptor)
    return srv.getsockname()[1]


def test_tls_echo_many_clients_large_transfers(in_run, certs):
    nclients, size = 8, 1 << 20

    def main():
        server_ctx, client_ctx = _contexts(certs)
        port = _tls_echo_server(server_ctx, nclients)
        out = preempt.Chan(nclients)

        def client(i):
            blob = os.urandom(size + i)
            with psocket.create_connection(("127.0.0.1", port)) as raw:
                with client_ctx.wrap_socket(raw, server_hostname="localhost") as c:
                    assert c.version() in ("TLSv1.2", "TLSv1.3")

                    def pump():
                        c.sendall(blob)

                    g = preempt.go(pump)
                    h, n = hashlib.sha256(), 0
                    while n < len(blob):
                        chunk = c.recv(1 << 16)
                        assert chunk
                        h.update(chunk)
                        n += len(chunk)
                    g.join()
            out.send(h.hexdigest() == hashlib.sha256(blob).hexdigest())

        for i in range(nclients):
            preempt.go(client, i)
        return [out.recv() for _ in range(nclients)]

    assert in_run(main) == [True] * nclients


def test_handshake_timeout_parks_and_names_the_operation(in_run, certs):
    def main():
        _, client_ctx = _contexts(certs)
        srv = psocket.create_server(("127.0.0.1", 0))     # accepts, never speaks TLS
        n = [0]
        stop = [False]

        def tick():
            while not stop[0]:
                n[0] += 1
                preempt.sleep(0.001)

        preempt.go(tick)
        raw = psocket.create_connection(srv.getsockname())
        raw.settimeout(0.2)
        t0 = time.monotonic()
        with pytest.raises(psocket.timeout, match="handshake operation timed out"):
            client_ctx.wrap_socket(raw, server_hostname="localhost")
        took = time.monotonic() - t0
        stop[0] = True
        raw.close()
        srv.close()
        return took, n[0]

    took, ticks = in_run(main)
    assert took >= 0.19
    assert ticks >= 20, f"the ticker ran {ticks} times during the handshake: the M was blocked"


def test_bad_certificate_is_the_stdlib_error(in_run, certs):
    def main():
        server_ctx, _ = _contexts(certs)
        port = _tls_echo_server(server_ctx, 1)
        strict = pssl.create_default_context()           # does not trust our CA
        with psocket.create_connection(("127.0.0.1", port)) as raw:
            with pytest.raises(pssl.SSLCertVerificationError):
                strict.wrap_socket(raw, server_hostname="localhost")

    in_run(main)


def test_unwrap_then_plain_and_nonblocking_want_read(in_run, certs):
    def main():
        server_ctx, client_ctx = _contexts(certs)
        a, b = psocket.socketpair()

        def server():
            conn = server_ctx.wrap_socket(a, server_side=True)
            assert conn.recv(5) == b"hello"
            plain = conn.unwrap()
            assert plain.recv(5) == b"plain"
            plain.close()

        g = preempt.go(server)
        c = client_ctx.wrap_socket(b, server_hostname="localhost")
        c.setblocking(False)
        with pytest.raises(pssl.SSLWantReadError):
            c.recv(1)                                     # timeout 0: as the stdlib
        c.setblocking(True)
        c.sendall(b"hello")
        plain = c.unwrap()
        plain.sendall(b"plain")
        g.join()
        plain.close()

    in_run(main)


def test_a_stdlib_context_made_green(in_run, certs):
    def main():
        ca, cert = certs
        server_ctx = stdssl.SSLContext(stdssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(server_ctx)
        server_ctx.sslsocket_class = pssl.SSLSocket
        client_ctx = stdssl.create_default_context()
        ca.configure_trust(client_ctx)
        client_ctx.sslsocket_class = pssl.SSLSocket
        port = _tls_echo_server(server_ctx, 1)
        with psocket.create_connection(("127.0.0.1", port)) as raw:
            with client_ctx.wrap_socket(raw, server_hostname="localhost") as c:
                c.sendall(b"x" * 1000)
                got = b""
                while len(got) < 1000:
                    got += c.recv(1000)
        return got

    assert in_run(main) == b"x" * 1000

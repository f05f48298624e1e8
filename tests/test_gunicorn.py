"""``gunicorn -k preempt.gunicorn.Worker`` (issue 27): real gunicorn processes on loopback with
a real Flask application. Each test starts its own arbiter with one worker on an ephemeral
port, talks HTTP to it, and reads its log. No test asserts a latency: the only timing checked
is the issue's own functional semantics (a request limit answered, a worker not killed), with
generous slack."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import ssl
import subprocess
import sys
import textwrap
import threading
import time
from typing import List, Optional

import pytest

from conftest import need_module

need_module("gunicorn")
need_module("flask")

from preempt import PreemptError                       # noqa: E402
from preempt.gunicorn._limit import request_timeout_from_env   # noqa: E402

pytestmark = pytest.mark.timeout(90)

APP = textwrap.dedent('''
    import os, socket, time
    from flask import Flask, Response, request

    app = Flask(__name__)
    MARK = os.environ["TEST_MARK_DIR"]

    def work(n):
        x = 0
        for i in range(n):
            x += i
        return x

    def compute(seconds):
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            work(2000)

    @app.route("/light")
    def light():
        return "light\\n"

    @app.route("/pid")
    def pid():
        return "%d %s" % (os.getpid(), request.environ.get("REMOTE_PORT"))

    @app.route("/heavy/<float:s>")
    def heavy(s):
        name = request.args.get("mark", "")
        try:
            compute(s)
        finally:
            if name:
                open(os.path.join(MARK, name), "w").write("finally ran")
        return "heavy\\n"

    @app.route("/wait")
    def wait():
        # an unmodified app waiting on a stdlib socket that never answers
        name = request.args.get("mark", "")
        lst = socket.socket()
        lst.bind(("127.0.0.1", 0))
        lst.listen()
        c = socket.create_connection(lst.getsockname())
        try:
            c.recv(1)
        finally:
            c.close()
            lst.close()
            if name:
                open(os.path.join(MARK, name), "w").write("finally ran")
        return "never\\n"

    @app.route("/stream")
    def stream():
        def gen():
            yield "first chunk\\n"
            compute(60.0)
            yield "end\\n"
        return Response(gen())

    @app.route("/boom")
    def boom():
        raise RuntimeError("the handler failed on purpose")
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Gunicorn:
    """One arbiter with one worker serving APP; its log in ``self.log_path``."""

    def __init__(self, tmp_path, *args: str, env: Optional[dict] = None, wait: bool = True):
        self.tmp = tmp_path
        (tmp_path / "app.py").write_text(APP)
        self.marks = tmp_path / "marks"
        self.marks.mkdir(exist_ok=True)
        self.port = _free_port()
        self.log_path = tmp_path / "gunicorn.log"
        e = dict(os.environ, TEST_MARK_DIR=str(self.marks), PYTHONUNBUFFERED="1")
        e.update(env or {})
        cmd = [sys.executable, "-m", "gunicorn", "-k", "preempt.gunicorn.Worker", "-w", "1",
               "-b", f"127.0.0.1:{self.port}", "--no-control-socket", "--access-logfile", "-",
               "--chdir", str(tmp_path), *args, "app:app"]
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self.log_file, stderr=subprocess.STDOUT,
                                     env=e, cwd=str(tmp_path))
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"gunicorn exited ({self.proc.returncode}):\n{self.log()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                if "Booting worker" in self.log():
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"gunicorn did not start:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text()

    def get(self, path: str, timeout: float = 30.0) -> tuple:
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()

    def worker_pid(self) -> int:
        return int(self.get("/pid")[1].split()[0])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.close()


@pytest.fixture
def server(tmp_path):
    started: List[Gunicorn] = []

    def start(*args: str, **kw) -> Gunicorn:
        g = Gunicorn(tmp_path, *args, **kw)
        started.append(g)
        return g

    yield start
    for g in started:
        g.stop()


def _in_thread(fn, *args) -> dict:
    out: dict = {}

    def body():
        try:
            out["result"] = fn(*args)
        except BaseException as e:          # noqa: BLE001 - reported by the test
            out["error"] = e
        out["t"] = time.monotonic()

    out["thread"] = threading.Thread(target=body, daemon=True)
    out["thread"].start()
    return out


def _wait_for_a_new_worker(g: Gunicorn, old_pid: int, what: str) -> None:
    end = time.monotonic() + 60
    while time.monotonic() < end:
        try:
            if g.worker_pid() != old_pid:
                return
        except OSError:
            pass                                # between the old worker and the new one
        time.sleep(0.1)
    pytest.fail(f"no new worker {what}:\n{g.log()}")


def _signal_during(g: Gunicorn, path: str, sig: int, pid: Optional[int] = None,
                   wait: float = 30) -> Optional[tuple]:
    """Sends ``sig`` to ``pid`` (default: the arbiter) while ``path`` is being served;
    returns the request's (status, body), or None if it had no answer within ``wait``."""
    req = _in_thread(g.get, path)
    time.sleep(0.5)
    os.kill(pid or g.proc.pid, sig)
    req["thread"].join(wait)
    return req.get("result")


# -- PREEMPT_REQUEST_TIMEOUT is read at worker start -----------------------------------------

def test_request_timeout_from_env_reads_seconds_or_none():
    assert request_timeout_from_env({}) is None
    assert request_timeout_from_env({"PREEMPT_REQUEST_TIMEOUT": ""}) is None
    assert request_timeout_from_env({"PREEMPT_REQUEST_TIMEOUT": "2"}) == 2.0
    assert request_timeout_from_env({"PREEMPT_REQUEST_TIMEOUT": "0.25"}) == 0.25


@pytest.mark.parametrize("bad", ["abc", "-1", "0", "nan", "inf"])
def test_request_timeout_refuses_a_bad_value_naming_the_variable(bad):
    with pytest.raises(PreemptError, match="PREEMPT_REQUEST_TIMEOUT"):
        request_timeout_from_env({"PREEMPT_REQUEST_TIMEOUT": bad})


def test_a_bad_request_timeout_stops_gunicorn_with_a_message(server):
    g = server("-e", "PREEMPT_REQUEST_TIMEOUT=abc", wait=False)
    assert g.proc.wait(30) != 0
    assert "PREEMPT_REQUEST_TIMEOUT='abc' must be a number of seconds" in g.log()


# -- serving (point 1) -----------------------------------------------------------------------

def test_serves_flask_with_keep_alive_and_the_access_log(server):
    g = server("--keep-alive", "5")
    c = http.client.HTTPConnection("127.0.0.1", g.port, timeout=30)
    ports = set()
    for _ in range(3):
        c.request("GET", "/pid")
        r = c.getresponse()
        assert r.status == 200
        ports.add(r.read().decode().split()[1])
    c.close()
    assert len(ports) == 1                      # one connection served all three
    assert g.get("/light") == (200, "light\n")
    time.sleep(0.5)
    assert '"GET /light HTTP/1.1" 200' in g.log()


def test_tls_from_certfile_and_keyfile(server, tmp_path):
    trustme = need_module("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    g = server("--certfile", str(tmp_path / "server.pem"), "--keyfile",
               str(tmp_path / "server.pem"))
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    c = http.client.HTTPSConnection("127.0.0.1", g.port, timeout=30, context=ctx)
    c.request("GET", "/light")
    r = c.getresponse()
    assert (r.status, r.read()) == (200, b"light\n")
    c.close()


def test_max_requests_restarts_the_worker(server):
    g = server("--max-requests", "3")
    first = g.worker_pid()
    for _ in range(6):
        g.get("/light")
    _wait_for_a_new_worker(g, first, "after max_requests")
    assert "Autorestarting worker after current request" in g.log()


def test_worker_connections_holds_further_connections_back(server):
    g = server("--worker-connections", "1", "--keep-alive", "0")
    heavy = _in_thread(g.get, "/heavy/1.0")
    time.sleep(0.3)                             # the heavy connection is the one being served
    light = _in_thread(g.get, "/light")
    heavy["thread"].join(30)
    light["thread"].join(30)
    assert heavy["result"][0] == 200 and light["result"] == (200, "light\n")
    assert light["t"] >= heavy["t"] - 0.05      # the light one was accepted after it


# -- preemption: light requests and the heartbeat (point 2) ----------------------------------

def test_heartbeat_survives_a_computation_longer_than_the_timeout(server):
    g = server("--timeout", "3")
    pid = g.worker_pid()
    heavy = _in_thread(g.get, "/heavy/8.0", 60)
    time.sleep(1.0)
    for _ in range(5):
        assert g.get("/light", 10) == (200, "light\n")
    assert "result" not in heavy and "error" not in heavy       # still computing meanwhile
    heavy["thread"].join(60)
    assert heavy["result"] == (200, "heavy\n")
    assert g.worker_pid() == pid
    assert "WORKER TIMEOUT" not in g.log()


# -- the request limit (point 3) -------------------------------------------------------------

def test_request_limit_cancels_a_computation_answers_503_and_logs_where(server):
    g = server("-e", "PREEMPT_REQUEST_TIMEOUT=0.5")
    pid = g.worker_pid()
    t0 = time.monotonic()
    status, body = g.get("/heavy/30.0?mark=computing")
    took = time.monotonic() - t0
    assert status == 503 and "PREEMPT_REQUEST_TIMEOUT=0.5 s" in body
    assert 0.5 <= took < 10.0
    assert (g.marks / "computing").read_text() == "finally ran"
    log = g.log()
    assert "GET /heavy/30.0?mark=computing HTTP/1.1 stopped" in log
    assert ", in compute" in log and "preempt/_runtime" not in log
    assert g.get("/light") == (200, "light\n") and g.worker_pid() == pid


def test_request_limit_cancels_a_wait_on_a_stdlib_socket(server):
    g = server("-e", "PREEMPT_REQUEST_TIMEOUT=0.5")
    status, _ = g.get("/wait?mark=waiting")
    assert status == 503
    assert (g.marks / "waiting").read_text() == "finally ran"
    assert ", in wait" in g.log()


def test_request_limit_after_the_headers_closes_the_connection(server):
    g = server("-e", "PREEMPT_REQUEST_TIMEOUT=0.5")
    with socket.create_connection(("127.0.0.1", g.port), timeout=30) as s:
        s.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.startswith(b"HTTP/1.1 200") and b"first chunk" in data
    assert b"end" not in data and b"503" not in data
    assert "bytes of the response already sent: connection closed" in g.log()
    assert g.get("/light") == (200, "light\n")


# -- errors, disconnects, signals (point 4) --------------------------------------------------

def test_a_handler_exception_gives_500_and_a_log_line(server):
    g = server()
    assert g.get("/boom")[0] == 500
    time.sleep(0.5)
    assert "the handler failed on purpose" in g.log()
    assert g.get("/light") == (200, "light\n")


def test_a_client_that_disconnects_cancels_nothing_else(server):
    g = server()
    pid = g.worker_pid()
    other = _in_thread(g.get, "/heavy/1.5")
    s = socket.create_connection(("127.0.0.1", g.port), timeout=30)
    s.sendall(b"GET /heavy/1.0 HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(0.2)
    s.close()                                   # gone mid-request
    other["thread"].join(30)
    assert other["result"] == (200, "heavy\n")
    assert g.get("/light") == (200, "light\n") and g.worker_pid() == pid


def test_sigterm_lets_a_running_request_finish(server):
    g = server("--graceful-timeout", "10")
    assert _signal_during(g, "/heavy/1.5", signal.SIGTERM) == (200, "heavy\n")
    assert g.proc.wait(30) == 0


def test_sigint_to_the_worker_is_graceful_too(server):
    g = server("--graceful-timeout", "10")
    pid = g.worker_pid()
    assert _signal_during(g, "/heavy/1.5", signal.SIGINT, pid) == (200, "heavy\n")
    _wait_for_a_new_worker(g, pid, "after SIGINT")


def test_sigterm_cancels_what_outlives_the_graceful_timeout(server):
    g = server("--graceful-timeout", "1")
    assert _signal_during(g, "/heavy/60.0?mark=shutdown", signal.SIGTERM)[0] == 503
    assert g.proc.wait(30) == 0
    assert (g.marks / "shutdown").read_text() == "finally ran"
    assert "the worker is shutting down" in g.log()


def test_sighup_replaces_the_worker_and_serving_goes_on(server):
    g = server()
    pid = g.worker_pid()
    g.proc.send_signal(signal.SIGHUP)
    _wait_for_a_new_worker(g, pid, "after SIGHUP")
    assert g.get("/light") == (200, "light\n")


def test_sigquit_to_the_worker_stops_it_at_once_and_the_arbiter_replaces_it(server):
    g = server("--graceful-timeout", "30")
    pid = g.worker_pid()
    # answered well before the 30 s grace
    assert _signal_during(g, "/heavy/60.0?mark=quit", signal.SIGQUIT, pid, 20)[0] == 503
    assert (g.marks / "quit").read_text() == "finally ran"
    _wait_for_a_new_worker(g, pid, "after SIGQUIT")

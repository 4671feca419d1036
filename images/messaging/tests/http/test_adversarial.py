"""Hostile clients against a real service process (one worker), over raw sockets.

Each attack expects the answer a careful server gives (400, 408, 413, 431, or a correct
answer), and while it runs:

- the worker's resident memory stays under RSS_BOUND above its idle figure (sampled every
  20 ms, the peak counts);
- another client, in its own process, sends a request every 10 ms on a keep-alive connection
  and sees no answer slower than STALL_BOUND.

Set HERMOD_ADVERSARIAL_REPORT=<file> to have the figures (peak RSS above idle, slowest probe
answer, bytes sent before the answer) written there as JSON; bench/http_server.md quotes them.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import threading
import time
from pathlib import Path

import pytest

import pgtools

# Attacks that run for seconds each (slow head, slow body, slow reader, 128 MB header):
# `make test-service` runs them, `make test-unit` does not.
pytestmark = pytest.mark.slow
from helpers import IDM, ServiceProcess, make_home

RSS_BOUND = 64 * 1024 * 1024
STALL_BOUND = 0.100
HEAD_TIMEOUT = 2
BODY_TIMEOUT = 2
IDLE_TIMEOUT = 3
NONCE = "nonce-0123456789"
BIG_ASSET = "/swagger-ui/swagger-ui-bundle.js"  # about 1 MB, served by the service itself

FIGURES: dict[str, dict] = {}


# --- the service and what is measured ----------------------------------------------------------

@pytest.fixture(scope="module")
def target(pg_admin_dsn, tmp_path_factory):
    home = tmp_path_factory.mktemp("adversarial")
    dsn = pgtools.create_database(pg_admin_dsn, f"hermod_adv_{os.getpid()}")
    pgtools.apply(dsn, "V1.1.0__base_version.sql")
    make_home(home, dsn, "http://127.0.0.1:9/cb", workers=1,
              extra={"hermod.http": {"head-timeout": HEAD_TIMEOUT, "body-timeout": BODY_TIMEOUT,
                                     "idle-timeout": IDLE_TIMEOUT}})
    service = ServiceProcess(home).start()
    children = Path(f"/proc/{service.proc.pid}/task/{service.proc.pid}/children").read_text().split()
    assert len(children) == 1, children
    service.worker = int(children[0])
    # Warm up: every route and the static file once, so that idle includes what is cached.
    for path in ("/actuator/health/liveness", BIG_ASSET, "/v3/api-docs"):
        exchange(service.port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    time.sleep(0.5)
    service.idle_rss = rss(service.worker)
    yield service
    service.stop()
    report = os.environ.get("HERMOD_ADVERSARIAL_REPORT")
    if report:
        Path(report).write_text(json.dumps({"idle_rss_mb": round(service.idle_rss / 2**20, 1), **FIGURES},
                                           indent=2) + "\n")


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def _probe(port: int, stop, out) -> None:
    """Another client: one liveness request every 10 ms on a keep-alive connection."""
    request = b"GET /actuator/health/liveness HTTP/1.1\r\nHost: probe\r\n\r\n"
    worst, count = 0.0, 0
    with socket.create_connection(("127.0.0.1", port)) as sock:
        while not stop.is_set():
            started = time.perf_counter()
            sock.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data or not data.endswith(b"}"):
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("probe connection closed")
                data += chunk
            worst = max(worst, time.perf_counter() - started)
            count += 1
            time.sleep(0.01)
    out.put((worst, count))


class Watch:
    """Around an attack: the worker's peak RSS (sampled) and the probe's slowest answer."""

    def __init__(self, service, name: str):
        self.service, self.name = service, name

    def __enter__(self):
        self.peak = 0
        self.stop_sampling = threading.Event()
        self.sampler = threading.Thread(target=self._sample, daemon=True)
        self.sampler.start()
        ctx = multiprocessing.get_context("fork")
        self.stop_probe, self.out = ctx.Event(), ctx.Queue()
        self.probe = ctx.Process(target=_probe, args=(self.service.port, self.stop_probe, self.out), daemon=True)
        self.probe.start()
        time.sleep(0.2)
        return self

    def _sample(self):
        while not self.stop_sampling.is_set():
            self.peak = max(self.peak, rss(self.service.worker))
            time.sleep(0.02)

    def __exit__(self, *exc):
        time.sleep(0.2)
        self.stop_probe.set()
        self.worst, self.probes = self.out.get(timeout=10)
        self.probe.join(5)
        self.stop_sampling.set()
        self.sampler.join()
        self.above_idle = self.peak - self.service.idle_rss
        FIGURES[self.name] = {"peak_rss_above_idle_mb": round(self.above_idle / 2**20, 1),
                              "slowest_other_client_ms": round(self.worst * 1000, 1), "probes": self.probes,
                              **getattr(self, "extra", {})}
        if exc[0] is None:
            assert self.above_idle < RSS_BOUND, FIGURES[self.name]
            assert self.worst < STALL_BOUND, FIGURES[self.name]
            assert self.probes > 0


# --- raw HTTP --------------------------------------------------------------------------------

def exchange(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send `data`, read until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        out = b""
        try:
            while chunk := sock.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
        return out


def statuses(raw: bytes) -> list[int]:
    out = []
    while raw.startswith(b"HTTP/1.1 "):
        head, _, rest = raw.partition(b"\r\n\r\n")
        out.append(int(head[9:12]))
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        raw = rest[length:]
    return out


# --- request smuggling and malformed framing ---------------------------------------------------

SMUGGLED = b"GET /actuator/health/liveness HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("name, request_bytes", [
    ("cl-and-te", b"POST /command/ping HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"0\r\n\r\n" + SMUGGLED),
    ("duplicate-cl", b"POST /command/ping HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nContent-Length: 49\r\n\r\n"
                     + SMUGGLED),
    ("te-not-final-chunked", b"POST /command/ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n"
                             b"0\r\n\r\n" + SMUGGLED),
    ("te-obfuscated", b"POST /command/ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"
                      + SMUGGLED),
    ("obs-fold", b"POST /command/ping HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nX-Api-Key: a\r\n b\r\n\r\n" + SMUGGLED),
    ("bare-cr", b"GET /actuator/health/liveness HTTP/1.1\rHost: x\r\n\r\n" + SMUGGLED),
    ("bare-lf-in-header", b"GET /actuator/health/liveness HTTP/1.1\r\nHost: x\nX: y\r\n\r\n" + SMUGGLED),
    ("space-before-colon", b"POST /command/ping HTTP/1.1\r\nHost: x\r\nContent-Length : 49\r\n\r\n" + SMUGGLED),
    ("nul-in-value", b"GET /actuator/health/liveness HTTP/1.1\r\nHost: x\r\nX: a\x00b\r\n\r\n" + SMUGGLED),
    ("chunk-size-not-hex", b"POST /command/ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"zz\r\n" + SMUGGLED),
    ("chunk-size-negative", b"POST /command/ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"-1\r\n" + SMUGGLED),
    ("chunk-size-overflow", b"POST /command/ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                            b"10000000000000000000001\r\n" + SMUGGLED),
    ("chunk-without-crlf", b"POST /command/ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                           b"2\r\nhiXX0\r\n\r\n" + SMUGGLED),
])
def test_smuggling_and_malformed_framing_get_400_and_close(target, name, request_bytes):
    raw = exchange(target.port, request_bytes)
    # One answer, 400, and the connection closed: the bytes after it never run as a request.
    assert statuses(raw) == [400], (name, raw[:300])
    assert b"Connection: close" in raw


def test_chunk_extensions_and_trailers_are_bounded(target):
    """A chunk extension or a trailer that never ends: 413 once the body's bytes pass the limit."""
    with Watch(target, "endless-chunk-extension") as watch:
        with socket.create_connection(("127.0.0.1", target.port), timeout=10) as sock:
            sock.sendall(b"POST /command/ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n1;ext=")
            sent, answer = send_until_answer(sock, b"e" * 65536, 64 * 1024 * 1024)
        watch.extra = {"bytes_sent_before_answer": sent}
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]


# --- oversized and slow ------------------------------------------------------------------------

def send_until_answer(sock: socket.socket, chunk: bytes, limit: int) -> tuple[int, bytes]:
    """Send chunk after chunk until the server answers (or `limit` bytes): (bytes sent, answer)."""
    sock.setblocking(False)
    sent, answer = 0, b""
    try:
        while sent < limit and not answer:
            try:
                answer = sock.recv(65536)
                break
            except BlockingIOError:
                pass
            try:
                sent += sock.send(chunk)
            except BlockingIOError:
                time.sleep(0.001)
    except (BrokenPipeError, ConnectionResetError):
        pass
    sock.setblocking(True)
    sock.settimeout(5)
    if not answer:
        try:
            answer = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            pass
    return sent, answer


def test_128_mb_header_gets_431_at_the_limit(target):
    """Finding 1: `X-Big: ` and 128 MB without a line end."""
    with Watch(target, "128-mb-header") as watch:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", target.port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ")
            sent, answer = send_until_answer(sock, b"b" * 65536, 128 * 1024 * 1024)
        watch.extra = {"bytes_sent_before_answer": sent, "seconds_to_answer": round(time.monotonic() - started, 3)}
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
    # What the client sent before it saw the answer includes what the kernel buffers took and
    # what the server read and dropped after answering; the old server answered after 128 MB.
    assert sent < 32 * 1024 * 1024, sent


def test_oversized_url_gets_414(target):
    raw = exchange(target.port, b"GET /" + b"u" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    assert statuses(raw) == [414]


def test_declared_oversized_body_gets_413_before_it_is_sent(target):
    raw = exchange(target.port, b"POST /command/ping HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n")
    assert statuses(raw) == [413]


def test_endless_chunked_body_gets_413(target):
    with Watch(target, "endless-chunked-body") as watch:
        with socket.create_connection(("127.0.0.1", target.port), timeout=10) as sock:
            sock.sendall(b"POST /command/ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
            sent, answer = send_until_answer(sock, b"10000\r\n" + b"c" * 65536 + b"\r\n", 64 * 1024 * 1024)
        watch.extra = {"bytes_sent_before_answer": sent}
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]


def trickle_until_answer(target, name, opening: bytes, drip: bytes, limit: float):
    """Send `opening`, then one `drip` byte every 100 ms until an answer or `limit` seconds:
    (answer, seconds to it)."""
    with Watch(target, name) as watch:
        with socket.create_connection(("127.0.0.1", target.port), timeout=10) as sock:
            started = time.monotonic()
            sock.sendall(opening)
            sock.settimeout(0.1)
            answer = b""
            while not answer and time.monotonic() - started < limit:
                try:
                    sock.send(drip)
                    answer = sock.recv(65536)
                except TimeoutError:
                    pass
            elapsed = time.monotonic() - started
        watch.extra = {"seconds_to_answer": round(elapsed, 2)}
    return answer, elapsed


def test_slow_head_gets_408(target):
    """One header byte every 100 ms: never idle, never done."""
    answer, elapsed = trickle_until_answer(
        target, "slow-head", b"GET /actuator/health/liveness HTTP/1.1\r\nHost: x\r\nX-Slow: ", b"s", HEAD_TIMEOUT * 3)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
    assert HEAD_TIMEOUT <= elapsed < HEAD_TIMEOUT * 1.5 + 0.5


def test_slow_body_gets_408(target):
    answer, elapsed = trickle_until_answer(
        target, "slow-body", b"POST /command/ping HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{", b" ",
        BODY_TIMEOUT * 3)
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]
    assert BODY_TIMEOUT <= elapsed < BODY_TIMEOUT * 1.5 + 0.5


def test_slow_reader_is_paused_then_aborted(target):
    """Finding 2: 64 pipelined requests for a 1 MB file, answers never read."""
    with Watch(target, "slow-reader") as watch:
        sock = socket.create_connection(("127.0.0.1", target.port), timeout=10)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(f"GET {BIG_ASSET} HTTP/1.1\r\nHost: x\r\n\r\n".encode() * 64)
        started = time.monotonic()
        # The server gives up on the connection after IDLE_TIMEOUT without progress: abort (RST).
        time.sleep(IDLE_TIMEOUT * 1.5 + 1)
        received = 0
        sock.settimeout(5)
        try:
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
            reset = False
        except ConnectionResetError:
            reset = True
        sock.close()
        watch.extra = {"bytes_received": received, "reset": reset, "seconds": round(time.monotonic() - started, 1)}
    assert reset, watch.extra  # aborted, not a graceful close waiting for a buffer that never drains
    assert received < 16 * 1024 * 1024  # a few of the 64 answers at most


def test_pipelining_flood_is_answered_in_order_with_bounded_memory(target):
    """10,000 pipelined requests sent at once (and read while they are sent): answered in order,
    8 read ahead at a time; a single read holding more than 32 gets those answered, then close."""
    with Watch(target, "pipelining-flood") as watch:
        with socket.create_connection(("127.0.0.1", target.port), timeout=20) as sock:
            def send():
                try:
                    sock.sendall(SMUGGLED * 10000)
                except OSError:
                    pass  # closed after the answers it gave: the rest is not wanted

            sender = threading.Thread(target=send, daemon=True)
            sender.start()
            raw = b""
            try:
                while chunk := sock.recv(1 << 20):
                    raw += chunk
            except ConnectionResetError:
                pass
            sender.join(20)
        got = statuses(raw)
        closed_early = len(got) < 10000
        watch.extra = {"answered": len(got), "closed_after_a_flooded_read": closed_early}
    assert got and set(got) == {200}
    if closed_early:
        last_head = raw[raw.rindex(b"HTTP/1.1 "):]
        assert b"Connection: close" in last_head and len(got) >= 8


# --- content -------------------------------------------------------------------------------------

def test_api_key_in_a_trailer_is_not_a_header(target):
    """Finding 5."""
    body = json.dumps({"pingCommand": {"nonce": NONCE, "userid": "alice"}}).encode()
    request = (b"POST /command/ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
               + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\nX-Api-Key: " + IDM["X-Api-Key"].encode() + b"\r\n\r\n")
    assert statuses(exchange(target.port, request)) == [401]


def accept_ping(port: int) -> str:
    body = json.dumps({"pingCommand": {"nonce": NONCE, "userid": "alice"}}).encode()
    raw = exchange(port, b"POST /command/ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Api-Key: "
                   + IDM["X-Api-Key"].encode() + f"\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
    assert statuses(raw) == [202], raw
    return json.loads(raw.partition(b"\r\n\r\n")[2])["deviceReference"]


def test_head_on_a_device_url_leaves_the_fetch(target):
    """Finding 6."""
    reference = accept_ping(target.port)
    raw = exchange(target.port, f"HEAD /ms/command/{reference} HTTP/1.1\r\nHost: x\r\n\r\n"
                                f"GET /ms/command/{reference} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    head, _, rest = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 405 ") and b"Allow: GET" in head
    # An answer to HEAD has no body, whatever its Content-Length: the GET's answer follows at once.
    assert rest.startswith(b"HTTP/1.1 200 ") and b'"nonce":"nonce-0123456789"' in rest


@pytest.mark.parametrize("name, body, status", [
    ("deep-json", b"[" * 60000, 400),
    ("nan", b'{"pingCommand": {"nonce": "%s", "userid": "alice", "n": NaN}}', 400),
    ("infinity", b'{"pingCommand": {"nonce": "%s", "userid": "alice", "n": Infinity}}', 400),
    ("lone-surrogate", b'{"pingCommand": {"nonce": "%s", "userid": "\\udc00"}}', 400),
    ("encoded-surrogate", b'{"pingCommand": {"nonce": "%s", "userid": "\xed\xb0\x80"}}', 400),
])
def test_hostile_json_is_refused(target, name, body, status):
    body = body.replace(b"%s", NONCE.encode())
    for path, headers in ((b"/command/ping", b"X-Api-Key: " + IDM["X-Api-Key"].encode() + b"\r\n"),
                          (b"/ms/command/" + b"A" * 43 + b"/response", b"")):
        request = (b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n" + headers
                   + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        raw = exchange(target.port, request)
        assert statuses(raw) == [status], (name, path, raw[:300])
    assert "Traceback" not in target.output()

"""The read-only Docker API gate in front of Traefik's swarm provider: reads of the discovery
endpoints pass over a fresh engine connection, everything else is refused before the engine."""

from __future__ import annotations

import importlib.util
import pathlib
import socket
import threading

import pytest

GATE = (pathlib.Path(__file__).resolve().parents[2] / "collections/ansible_collections/smartid/hermod"
        / "roles/traefik/files/docker_api_readonly.py")
spec = importlib.util.spec_from_file_location("docker_api_readonly", GATE)
gate = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gate)


@pytest.mark.parametrize("method, target", [
    ("GET", "/_ping"), ("HEAD", "/_ping"), ("GET", "/v1.41/version"), ("GET", "/v1.41/services"),
    ("GET", "/v1.41/tasks?filters=%7B%22service%22%3A%7B%22x%22%3Atrue%7D%7D"),
    ("GET", "/v1.41/networks/abc123"), ("GET", "/v1.41/nodes/"),
])
def test_discovery_reads_pass(method, target):
    assert gate.allowed(method, target)


@pytest.mark.parametrize("method, target", [
    ("POST", "/v1.41/containers/create"), ("POST", "/v1.41/services/x/update"),
    ("DELETE", "/v1.41/services/x"), ("GET", "/v1.41/secrets"), ("GET", "/v1.41/configs"),
    ("GET", "/v1.41/containers/json"), ("GET", "/v1.41/services/x/logs"),
    ("GET", "/v1.41/tasks/../containers/json"), ("GET", "/v1.41/info"), ("PUT", "/_ping"),
])
def test_everything_else_is_refused(method, target):
    assert not gate.allowed(method, target)


@pytest.fixture()
def engine(tmp_path):
    """A fake engine on a unix socket that records each request it gets."""
    path = str(tmp_path / "docker.sock")
    seen = []
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(4)

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            seen.append(data)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK")
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield path, seen
    server.close()


@pytest.fixture()
def gate_port(engine, monkeypatch):
    monkeypatch.setattr(gate, "ENGINE", engine[0])
    server = gate.Server(("127.0.0.1", 0), gate.Gate)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def _ask(port, raw):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
        conn.sendall(raw)
        answer = b""
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                return answer
            answer += chunk


def test_a_read_reaches_the_engine_with_connection_close(engine, gate_port):
    answer = _ask(gate_port, b"GET /v1.41/services HTTP/1.1\r\nHost: docker\r\nConnection: keep-alive\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"OK")
    assert len(engine[1]) == 1
    forwarded = engine[1][0]
    assert b"Connection: close\r\n" in forwarded and b"keep-alive" not in forwarded


def test_a_write_never_reaches_the_engine(engine, gate_port):
    answer = _ask(gate_port, b"POST /v1.41/containers/create HTTP/1.1\r\nHost: docker\r\nContent-Length: 2\r\n\r\n{}")
    assert answer.startswith(b"HTTP/1.1 403 Forbidden")
    assert engine[1] == []


def test_a_second_request_on_the_connection_is_not_forwarded(engine, gate_port):
    _ask(gate_port, b"GET /_ping HTTP/1.1\r\nHost: d\r\n\r\nPOST /v1.41/containers/create HTTP/1.1\r\nHost: d\r\n\r\n")
    assert len(engine[1]) == 1 and b"POST" not in engine[1][0]

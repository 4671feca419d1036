"""Regression tests of the endpoints against hostile input, over real sockets to a real service
process and PostgreSQL: the answer a careful server gives, and nothing in the log that a
client should not be able to put there (a traceback)."""

from __future__ import annotations

import socket

import pgtools
import requests

from helpers import IDM, make_home

NONCE = "nonce-0123456789"
REFERENCE = "A" * 43  # the shape of a device reference; no such command


def raw_post(url: str, body: bytes, headers: dict | None = None) -> requests.Response:
    return requests.post(url, data=body, headers={"Content-Type": "application/json", **(headers or {})}, timeout=10)


def accepted_ping(service, fmt="jws") -> dict:
    r = service.command("ping", {"pingCommand": {"nonce": NONCE, "userid": "alice", "responseformat": fmt}})
    assert r.status_code == 202, r.text
    return r.json()


def test_deep_json_nesting_is_a_400_not_a_recursion_error(service):
    """Finding 4: 1,000 `[` on the public device route was a RecursionError, a 500 and a traceback."""
    deep = b"[" * 1000
    r = raw_post(f"{service.url}/ms/command/{REFERENCE}/response", deep)
    assert r.status_code == 400 and "nests deeper" in r.json()["message"]
    r = raw_post(f"{service.url}/command/ping", deep, IDM)
    assert r.status_code == 400 and "nests deeper" in r.json()["message"]
    nested = b'{"pingCommand": {"nonce": "%s", "userid": "alice", "x": %s}}' % (NONCE.encode(), b"[" * 100 + b"]" * 100)
    r = raw_post(f"{service.url}/command/ping", nested, IDM)
    assert r.status_code == 400 and "nests deeper than 64 levels" in r.json()["message"]
    # A bracket inside a string is not nesting.
    flat = b'{"pingCommand": {"nonce": "%s", "userid": "alice", "x": "%s"}}' % (NONCE.encode(), b"[" * 1000)
    assert raw_post(f"{service.url}/command/ping", flat, IDM).status_code == 202
    log = service.output()
    assert "Traceback" not in log and "RecursionError" not in log


def test_head_does_not_consume_the_one_time_fetch(service):
    """Finding 6: a HEAD on the device URL consumed the fetch; the GET after it got 409."""
    acc = accepted_ping(service)
    head = requests.head(acc["deviceUrl"], timeout=5)
    assert head.status_code == 405 and head.headers["Allow"] == "GET"
    fetched = requests.get(acc["deviceUrl"], timeout=5)
    assert fetched.status_code == 200 and fetched.json()["nonce"] == NONCE
    assert requests.get(acc["deviceUrl"], timeout=5).status_code == 409  # still one-time


def test_nan_infinity_and_lone_surrogates_are_400(service):
    """Finding 7: NaN was stored and sent to the device; a lone surrogate in userid was a 500."""
    url = f"{service.url}/command/ping"
    bodies = {
        b'{"pingCommand": {"nonce": "%s", "userid": "alice", "x": NaN}}': "NaN is not a JSON number",
        b'{"pingCommand": {"nonce": "%s", "userid": "alice", "x": -Infinity}}': "-Infinity is not a JSON number",
        b'{"pingCommand": {"nonce": "%s", "userid": "alice", "x": 1e999}}': "out of the range",
        b'{"pingCommand": {"nonce": "%s", "userid": "\\ud800"}}': "lone surrogate",
        b'{"pingCommand": {"nonce": "%s", "userid": "alice", "x": {"\\udfff": 1}}}': "lone surrogate",
        b'{"pingCommand": {"nonce": "%s", "userid": "\xed\xa0\x80"}}': "not valid UTF-8",
    }
    for body, message in bodies.items():
        r = raw_post(url, body.replace(b"%s", NONCE.encode()), IDM)
        assert r.status_code == 400 and message in r.json()["message"], (body, r.status_code, r.text)
    # A pair of surrogates is one character, and fine.
    r = raw_post(url, b'{"pingCommand": {"nonce": "%s", "userid": "\\ud83d\\ude00"}}' % NONCE.encode(), IDM)
    assert r.status_code == 202, r.text
    # The device side: a json response is forwarded to the client, so it is held to the same rules.
    acc = accepted_ping(service, fmt="json")
    assert requests.get(acc["deviceUrl"], timeout=5).status_code == 200
    for response in (b'{"x": NaN}', b'{"x": "\\udbff"}'):
        r = raw_post(acc["deviceUrl"] + "/response", b'{"nonce": "%s", "response": %s}' % (NONCE.encode(), response))
        assert r.status_code == 400, r.text
    r = raw_post(acc["deviceUrl"] + "/response", b'{"nonce": "%s", "response": {"x": 1.5}}' % NONCE.encode())
    assert r.status_code == 202, r.text
    assert "Traceback" not in service.output()


def test_a_client_id_with_a_trailing_newline_is_refused(service):
    """Finding 10: the pattern ended with `$`, which also matches before a final newline."""
    assert requests.get(f"{service.url}/util/generateclient/abc", timeout=5).status_code == 200
    for bad in ("abc%0a", "abc%0d%0a", "%0aabc"):
        r = requests.get(f"{service.url}/util/generateclient/{bad}", timeout=5)
        assert r.status_code == 400, (bad, r.text)


def test_operator_endpoints_on_their_own_listener(database, receiver, services, tmp_path):
    """Finding 3: with management.server.port set, the main listener serves commands and the
    device side only; actuator, API docs, Swagger UI and generateclient answer on the other."""
    operator_port = pgtools.free_port()
    home = make_home(tmp_path / "home", database("V1.1.0__base_version.sql"), receiver.url,
                     extra={"management.server.port": operator_port})
    service = services(home)
    for path in ("/actuator/health", "/actuator/prometheus", "/v3/api-docs", "/swagger-ui/index.html",
                 "/util/generateclient/abc"):
        assert requests.get(f"{service.url}{path}", timeout=5).status_code == 404, path
        assert requests.get(f"http://127.0.0.1:{operator_port}{path}", timeout=5).status_code == 200, path
    acc = accepted_ping(service)
    assert requests.get(acc["deviceUrl"], timeout=5).status_code == 200
    assert requests.post(f"http://127.0.0.1:{operator_port}/command/ping", json={}, headers=IDM,
                         timeout=5).status_code == 404
    assert f"Operator endpoints (actuator, API docs, Swagger UI, generateclient) on 127.0.0.1:{operator_port}" \
        in service.output()


def test_command_and_util_source_allow_lists(database, receiver, services, tmp_path):
    """Finding 3: the service enforces the /command and /util source allow-lists itself (the
    connection's peer address; X-Forwarded-For is not trusted)."""
    dsn = database("V1.1.0__base_version.sql")
    outside = make_home(tmp_path / "outside", dsn, receiver.url,
                        extra={"hermod.source-ranges.command": ["10.0.0.0/8", "192.168.0.0/16"],
                               "hermod.source-ranges.util": ["192.0.2.0/24"]})
    service = services(outside)
    body = {"pingCommand": {"nonce": NONCE, "userid": "alice"}}
    r = requests.post(f"{service.url}/command/ping", json=body, headers={**IDM, "X-Forwarded-For": "10.1.2.3"},
                      timeout=5)
    assert r.status_code == 403 and r.json()["message"] == "source address not allowed"
    assert requests.get(f"{service.url}/util/generateclient/abc", timeout=5).status_code == 403
    # The device side and the actuator are not on the allow-list.
    assert requests.get(f"{service.url}/actuator/health", timeout=5).status_code == 200
    assert requests.get(f"{service.url}/ms/command/{REFERENCE}", timeout=5).status_code == 404
    service.stop()

    inside = make_home(tmp_path / "inside", dsn, receiver.url,
                       extra={"hermod.source-ranges.command": ["10.0.0.0/8", "127.0.0.0/8"],
                              "hermod.source-ranges.util": ["127.0.0.1"]})
    service = services(inside)
    assert service.command("ping", body).status_code == 202
    assert requests.get(f"{service.url}/util/generateclient/abc", timeout=5).status_code == 200


def test_http_timeouts_come_from_the_configuration(database, receiver, services, tmp_path):
    """Finding 9: head, body and idle timeouts are configuration keys (hermod.http.*)."""
    home = make_home(tmp_path / "home", database("V1.1.0__base_version.sql"), receiver.url,
                     extra={"hermod.http": {"idle-timeout": 1, "head-timeout": 1, "body-timeout": 1}})
    service = services(home)
    results = {}
    for name, data in (("idle", b""), ("head", b"GET /actuator/health HTTP/1.1\r\nHost: x\r\n"),
                       ("body", b"POST /command/ping HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")):
        with socket.create_connection(("127.0.0.1", service.port), timeout=10) as sock:
            sock.sendall(data)
            results[name] = sock.recv(65536)
    assert results["idle"] == b""
    assert results["head"].startswith(b"HTTP/1.1 408 ") and results["body"].startswith(b"HTTP/1.1 408 ")

"""The service as deployed when it terminates TLS itself (Traefik passes TLS through): operator
endpoints on a listener of their own, the client's address from Traefik's PROXY protocol
header, and the /command and /util allow-lists enforced by the service on that address."""

from __future__ import annotations

import json
import os
import socket
import ssl
import struct
import subprocess
import sys

import requests

import pgtools
from helpers import IDM, SRC
from test_ssl import keystore_home

NONCE = "nonce-0123456789"
PING = json.dumps({"pingCommand": {"nonce": NONCE, "userid": "alice"}}).encode()


def proxy_v1(client: str) -> bytes:
    return f"PROXY TCP4 {client} 10.0.0.2 50000 20402\r\n".encode()


def proxy_v2(client: str) -> bytes:
    addresses = socket.inet_aton(client) + socket.inet_aton("10.0.0.2") + struct.pack("!HH", 50000, 20402)
    return b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(addresses)) + addresses


def https_exchange(port: int, ca: str, request: bytes, prefix: bytes = b"") -> bytes:
    """Optionally a PROXY header in clear, then TLS, then one request; the answer until close."""
    context = ssl.create_default_context(cafile=ca)
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        raw.sendall(prefix)
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            tls.sendall(request)
            out = b""
            while chunk := tls.recv(65536):
                out += chunk
            return out


def post_ping() -> bytes:
    return (b"POST /command/ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nX-Api-Key: "
            + IDM["X-Api-Key"].encode() + f"\r\nContent-Length: {len(PING)}\r\n\r\n".encode() + PING)


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode()


def status(raw: bytes) -> int:
    return int(raw[9:12])


def test_service_tls_mode_listeners_proxy_protocol_and_allow_lists(database, receiver, services, tmp_path):
    operator_port, proxied_port = pgtools.free_port(), pgtools.free_port()
    dsn = database("V1.1.0__base_version.sql")
    home = keystore_home(tmp_path, dsn, receiver.url, "ks-secret-pw", "ks-secret-pw")
    conf = home / "config" / "hermod-conf.yml"
    import yaml

    tree = yaml.safe_load(conf.read_text())
    tree["management"] = {"server": {"port": operator_port}}
    tree["hermod"]["proxy-protocol"] = {"port": proxied_port}
    tree["hermod"]["source-ranges"] = {"command": ["10.0.0.0/8", "172.16.0.0/12", "127.0.0.0/8"],
                                       "util": ["10.0.0.0/8", "172.16.0.0/12", "127.0.0.0/8"]}
    conf.write_text(yaml.safe_dump(tree))
    ca = str(tmp_path / "ca.pem")
    service = services(home)
    assert "Connections relayed with the PROXY protocol on 127.0.0.1:%d" % proxied_port in service.output()

    # Through the proxy: the client's address is the header's, not the proxy's (127.0.0.1).
    for header in (proxy_v1, proxy_v2):
        assert status(https_exchange(proxied_port, ca, post_ping(), header("203.0.113.7"))) == 403
        assert status(https_exchange(proxied_port, ca, get("/util/generateclient/abc"), header("203.0.113.7"))) \
            in (403, 404)
        accepted = https_exchange(proxied_port, ca, post_ping(), header("10.1.2.3"))
        assert status(accepted) == 202, accepted
    reference = json.loads(accepted.partition(b"\r\n\r\n")[2])["deviceReference"]
    # The device side is public: reachable from any address.
    fetched = https_exchange(proxied_port, ca, get(f"/ms/command/{reference}"), proxy_v2("203.0.113.7"))
    assert status(fetched) == 200
    # Without a header, the proxied listener closes the connection before TLS.
    try:
        answer = https_exchange(proxied_port, ca, get("/actuator/health"))
    except (ssl.SSLError, ConnectionError):
        answer = b""
    assert answer == b""

    # Operator endpoints: only on their own listener, not on the published ones.
    for port, prefix in ((service.port, b""), (proxied_port, proxy_v1("10.1.2.3"))):
        for path in ("/actuator/health", "/v3/api-docs", "/swagger-ui/index.html", "/util/generateclient/abc"):
            assert status(https_exchange(port, ca, get(path), prefix)) == 404, (port, path)
    for path in ("/actuator/health", "/v3/api-docs", "/swagger-ui/index.html", "/util/generateclient/abc"):
        assert requests.get(f"https://127.0.0.1:{operator_port}{path}", verify=ca, timeout=5).status_code == 200

    # The container health check follows the actuator to management.server.port.
    check = subprocess.run([sys.executable, "-m", "hermod_ref.healthcheck"], capture_output=True, timeout=20,
                           env=dict(os.environ, PYTHONPATH=str(SRC), HERMOD_HOME=str(home)))
    assert check.returncode == 0, check.stderr

"""smartid.hermod.tls_served: the certificate a TLS endpoint serves, seen from the managed host
(module_utils/tls_served.py), against real local TLS servers made with `cryptography`."""

from __future__ import annotations

import datetime
import json
import os
import socket
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.smartid.hermod.plugins.module_utils import tls_served
from ansible_collections.smartid.hermod.plugins.module_utils import traefik_tls

NOW = datetime.datetime.now(datetime.timezone.utc)
COLLECTIONS = Path(__file__).resolve().parents[2] / "collections"


def _pair(directory, name):
    """A self-signed certificate for `name` and its key, as PEM files; returns (cert path, key path, PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(NOW - datetime.timedelta(days=1))
            .not_valid_after(NOW + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
            .sign(key, hashes.SHA256()))
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    cert_path, key_path = directory / (name + ".crt"), directory / (name + ".key")
    cert_path.write_text(pem)
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path, pem


class TlsServer:
    """Accepts connections on a loopback port and completes TLS handshakes: the default
    certificate, or another one for the SNI names in `by_name` (as Traefik's tls.yml does)."""

    def __init__(self, default, by_name=None, family=socket.AF_INET, host="127.0.0.1"):
        self.context = self._context(default)
        self.by_name = {name: self._context(pair) for name, pair in (by_name or {}).items()}
        self.context.sni_callback = self._sni
        self.names_seen = []
        self.listener = socket.socket(family, socket.SOCK_STREAM)
        self.listener.bind((host, 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @staticmethod
    def _context(pair):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        context.load_cert_chain(str(pair[0]), str(pair[1]))
        return context

    def _sni(self, sock, name, _context):
        self.names_seen.append(name)
        if name in self.by_name:
            sock.context = self.by_name[name]

    def _serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass

    def close(self):
        self.listener.close()


@pytest.fixture
def certs(tmp_path):
    return {name: _pair(tmp_path, name) for name in ("default.test", "messaging.test")}


@pytest.fixture
def server(certs):
    srv = TlsServer(certs["default.test"], {"messaging.test": certs["messaging.test"]})
    yield srv
    srv.close()


def _listening_then_silent():
    """A port that accepts TCP connections but never answers (a server stuck before TLS)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    return listener


def test_the_fingerprint_is_the_one_the_role_expects_from_the_pem(server, certs):
    found = tls_served.served_fingerprint("127.0.0.1", server.port, "default.test")
    # The role compares with traefik_pem_fingerprint (traefik_tls.leaf_fingerprint) of the PEM it wrote.
    assert found == traefik_tls.leaf_fingerprint(certs["default.test"][2])
    assert len(found) == 64 and found == found.lower()


def test_the_server_name_is_sent_as_sni_and_decides_the_certificate(server, certs):
    found = tls_served.served_fingerprint("127.0.0.1", server.port, "messaging.test")
    assert found == traefik_tls.leaf_fingerprint(certs["messaging.test"][2])
    assert found != traefik_tls.leaf_fingerprint(certs["default.test"][2])
    assert "messaging.test" in server.names_seen


def test_no_server_name_gets_the_default_certificate(server, certs):
    assert (tls_served.served_fingerprint("127.0.0.1", server.port, "")
            == traefik_tls.leaf_fingerprint(certs["default.test"][2]))
    assert server.names_seen == [None]


def test_a_closed_port_names_the_address():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with pytest.raises(tls_served.ServedError, match=r"cannot connect to 127\.0\.0\.1:%d" % port):
        tls_served.served_fingerprint("127.0.0.1", port, "default.test", timeout=2)


def test_a_server_that_does_not_speak_tls_is_a_failed_handshake():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)

    def answer_http():
        conn, _ = listener.accept()
        conn.recv(1024)
        conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        conn.close()

    thread = threading.Thread(target=answer_http, daemon=True)
    thread.start()
    try:
        with pytest.raises(tls_served.ServedError, match=r"TLS handshake with 127\.0\.0\.1:\d+ \(SNI x\.test\) failed"):
            tls_served.served_fingerprint("127.0.0.1", listener.getsockname()[1], "x.test", timeout=5)
    finally:
        listener.close()


def test_a_silent_server_times_out_instead_of_hanging():
    listener = _listening_then_silent()
    try:
        with pytest.raises(tls_served.ServedError, match="failed"):
            tls_served.served_fingerprint("127.0.0.1", listener.getsockname()[1], "x.test", timeout=0.5)
    finally:
        listener.close()


@pytest.mark.parametrize("published, reached", [
    ("0.0.0.0", "127.0.0.1"),
    ("", "127.0.0.1"),
    (None, "127.0.0.1"),
    ("::", "::1"),
    ("[::]", "::1"),
    ("127.0.0.1", "127.0.0.1"),
    ("192.0.2.10", "192.0.2.10"),
    ("[2001:db8::5]", "2001:db8::5"),
    (" 10.1.2.3 ", "10.1.2.3"),
])
def test_a_wildcard_published_address_is_reached_on_loopback(published, reached):
    assert tls_served.connect_address(published) == reached


def test_ipv6_loopback(certs):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        srv = TlsServer(certs["default.test"], family=socket.AF_INET6, host="::1")
    except OSError as exc:
        pytest.skip("no IPv6 loopback: %s" % exc)
    try:
        assert (tls_served.served_fingerprint(tls_served.connect_address("::"), srv.port, "default.test")
                == traefik_tls.leaf_fingerprint(certs["default.test"][2]))
    finally:
        srv.close()


def _run_module(args):
    """The module as Ansible runs it on a host: its own process, arguments as JSON."""
    env = dict(os.environ, PYTHONPATH=str(COLLECTIONS))
    proc = subprocess.run(
        [sys.executable, "-m", "ansible_collections.smartid.hermod.plugins.modules.tls_served",
         json.dumps({"ANSIBLE_MODULE_ARGS": args})],
        capture_output=True, text=True, env=env, timeout=60, check=False)
    return json.loads(proc.stdout)


def test_the_module_returns_the_fingerprint_and_where_it_connected(server, certs):
    result = _run_module({"host": "0.0.0.0", "port": server.port, "server_name": "messaging.test"})
    assert not result.get("failed"), result
    assert result["changed"] is False
    assert result["fingerprint"] == traefik_tls.leaf_fingerprint(certs["messaging.test"][2])
    assert (result["address"], result["port"], result["server_name"]) == ("127.0.0.1", server.port, "messaging.test")


def test_the_module_accepts_the_expected_fingerprint_in_any_spelling(server, certs):
    expected = traefik_tls.leaf_fingerprint(certs["default.test"][2])
    colons = ":".join(expected[i:i + 2] for i in range(0, len(expected), 2)).upper()
    result = _run_module({"host": "127.0.0.1", "port": server.port, "server_name": "default.test",
                          "expected_fingerprint": colons})
    assert not result.get("failed"), result
    assert result["fingerprint"] == expected


def test_the_module_fails_naming_both_fingerprints_when_another_certificate_is_served(server, certs):
    expected = traefik_tls.leaf_fingerprint(certs["messaging.test"][2])
    served = traefik_tls.leaf_fingerprint(certs["default.test"][2])
    result = _run_module({"host": "127.0.0.1", "port": server.port, "server_name": "default.test",
                          "expected_fingerprint": expected})
    assert result["failed"] is True
    assert result["fingerprint"] == served
    assert served in result["msg"] and expected in result["msg"] and "default.test" in result["msg"]


def test_the_module_fails_with_the_reason_when_nothing_listens():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    result = _run_module({"host": "", "port": port, "server_name": "default.test", "timeout": 2})
    assert result["failed"] is True
    assert "cannot connect to 127.0.0.1:%d" % port in result["msg"]
    assert "fingerprint" not in result

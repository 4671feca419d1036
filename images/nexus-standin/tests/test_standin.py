"""The stand-in's start-up contract, run in-process (the image itself is checked by molecule/nexus)."""

from __future__ import annotations

import datetime
import json
import os
import ssl
import sys
import threading
import urllib.error
import urllib.request

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src"))
from nexus_standin import __main__ as standin  # noqa: E402  pylint: disable=wrong-import-position


def make_cert(cn="idm-ca"):
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
            .sign(key, hashes.SHA256()))
    return key, cert


def home_with(tmp_path, conf: str, certs=()):
    (tmp_path / "config").mkdir()
    (tmp_path / "cacerts").mkdir()
    (tmp_path / "certificates").mkdir()
    (tmp_path / "config" / "hermod-conf.yml").write_text(conf)
    for name, data in certs:
        (tmp_path / "cacerts" / name).write_bytes(data)
    return tmp_path


def run_main(monkeypatch, home):
    monkeypatch.setenv("HOME", str(home))
    started = threading.Event()
    holder = {"servers": []}
    real = standin.ThreadingHTTPServer

    class Server(real):  # records the servers so the test can reach and stop them
        def __init__(self, *args, **kwargs):
            super().__init__(("127.0.0.1", 0), *args[1:], **kwargs)
            holder.setdefault("server", self)
            holder["servers"].append(self)

        def serve_forever(self, *args, **kwargs):
            started.set()
            super().serve_forever(*args, **kwargs)

    monkeypatch.setattr(standin, "ThreadingHTTPServer", Server)
    monkeypatch.setattr(standin.signal, "signal", lambda *_: None)
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("rc", standin.main()), daemon=True)
    thread.start()
    started.wait(10)
    thread.join(0.2)
    run_main.servers = holder["servers"]
    return holder.get("server"), thread, result


def test_relaxed_binding_reads_the_guide_spellings():
    cfg = standin.normalise({"server": {"ssl": {"keyStoreType": "PKCS12", "key-store": "a"}},
                             "server.port": 20401, "messageServer": {"public-url": "https://p/ms"}})
    assert cfg == {"server": {"ssl": {"key-store-type": "PKCS12", "key-store": "a"}, "port": 20401},
                   "message-server": {"public-url": "https://p/ms"}}
    assert standin.find_key(cfg, "public-url") == "https://p/ms"


def test_alias_lines_then_banner_then_health(tmp_path, monkeypatch, capsys):
    _, cert = make_cert()
    home = home_with(tmp_path, "server:\n  port: 0\nx:\n  public-url: https://p/ms\n",
                     [("Idm-CA.cer", cert.public_bytes(serialization.Encoding.PEM)), ("junk.cer", b"no"),
                      ("readme.txt", b"ignored")])
    server, thread, _ = run_main(monkeypatch, home)
    assert server is not None
    try:
        port = server.server_address[1]
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/actuator/health", timeout=5) as resp:
            assert json.loads(resp.read()) == {"status": "UP"}
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/hermod/rest/actuator/health", timeout=5)
        assert err.value.code == 404
    finally:
        server.shutdown()
        thread.join(5)
    out = capsys.readouterr().out.splitlines()
    alias = out.index("INFO: Adding certificate Idm-CA.cer using alias idm-ca")
    banner = next(i for i, line in enumerate(out) if line.startswith("|_| |_|_____|"))
    assert alias < banner
    assert out[alias + 1].startswith("ERROR: Certificate junk.cer not added")
    assert (home / "logs" / "hermod.log").read_text().startswith("INFO: Adding certificate Idm-CA.cer")
    assert (home / "tmp").is_dir()


def test_management_port_moves_the_actuator(tmp_path, monkeypatch):
    home = home_with(tmp_path, "server:\n  port: 0\nmanagement:\n  server:\n    port: 1\npublic-url: https://p/ms\n")
    server, thread, _ = run_main(monkeypatch, home)
    assert server is not None
    app, management = run_main.servers
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{app.server_address[1]}/actuator/health", timeout=5)
        assert err.value.code == 404
        url = f"http://127.0.0.1:{management.server_address[1]}/actuator/health"
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert json.loads(resp.read()) == {"status": "UP"}
    finally:
        for httpd in (app, management):
            httpd.shutdown()
        thread.join(5)


def test_https_from_a_pkcs12_keystore_with_keystoretype(tmp_path, monkeypatch):
    key, cert = make_cert("localhost")
    conf = ("server:\n  port: 0\n  ssl:\n    enabled: true\n    key-store: /KS\n"
            "    key-store-password: s3cret\n    keyStoreType: PKCS12\npublic-url: https://p/ms\n")
    home = home_with(tmp_path, conf)
    store = home / "certificates" / "messaging.p12"
    store.write_bytes(pkcs12.serialize_key_and_certificates(
        b"m", key, cert, None, serialization.BestAvailableEncryption(b"s3cret")))
    (home / "config" / "hermod-conf.yml").write_text(conf.replace("/KS", str(store)))
    server, thread, _ = run_main(monkeypatch, home)
    assert server is not None
    try:
        ctx = ssl.create_default_context(cadata=cert.public_bytes(serialization.Encoding.PEM).decode())
        url = f"https://localhost:{server.server_address[1]}/actuator/health"
        with urllib.request.urlopen(url, timeout=5, context=ctx) as resp:
            assert json.loads(resp.read()) == {"status": "UP"}
    finally:
        server.shutdown()
        thread.join(5)
    assert not [n for n in os.listdir(home / "tmp") if n.startswith("keystore-")]


@pytest.mark.parametrize("conf, message", [
    ("server:\n  port: 0\n", "public-url is not set"),
    ("public-url: https://p/ms\nserver:\n  ssl:\n    enabled: true\n    keyStoreType: JKS\n",
     "only PKCS12 is supported"),
    ("public-url: https://p/ms\nserver:\n  ssl:\n    enabled: true\n    key-store-password: x\n",
     "server.ssl.key-store is not set"),
])
def test_bad_configuration_stops_the_start(tmp_path, monkeypatch, capsys, conf, message):
    monkeypatch.setenv("HOME", str(home_with(tmp_path, conf)))
    assert standin.main() == 2
    assert message in capsys.readouterr().out


def test_unwritable_home_stops_the_start(tmp_path, monkeypatch, capsys):
    # A file where logs/ must go fails for root too (a read-only root is checked on the image).
    home = home_with(tmp_path, "public-url: https://p/ms\n")
    (home / "logs").write_text("not a folder")
    monkeypatch.setenv("HOME", str(home))
    assert standin.main() == 2
    out = capsys.readouterr().out
    assert f"ERROR: cannot write logs and temporary files under {home}" in out
    assert "Adding certificate" not in out

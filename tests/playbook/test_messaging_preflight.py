"""The callback preflight against real HTTPS receivers on a Docker network of the test's own.

A receiver whose certificate comes from the CA in cacerts/ passes (address, subject and expiry
reported); one whose CA is not in cacerts/ fails, naming the client and the missing CA; the
same with callback_reachable: false only warns; a host that does not resolve fails."""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from conftest import NOW, DAY, cert_pem, key_pem, make_cert

pytestmark = pytest.mark.skipif(shutil.which("docker") is None, reason="needs a Docker engine")

NET = "preflight-test-net"


def docker(*args, check=False):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def reference_image():
    """The newest locally built reference messaging image (it ships hermod-callback-receiver)."""
    out = docker("images", "smartid/messaging", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    tagged = [ref for ref in out if not ref.endswith(":<none>")]
    if not tagged:
        pytest.skip("no smartid/messaging image built on this machine (make deploy builds it)")
    return tagged[0]


def server_cert(ca_key, ca_cert, host):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_cert.subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(NOW - DAY).not_valid_after(NOW + 30 * DAY)
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


@pytest.fixture(scope="module")
def receivers(tmp_path_factory):
    """Two receivers: trusted.preflight.test (CA in cacerts/) and rogue.preflight.test (CA not)."""
    image = reference_image()
    tmp = tmp_path_factory.mktemp("preflight")
    trusted_ca_key, trusted_ca = make_cert("Preflight Trusted CA")
    rogue_ca_key, rogue_ca = make_cert("Preflight Rogue CA")
    docker("network", "rm", NET)
    docker("network", "create", NET, check=True)
    names = []
    for name, (ca_key, ca) in {"trusted": (trusted_ca_key, trusted_ca), "rogue": (rogue_ca_key, rogue_ca)}.items():
        host = "%s.preflight.test" % name
        key, cert = server_cert(ca_key, ca, host)
        folder = tmp / name
        folder.mkdir()
        (folder / "server.pem").write_bytes(cert_pem(cert))
        (folder / "server.key").write_bytes(key_pem(key))
        os.chmod(folder, 0o755)
        for f in folder.iterdir():
            os.chmod(f, 0o644)
        container = "preflight-test-" + name
        docker("rm", "-f", container)
        docker("run", "-d", "--name", container, "--network", NET, "--network-alias", host,
               "-v", "%s:/tls:ro" % folder, "--entrypoint", "/opt/hermod/bin/hermod-callback-receiver", image,
               "--host", "0.0.0.0", "--port", "8443", "--basic-auth", "u:p",
               "--tls-cert", "/tls/server.pem", "--tls-key", "/tls/server.key", check=True)
        names.append(container)
    compose_dir = tmp / "messaging"
    (compose_dir / "cacerts").mkdir(parents=True)
    (compose_dir / "cacerts" / "preflight-trusted-ca.cer").write_bytes(cert_pem(trusted_ca))
    os.chmod(compose_dir / "cacerts", 0o755)
    yield compose_dir
    for container in names:
        docker("rm", "-f", container)
    docker("network", "rm", NET)


def client(cid, host, **extra):
    return dict({"client_id": cid, "group": "smartid", "callback_url": "https://%s:8443/ws/hermod" % host}, **extra)


def run_preflight(harness, compose_dir, clients):
    return harness.run("preflight_messaging.yml", extra={
        "messaging_compose_dir": str(compose_dir),
        "messaging_network_name": NET,
        "messaging_clients": clients,
    })


def wait_until_listening(harness, compose_dir):
    """The receivers need a moment to listen after `docker run -d`."""
    deadline = datetime.datetime.now() + datetime.timedelta(seconds=60)
    while datetime.datetime.now() < deadline:
        proc = run_preflight(harness, compose_dir, [client("idm", "trusted.preflight.test")])
        if proc.returncode == 0:
            return proc
        time.sleep(1)
    return proc


def test_trusted_receiver_passes_with_address_subject_and_expiry(harness, receivers):
    proc = wait_until_listening(harness, receivers)
    assert proc.returncode == 0, proc.output
    line = next(l for l in proc.output.splitlines() if "trusted.preflight.test:8443" in l)
    assert " ok " in line and "commonName=trusted.preflight.test" in line
    assert "issuer commonName=Preflight Trusted CA" in proc.output
    assert any(part.count(".") == 3 for part in line.split()), line  # the resolved IPv4 address


def test_receiver_whose_ca_is_not_in_cacerts_fails_naming_client_and_ca(harness, receivers):
    wait_until_listening(harness, receivers)
    proc = run_preflight(harness, receivers, [client("idm", "trusted.preflight.test"),
                                               client("da", "rogue.preflight.test")])
    assert proc.returncode != 0, proc.output
    assert "callback preflight failed" in proc.output
    assert "client da: the callback server rogue.preflight.test:8443" in proc.output
    assert "The CA that issued it ('commonName=Preflight Rogue CA') is missing" in proc.output
    assert "(preflight-trusted-ca.cer)" in proc.output
    assert "client idm:" not in proc.output


def test_client_marked_not_reachable_only_warns(harness, receivers):
    wait_until_listening(harness, receivers)
    proc = run_preflight(harness, receivers, [client("idm", "trusted.preflight.test"),
                                               client("da", "rogue.preflight.test", callback_reachable=False)])
    assert proc.returncode == 0, proc.output
    assert "WARNING (callback_reachable: false)" in proc.output
    assert "client da: the callback server rogue.preflight.test:8443" in proc.output


def test_unresolvable_callback_host_fails(harness, receivers):
    proc = run_preflight(harness, receivers, [client("idm", "nowhere.preflight.test")])
    assert proc.returncode != 0, proc.output
    assert "client idm: callback nowhere.preflight.test:8443 unresolved: nowhere.preflight.test does not resolve" in proc.output

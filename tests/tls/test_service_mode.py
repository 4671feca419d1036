"""messaging_tls_termination: service — TLS ends in the messaging service; Traefik routes the
encrypted stream by SNI (TCP router, passthrough) and never sees HTTP.

A second Traefik instance (trtest-traefik-svc) deployed by the role in service mode in front of a
TLS-speaking stand-in backend (trtest-backend-tls) whose certificate is signed by the first
instance's CA.
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import tempfile
from pathlib import Path

import pytest
from cryptography import x509

from conftest import BASE_IMAGE, HERE, NET, docker
from stack import ansible_playbook, issue, served_serial, wait_ready
from tlsclient import Endpoint, plain_request, request

BACKEND_TLS = "trtest-backend-tls"


@pytest.fixture(scope="module")
def service_mode(test_instance):
    work = Path(tempfile.mkdtemp(prefix="trtest-svc-", dir="/var/tmp"))
    certs = work / "certs"
    certs.mkdir()
    cert_file, key_file, serial = issue(test_instance, certs, "localhost")
    certs.chmod(0o755)
    Path(key_file).chmod(0o644)  # the stand-in runs as nobody; a throwaway test key
    docker("rm", "-f", BACKEND_TLS, check=False)
    docker("run", "-d", "--name", BACKEND_TLS, "--label", "trtest=1", "--network", NET, "--user", "65534:65534",
           "-e", "STANDIN_TLS_CERT=/certs/localhost.crt", "-e", "STANDIN_TLS_KEY=/certs/localhost.key",
           "-v", f"{HERE / 'fixtures' / 'standin_backend.py'}:/standin.py:ro", "-v", f"{certs}:/certs:ro",
           BASE_IMAGE, "python3", "/standin.py", "20443")
    variables = dict(test_instance.variables,
                     traefik_smartid_home=str(work / "home"),
                     traefik_compose_project="trtest-traefik-svc", traefik_container_name="trtest-traefik-svc",
                     traefik_http_port=test_instance.http_port + 1,
                     traefik_https_port=test_instance.endpoint.port + 1,
                     traefik_extra_networks=[],
                     traefik_tls_termination="service",
                     traefik_passthrough_address=f"{BACKEND_TLS}:20443")
    proc = ansible_playbook(HERE / "deploy_test_instance.yml", variables)
    component = work / "home" / "docker" / "compose" / "traefik"
    try:
        assert proc.returncode == 0, proc.stdout[-5000:]
        endpoint = Endpoint("localhost", "127.0.0.1", variables["traefik_https_port"], str(test_instance.ca_cert))
        wait_ready(endpoint)
        yield {"endpoint": endpoint, "serial": serial, "http_port": variables["traefik_http_port"],
               "component": component, "run": proc}
    finally:
        if (component / "docker-compose.yml").exists():
            docker("compose", "--project-directory", component, "down", check=False)
        docker("rm", "-f", BACKEND_TLS, check=False)
        shutil.rmtree(work, ignore_errors=True)


def test_the_service_certificate_is_served_end_to_end(service_mode):
    assert served_serial(service_mode["endpoint"]) == service_mode["serial"]


def test_http_passes_through_untouched(service_mode):
    resp = request(service_mode["endpoint"], "/command/ping", method="POST", body=b"{}")
    assert resp.status == 200
    body = json.loads(resp.body)
    assert body["standin"] is True
    # Traefik did not terminate TLS, so it added no forwarding headers and no HSTS.
    assert body["x_forwarded_for"] is None
    assert resp.headers["Strict-Transport-Security"] is None


def test_other_sni_is_not_passed_to_the_service(service_mode):
    ep = service_mode["endpoint"]
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE  # look at whatever is served for a foreign name
    try:
        with socket.create_connection((ep.connect, ep.port), timeout=5) as raw:
            with ctx.wrap_socket(raw, server_hostname="other.example.org") as tls:
                der = tls.getpeercert(binary_form=True)
    except ssl.SSLError:
        return  # refused outright: not passed through either
    assert x509.load_der_x509_certificate(der).serial_number != service_mode["serial"]


def test_http_still_redirects_to_https(service_mode):
    resp = plain_request("127.0.0.1", service_mode["http_port"], "localhost", "/ms/x")
    assert resp.status in (301, 308)
    assert resp.headers["Location"] == f"https://localhost:{service_mode['endpoint'].port}/ms/x"


def test_no_http_routers_or_certificates_in_service_mode(service_mode):
    dynamic = service_mode["component"] / "config" / "dynamic"
    assert sorted(p.name for p in dynamic.iterdir()) == ["tcp.yml", "tls.yml"]
    assert "passthrough: true" in (dynamic / "tcp.yml").read_text()
    assert list((service_mode["component"] / "certificates").iterdir()) == []

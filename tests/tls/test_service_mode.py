"""messaging_tls_termination: service — TLS ends in the messaging service; Traefik routes the
encrypted stream by SNI (TCP router, passthrough) and never sees HTTP.

A second Traefik instance (trtest-traefik-svc) deployed by the role in service mode in front of a
TLS-speaking stand-in backend (trtest-backend-tls) whose certificate is signed by the first
instance's CA. Traefik opens each backend connection with a PROXY protocol v2 header naming the
client (traefik_passthrough_proxy_protocol), as playbooks/vars/wiring.yml wires it for the reference
service, whose /command and /util allow-list needs the client's address; the stand-in reads the
header as the service does. What the messaging role writes for this mode (operator port,
PROXY protocol port, the allow-list from traefik_command_source_ranges) is checked below with
the role's own variables.
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import socket
import ssl
import tempfile
from pathlib import Path

import pytest
import yaml
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
           "-e", "STANDIN_PROXY_PROTOCOL=2",
           "-v", f"{HERE / 'fixtures' / 'standin_backend.py'}:/standin.py:ro", "-v", f"{certs}:/certs:ro",
           BASE_IMAGE, "python3", "/standin.py", "20443")
    variables = dict(test_instance.variables,
                     traefik_smartid_home=str(work / "home"),
                     traefik_compose_project="trtest-traefik-svc", traefik_container_name="trtest-traefik-svc",
                     traefik_http_port=test_instance.http_port + 1,
                     traefik_https_port=test_instance.endpoint.port + 1,
                     traefik_extra_networks=[],
                     traefik_tls_termination="service",
                     traefik_passthrough_address=f"{BACKEND_TLS}:20443",
                     traefik_passthrough_proxy_protocol=2)
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
    tcp = yaml.safe_load((dynamic / "tcp.yml").read_text())["tcp"]
    assert tcp["routers"]["messaging-passthrough"]["tls"] == {"passthrough": True}
    assert tcp["services"]["messaging-passthrough"]["loadBalancer"]["serversTransport"] == "messaging-proxy-protocol"
    assert tcp["serversTransports"]["messaging-proxy-protocol"] == {"proxyProtocol": {"version": 2}}
    assert list((service_mode["component"] / "certificates").iterdir()) == []


def test_the_backend_learns_the_client_address_from_the_proxy_protocol_header(service_mode):
    """The service's allow-list must see the client, not Traefik: with TLS passed through, the
    PROXY protocol header is the only place Traefik can put the client's address."""
    resp = request(service_mode["endpoint"], "/command/ping", method="POST", body=b"{}")
    assert resp.status == 200
    peer = json.loads(resp.body)["peer"]
    traefik_ips = set(docker("inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}",
                             "trtest-traefik-svc").stdout.split())
    assert ipaddress.ip_address(peer)  # an address, from the header
    assert traefik_ips and peer not in traefik_ips  # not Traefik's own, which a plain TCP peer would be


def render_messaging_config(tmp_path: Path, variables: dict) -> dict:
    """hermod-conf.yml as the messaging role renders it (its defaults and vars/main.yml)."""
    dest = tmp_path / f"hermod-conf-{len(list(tmp_path.iterdir()))}.yml"
    proc = ansible_playbook(HERE / "render_messaging_config.yml", {**variables, "render_dest": str(dest)})
    assert proc.returncode == 0, proc.stdout[-4000:]
    return yaml.safe_load(dest.read_text())


def test_the_messaging_role_writes_the_service_mode_keys_from_traefiks_allow_list(tmp_path):
    ranges = ["10.20.0.0/16", "2001:db8::/32"]
    conf = render_messaging_config(tmp_path, {"traefik_command_source_ranges": ranges,
                                    "messaging_command_source_ranges": "{{ traefik_command_source_ranges }}",
                                    "messaging_tls_termination": "service"})
    assert conf["server"]["ssl"]["enabled"] is True and conf["server"]["port"] == 20400
    assert conf["management"]["server"]["port"] == 20401
    assert conf["hermod"]["proxy-protocol"]["port"] == 20402
    assert conf["hermod"]["source-ranges"] == {"command": ranges, "util": ranges}
    # An image without PROXY protocol support: no such key; traefik mode: none of them.
    conf = render_messaging_config(tmp_path, {"messaging_tls_termination": "service",
                                              "messaging_proxy_protocol_port": 0})
    assert "proxy-protocol" not in conf["hermod"]
    conf = render_messaging_config(tmp_path, {"messaging_tls_termination": "traefik"})
    assert "management" not in conf and "source-ranges" not in conf.get("hermod", {})

"""The deployed HTTPS endpoint: Mozilla intermediate TLS, redirect, HSTS, access log, no API.

Runs against the session's test instance, or against $TRAEFIK_TEST_URL (see conftest.py).
"""

from __future__ import annotations

import json
import ssl
import subprocess
import time
import uuid

import pytest

from conftest import HERE, docker
from tlsclient import context, handshake, plain_request, request

TWO_YEARS = 63072000


@pytest.fixture(scope="module")
def scan(target, sslyze_python):
    ep = target.endpoint
    proc = subprocess.run(
        [str(sslyze_python), str(HERE / "sslyze_scan.py"), ep.connect, str(ep.port), ep.hostname, ep.ca_file],
        capture_output=True, text=True, check=True, timeout=300,
    )
    return json.loads(proc.stdout)


def test_sslyze_scan_completed(scan):
    assert scan["scan_status"] == "COMPLETED"
    assert scan["errors"] == []


def test_mozilla_intermediate_profile_passes(scan):
    assert scan["mozilla_intermediate_issues"] == {}


def test_certificate_verifies_against_the_bundle_ca(scan):
    assert scan["certificate_trusted"] is True
    assert "Supplied CA file" in scan["trusted_by"]


def test_only_tls12_and_tls13_are_offered(scan):
    assert scan["versions"] == {"SSLv2": False, "SSLv3": False, "TLSv1.0": False, "TLSv1.1": False,
                                "TLSv1.2": True, "TLSv1.3": True}


def test_tls12_suites_are_ecdhe_aead_only(scan):
    suites = scan["ciphers"]["TLSv1.2"]
    assert suites, "no TLS 1.2 suite accepted"
    for suite in suites:
        assert suite.startswith("TLS_ECDHE_"), suite
        assert "GCM" in suite or "CHACHA20_POLY1305" in suite, suite


def test_curves_are_x25519_p256_p384(scan):
    assert set(scan["curves"]) <= {"X25519", "secp256r1", "secp384r1"}
    assert "X25519" in scan["curves"]


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1])
def test_legacy_tls_versions_are_refused_by_the_server(target, version):
    # SECLEVEL=0 lets this machine's OpenSSL offer TLS 1.0/1.1 at all, so a refusal comes from the server.
    ctx = context(target.endpoint.ca_file, minimum=version, maximum=version, ciphers="DEFAULT:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError) as err:
        handshake(target.endpoint, ctx)
    assert "NO_PROTOCOLS_AVAILABLE" not in str(err.value).upper().replace(" ", "_"), err.value
    assert "PROTOCOL_VERSION" in str(err.value).upper().replace(" ", "_"), err.value


def test_tls12_handshake_with_the_same_client_succeeds(target):
    """Control for the test above: the client that fails on TLS 1.0/1.1 works on TLS 1.2."""
    ctx = context(target.endpoint.ca_file, minimum=ssl.TLSVersion.TLSv1_2, maximum=ssl.TLSVersion.TLSv1_2,
                  ciphers="DEFAULT:@SECLEVEL=0")
    version, cipher = handshake(target.endpoint, ctx)
    assert version == "TLSv1.2"
    assert "GCM" in cipher or "CHACHA20" in cipher


def test_cbc_suites_are_refused(target):
    ctx = context(target.endpoint.ca_file, maximum=ssl.TLSVersion.TLSv1_2,
                  ciphers="ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA:"
                          "ECDHE-RSA-AES128-SHA:ECDHE-ECDSA-AES256-SHA:ECDHE-RSA-AES256-SHA")
    with pytest.raises(ssl.SSLError):
        handshake(target.endpoint, ctx)


def test_http_redirects_permanently_to_https(target):
    ep = target.endpoint
    resp = plain_request(ep.connect, target.http_port, ep.hostname, f"{ep.base_path}/ms/abc?x=1")
    assert resp.status in (301, 308)
    port = "" if ep.port == 443 else f":{ep.port}"
    assert resp.headers["Location"] == f"https://{ep.hostname}{port}{ep.base_path}/ms/abc?x=1"


@pytest.mark.parametrize("path,method", [("/ms/x", "GET"), ("/command/ping", "POST"), ("/util/generateclient/x", "GET")])
def test_hsts_two_years_on_every_router(target, path, method):
    resp = request(target.endpoint, target.endpoint.base_path + path, method=method, body=b"{}" if method == "POST" else None)
    assert resp.status < 500
    hsts = resp.headers["Strict-Transport-Security"]
    assert hsts is not None
    assert f"max-age={TWO_YEARS}" in hsts


def test_public_path_reaches_the_backend_over_https(target):
    resp = request(target.endpoint, target.endpoint.base_path + "/ms/x")
    assert resp.status == 200
    assert resp.tls_version in ("TLSv1.2", "TLSv1.3")


def test_path_prefix_is_exact(target):
    # /msx is not under /ms: no router, no backend.
    assert request(target.endpoint, target.endpoint.base_path + "/msx").status == 404


@pytest.mark.parametrize("path", ["/api/rawdata", "/api/overview", "/dashboard/", "/ping", "/actuator/health"])
def test_no_api_dashboard_ping_or_actuator_on_websecure(target, path):
    assert request(target.endpoint, path).status == 404


def test_access_log_is_json_keeps_errors_only_and_drops_credentials(target):
    """The default filter logs 4xx/5xx (refusals, unknown references, failures), not successes;
    a logged request never carries the credential headers."""
    marker, ok_marker = uuid.uuid4().hex, uuid.uuid4().hex
    secret_key, secret_auth = f"key-{uuid.uuid4().hex}", f"Basic {uuid.uuid4().hex}"
    headers = {"X-Api-Key": secret_key, "Authorization": secret_auth, "User-Agent": f"ua-{marker}"}
    # The success first: the writer keeps the order, so once the error's line is there the
    # success's would be too.
    assert request(target.endpoint, f"{target.endpoint.base_path}/ms/{ok_marker}", headers=headers).status == 200
    resp = request(target.endpoint, f"{target.endpoint.base_path}/ms/missing-{marker}", headers=headers)
    assert resp.status == 404
    logs = ""
    for _ in range(20):
        proc = docker("logs", target.container, check=False)
        logs = proc.stdout + proc.stderr
        if marker in logs:
            break
        time.sleep(0.5)
    lines = [json.loads(line) for line in logs.splitlines() if marker in line]
    assert lines, "the 404 is not in the access log"
    entry = lines[-1]
    assert entry["RequestPath"].endswith(marker) and entry["DownstreamStatus"] == 404
    assert entry["request_User-Agent"] == f"ua-{marker}"  # headers are logged in general ...
    assert "request_X-Api-Key" not in entry and "request_Authorization" not in entry  # ... but not these
    assert secret_key not in logs and secret_auth not in logs
    assert ok_marker not in logs, "a successful request was logged (traefik_access_log_status_codes)"


def test_aliased_header_names_do_not_reach_the_backend(target):
    resp = request(target.endpoint, f"{target.endpoint.base_path}/ms/alias",
                   headers={"X_Real_Ip": "203.0.113.9", "X.Forwarded.For": "203.0.113.9", "X-Plain": "1"})
    assert resp.status == 200
    body = json.loads(resp.body)
    if not body.get("standin"):
        pytest.skip("only the stand-in backend echoes header names")
    names = {n.lower() for n in body["header_names"]}
    assert "x-plain" in names
    assert "x_real_ip" not in names and "x.forwarded.for" not in names
    assert body["x_real_ip"] != "203.0.113.9"

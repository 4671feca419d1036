"""End to end on this machine's engine: the role deploys the reference image with the service
terminating TLS (keystore built on the controller from a PEM key and certificate), the port
published on 127.0.0.1, the REST API under /hermod/rest, the start-up check passes, a second run changes nothing and restarts
nothing, and no secret reaches the output even at -vvv.

The database it needs is deployed first by stack_base.yml (images, smartid_home, database);
the runs under test are the messaging role's alone (site_messaging.yml)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import urllib.error
import urllib.request

import pytest
import yaml

from conftest import ROOT, cert_der, cert_pem, key_pem, make_cert

pytestmark = pytest.mark.skipif(shutil.which("docker") is None, reason="needs a Docker engine")

# The messaging role's default messaging_command_source_ranges (traefik's default allow-list).
DEFAULT_RANGES = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "::1/128"]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def docker(*args):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def stack(harness):
    yield harness
    prefix = harness.vars["smartid_compose_project_prefix"]
    for component in ("messaging", "database"):
        folder = harness.home / "docker" / "compose" / component
        if (folder / "docker-compose.yml").exists():
            subprocess.run(["docker", "compose", "--project-directory", str(folder), "down", "--volumes"],
                           capture_output=True, check=False)
    docker("network", "rm", harness.vars["smartid_network_name"])
    assert prefix.startswith("msgrole-")


def started_at(harness):
    folder = harness.home / "docker" / "compose" / "messaging"
    cid = subprocess.run(["docker", "compose", "--project-directory", str(folder), "ps", "-q", "messaging"],
                         capture_output=True, text=True, check=True).stdout.strip()
    return json.loads(docker("inspect", cid).stdout)[0]["State"]["StartedAt"]


def test_service_tls_deploy_is_idempotent_and_quiet(stack, tmp_path):
    h = stack
    key, cert = make_cert("localhost")
    (tmp_path / "tls.key").write_bytes(key_pem(key))
    (tmp_path / "tls.crt").write_bytes(cert_pem(cert))
    _, ca = make_cert("Callback CA")
    h.add_cert("callback-ca.der", cert_der(ca))
    port = free_port()
    name = h.vars["messaging_compose_project"]
    keystore_password = "ks-" + h.secret
    extra = {
        "smartid_home": str(h.home),
        "smartid_network_name": h.vars["messaging_network_name"],
        "smartid_compose_project_prefix": name + "-",
        "images_repo_root": ROOT,
        "database_sql_dir": os.path.join(ROOT, "images", "messaging", "sql", "postgresql"),
        "images_components": [{"name": "database", "context": "postgres"},
                              {"name": "messaging", "context": "messaging"}],
        "database_password": h.db_password,
        "messaging_compose_project": name + "-messaging",
        "messaging_tls_termination": "service",
        "messaging_keystore_key_src": str(tmp_path / "tls.key"),
        "messaging_keystore_cert_src": str(tmp_path / "tls.crt"),
        "messaging_keystore_password": keystore_password,
        "messaging_keystore_build_dir": str(tmp_path / "keystore-build"),
        "messaging_publish_port": True,
        "messaging_publish_host_port": port,
        # The standalone base path: the container's health check stays on the actuator outside it.
        "messaging_base_path": "/hermod/rest",
        "messaging_public_url": "https://messaging.test/hermod/rest/ms",
    }
    h.vars.update(extra)
    image_file = tmp_path / "messaging-image"
    base = h.run("stack_base.yml", extra={"msgrole_image_file": str(image_file)})
    assert base.returncode == 0, base.output[-6000:]
    h.vars["messaging_image"] = image_file.read_text().strip()

    first = h.run("site_messaging.yml", args=["-vvv"])
    assert first.returncode == 0, first.output[-6000:]
    assert "certificates loaded before the banner" in first.output
    h.assert_no_secret(first.output)
    assert keystore_password not in first.output

    folder = h.home / "docker" / "compose" / "messaging"
    store = folder / "certificates" / "messaging.p12"
    assert oct(store.stat().st_mode & 0o777) == "0o640" and store.stat().st_gid == 1000
    assert sorted(os.listdir(folder / "cacerts")) == ["callback-ca.cer"]
    ctx = ssl.create_default_context(cadata=cert_pem(cert).decode())
    ctx.check_hostname = False
    # The published port carries the device side and the commands; the operator endpoints are on
    # the operator port, which is not published (the container health check uses it: healthy).
    for path, status in (("/ms/command/" + "A" * 43, 404), ("/actuator/health/liveness", 404),
                         ("/v3/api-docs", 404), ("/util/generateclient/idm", 404)):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen("https://127.0.0.1:%d%s" % (port, path), context=ctx, timeout=10)
        assert refused.value.code == status, path
    conf = yaml.safe_load((folder / "config" / "hermod-conf.yml").read_text())
    assert conf["management"]["server"]["port"] == 20401
    assert conf["hermod"]["proxy-protocol"]["port"] == 20402
    assert conf["hermod"]["source-ranges"] == {"command": h.vars.get("messaging_command_source_ranges", DEFAULT_RANGES),
                                               "util": h.vars.get("messaging_command_source_ranges", DEFAULT_RANGES)}
    compose = yaml.safe_load((folder / "docker-compose.yml").read_text())
    assert compose["services"]["messaging"]["ports"] == ["127.0.0.1:%d:20400" % port]
    before = started_at(h)

    second = h.run("site_messaging.yml")
    assert second.returncode == 0, second.output[-6000:]
    recap = [line for line in second.output.splitlines() if line.startswith("localhost")]
    assert recap and "changed=0" in recap[-1], second.output[-3000:]
    assert started_at(h) == before

    check = h.run("site_messaging.yml", check=True, args=["-vvv"])
    assert check.returncode == 0, check.output[-6000:]
    assert "changed=0" in [line for line in check.output.splitlines() if line.startswith("localhost")][-1]
    h.assert_no_secret(check.output)

    # The vendor's troubleshooting case: the cacerts folder unreadable for the container user.
    cacerts = folder / "cacerts"
    cacerts.chmod(0o700)
    subprocess.run(["docker", "compose", "--project-directory", str(folder), "restart"], check=True,
                   capture_output=True)
    broken = h.run("verify_messaging.yml", extra={"messaging_verify_retries": 20})
    assert broken.returncode != 0
    assert "cacerts folder permissions: %s (mode 0700" % cacerts in broken.output, broken.output[-4000:]
    assert "no line 'INFO: Adding certificate callback-ca.cer using alias ...' in the log" in broken.output

    # The role repairs the mode and restarts the service, and the check passes again.
    fixed = h.run("site_messaging.yml")
    assert fixed.returncode == 0, fixed.output[-6000:]
    assert "RUNNING HANDLER [smartid.hermod.messaging : Restart messaging]" in fixed.output
    assert "certificates loaded before the banner: callback-ca.cer" in fixed.output
    assert h.run("verify_messaging.yml").returncode == 0

"""End to end on this machine's engine: an "external" PostgreSQL (a container of the bundle's
image with ssl=on and a server certificate from a test CA, on the stack's network as
pg-tls.test). The database role installs the schema from its throwaway client container over
TLS verify-full, and the messaging role deploys the reference service, whose JDBC URL carries
sslmode=verify-full and the CA in certificates/; every connection the server sees from them is
TLS. A second run changes nothing; another CA is refused; no secret reaches the output."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml
from pg_tls import HOST, docker, network_connections, server_sql, start_server

from conftest import ROOT, cert_pem, make_cert

pytestmark = pytest.mark.skipif(shutil.which("docker") is None, reason="needs a Docker engine")


@pytest.fixture
def stack(harness):
    yield harness
    prefix = harness.vars.get("smartid_compose_project_prefix", "")
    for component in ("messaging", "database"):
        folder = harness.home / "docker" / "compose" / component
        if (folder / "docker-compose.yml").exists():
            subprocess.run(["docker", "compose", "--project-directory", str(folder), "down", "--volumes"],
                           capture_output=True, check=False)
    if prefix.startswith("msgrole-"):
        docker("rm", "-f", "-v", prefix + "pgtls")
    docker("network", "rm", harness.vars.get("smartid_network_name", "-"))


def test_external_database_over_tls_verify_full(stack, tmp_path):
    h = stack
    name = h.vars["messaging_compose_project"]
    h.add_cert("callback-ca.pem", cert_pem(make_cert("Callback CA")[1]))
    h.vars.update({
        "smartid_home": str(h.home),
        "smartid_network_name": h.vars["messaging_network_name"],
        "smartid_compose_project_prefix": name + "-",
        "images_repo_root": ROOT,
        "database_sql_dir": os.path.join(ROOT, "images", "messaging", "sql", "postgresql"),
        "images_components": [{"name": "database", "context": "postgres"},
                              {"name": "messaging", "context": "messaging"}],
        "database_password": h.db_password,
        "messaging_compose_project": name + "-messaging",
    })
    image_file = tmp_path / "messaging-image"
    base = h.run("stack_base.yml", extra={"msgrole_image_file": str(image_file)})
    assert base.returncode == 0, base.output[-6000:]
    messaging_image = image_file.read_text().strip()
    database_image = docker("inspect", "-f", "{{.Config.Image}}", name + "-database").stdout.strip()
    assert database_image, "stack_base left no database container"

    # The "managed" server: TLS with a certificate for pg-tls.test from the provider's CA.
    provider_ca = start_server(name + "-pgtls", h.vars["smartid_network_name"], database_image, h.db_password, tmp_path)

    settings = {"database_external": True, "database_host": HOST, "database_image": database_image,
                "messaging_image": messaging_image, "database_external_ca_file": str(tmp_path / "provider-ca.pem")}
    first = h.run("site_database_tls.yml", extra=settings, args=["-vvv"])
    assert first.returncode == 0, first.output[-6000:]
    h.assert_no_secret(first.output)
    assert "certificates loaded before the banner" in first.output

    folder = h.home / "docker" / "compose" / "messaging"
    conf = yaml.safe_load((folder / "config" / "hermod-conf.yml").read_text())
    assert conf["spring"]["datasource"]["url"] == (
        "jdbc:postgresql://%s:5432/hermod?sslmode=verify-full&sslrootcert=/home/docker/certificates/database-ca.pem"
        % HOST)
    assert (folder / "certificates" / "database-ca.pem").read_bytes() == provider_ca
    host_ca = h.home / "docker" / "compose" / "database" / "tls" / "external-ca.pem"
    assert host_ca.read_bytes() == provider_ca

    # The schema came through the client container; the service's connections are all TLS.
    assert server_sql(name + "-pgtls", "SELECT max(version) FROM flyway_schema_history").stdout.strip() == "1.1.0"
    seen = network_connections(name + "-pgtls")
    assert seen and all(ssl for _, ssl in seen), seen

    cid = docker("compose", "--project-directory", str(folder), "ps", "-q", "messaging").stdout.strip()
    before = docker("inspect", "-f", "{{.State.StartedAt}}", cid).stdout.strip()
    second = h.run("site_database_tls.yml", extra=settings)
    assert second.returncode == 0, second.output[-6000:]
    recap = [line for line in second.output.splitlines() if line.startswith("localhost")]
    assert recap and "changed=0" in recap[-1], second.output[-3000:]
    assert docker("inspect", "-f", "{{.State.StartedAt}}", cid).stdout.strip() == before

    # The provider's CA replaced by another one: the client container refuses the server.
    wrong = h.run("site_database_tls.yml", extra=dict(settings, database_external_ca_file=str(tmp_path / "other-ca.pem")))
    assert wrong.returncode != 0
    assert "certificate verify failed" in wrong.output, wrong.output[-4000:]
    h.assert_no_secret(wrong.output)

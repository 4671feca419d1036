"""TLS to an external database through the roles, as Ansible templates them: the wiring from the
database role's settings to messaging, the JDBC URL the image reads (and that the reference
service parses back), the database client's options, and the swarm stack file."""

from __future__ import annotations

import os
import sys

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.smartid.hermod.plugins.module_utils.images_build import images_sync_shared
from templating import trusted

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTION = os.path.join(ROOT, "collections", "ansible_collections", "smartid", "hermod")
SERVICE = os.path.join(ROOT, "images", "messaging")
OMIT = "__omit_place_holder__"


def _yaml(*parts):
    with open(os.path.join(COLLECTION, *parts), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def templar(role, wiring=False, **overrides):
    variables = {"omit": OMIT, "playbook_dir": "/site/playbooks", "inventory_hostname": "node1"}
    for part in ("defaults", "vars"):
        variables.update(_yaml("roles", role, part, "main.yml"))
    if wiring:  # play vars_files win over role defaults, as in the collection's playbooks
        variables.update(_yaml("playbooks", "vars", "wiring.yml"))
    variables.update(overrides)
    return Templar(loader=DataLoader(), variables=trusted(variables))


def value(t, name):
    return t.template(trust_as_template("{{ %s }}" % name))


EXTERNAL = dict(database_external=True, database_host="db.provider.example", database_port=5432,
                database_password="db-S3cret-pw", database_external_ca_file="/site/provider-ca.pem")


def test_wiring_gives_messaging_the_external_databases_tls_settings():
    t = templar("messaging", wiring=True, **EXTERNAL)
    assert value(t, "messaging_database_sslmode") == "verify-full"
    assert value(t, "messaging_database_ca_file") == "/site/provider-ca.pem"
    assert value(t, "messaging_database_jdbc_url") == (
        "jdbc:postgresql://db.provider.example:5432/hermod"
        "?sslmode=verify-full&sslrootcert=/home/docker/certificates/database-ca.pem")
    t = templar("messaging", wiring=True, **dict(EXTERNAL, database_external_sslmode="verify-ca"))
    assert value(t, "messaging_database_jdbc_url").endswith(
        "?sslmode=verify-ca&sslrootcert=/home/docker/certificates/database-ca.pem")


def test_the_bundles_own_container_keeps_its_url_unchanged():
    t = templar("messaging", wiring=True, database_password="db-S3cret-pw")
    assert value(t, "messaging_database_sslmode") == "disable"
    assert value(t, "messaging_database_jdbc_url") == "jdbc:postgresql://database:5432/hermod"
    assert value(t, "messaging_database_ca_verified") is False


def test_require_names_no_ca():
    t = templar("messaging", wiring=True, **dict(EXTERNAL, database_external_sslmode="require"))
    assert value(t, "messaging_database_jdbc_url") == "jdbc:postgresql://db.provider.example:5432/hermod?sslmode=require"
    assert value(t, "messaging_database_ca_verified") is False


def test_a_relative_ca_file_is_beside_the_playbook():
    t = templar("messaging", wiring=True, **dict(EXTERNAL, database_external_ca_file="files/db-ca.pem"))
    assert value(t, "messaging_database_ca_src") == "/site/playbooks/files/db-ca.pem"
    d = templar("database", **dict(EXTERNAL, database_external_ca_file="files/db-ca.pem"))
    assert value(d, "database_external_ca_src") == "/site/playbooks/files/db-ca.pem"


def test_the_reference_service_reads_the_url_the_role_writes(tmp_path):
    images_sync_shared(SERVICE)
    sys.path.insert(0, os.path.join(SERVICE, "src"))
    from hermod_ref import config  # pylint: disable=import-outside-toplevel

    ca = tmp_path / "database-ca.pem"
    ca.write_text(_a_ca_pem())
    t = templar("messaging", wiring=True, **EXTERNAL, messaging_container_certificates_dir=str(tmp_path))
    url = value(t, "messaging_database_jdbc_url")
    assert url.endswith("&sslrootcert=%s" % ca)
    conf = {"spring": {"datasource": {"url": url, "username": "hermod", "password": "db-S3cret-pw"}},
            "message-server": {"public-url": "https://messaging.example/ms"}}
    db = config.from_tree(conf).database
    assert (db.host, db.port, db.name, db.sslmode, db.sslrootcert) == (
        "db.provider.example", 5432, "hermod", "verify-full", str(ca))


def _a_ca_pem():
    import datetime  # pylint: disable=import-outside-toplevel

    from cryptography import x509  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives import hashes, serialization  # pylint: disable=import-outside-toplevel
    from cryptography.hazmat.primitives.asymmetric import ec  # pylint: disable=import-outside-toplevel
    from cryptography.x509.oid import NameOID  # pylint: disable=import-outside-toplevel

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Provider CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


@pytest.mark.parametrize("connection", ["docker_run", "local"])
def test_the_database_client_verifies_an_external_server(connection):
    t = templar("database", **dict(EXTERNAL, database_client_connection=connection))
    options = value(t, "database_client_options")
    assert options["ssl_mode"] == "verify-full"
    assert options["ssl_root_cert"] == "/opt/smartid/docker/compose/database/tls/external-ca.pem"
    assert options["login_host"] == "db.provider.example"


def test_the_database_client_of_the_bundles_container_gets_no_tls_options():
    options = value(templar("database", database_password="db-S3cret-pw"), "database_client_options")
    assert options["ssl_mode"] == OMIT and options["ssl_root_cert"] == OMIT
    options = value(templar("database", **dict(EXTERNAL, database_external_sslmode="require")),
                    "database_client_options")
    assert options["ssl_mode"] == "require" and options["ssl_root_cert"] == OMIT


def test_the_swarm_stack_mounts_the_ca_where_the_url_points():
    t = templar("messaging", wiring=True, **EXTERNAL, messaging_orchestrator="swarm", ansible_managed="managed",
                messaging_swarm_conf_secret="smartid-messaging-conf_v3", messaging_swarm_cacerts=[],
                messaging_swarm_database_ca_config="smartid-messaging-database-ca_v1", smartid_network_name="smartid")
    with open(os.path.join(COLLECTION, "roles", "messaging", "templates", "messaging-stack.yml.j2"),
              encoding="utf-8") as handle:
        stack = yaml.safe_load(t.template(trust_as_template(handle.read())))
    service = stack["services"]["messaging"]
    assert {"source": "smartid-messaging-database-ca_v1", "target": "/home/docker/certificates/database-ca.pem",
            "mode": 0o444} in service["configs"]
    assert stack["configs"] == {"smartid-messaging-database-ca_v1": {"external": True}}

"""Unit tests of the validation concerns of the traefik, docker, smartid_home and database roles.

Each concern is a pure function of the role's variables (and controller files): a valid set
gives no message, each broken rule gives the message naming its variable.
"""

from __future__ import annotations

import datetime
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ansible_collections.smartid.hermod.plugins.action import validate
from ansible_collections.smartid.hermod.plugins.module_utils import (
    database_rules, docker_rules, smartid_home_rules, traefik_certs, traefik_rules)

TRAEFIK_OK = dict(tls_termination="traefik", generated_key_type="ECC", hostname="msg.example.org",
                  http_port=80, https_port=443, command_source_ranges=["10.0.0.0/8", "::1"],
                  public_path_prefixes=["/ms"], private_path_prefixes=["/command"], base_path="/hermod")


def test_traefik_valid_settings_pass():
    assert traefik_rules.check_settings(**TRAEFIK_OK) == []
    for codes in ([], ["400-599"], ["404", "500-503"]):
        assert traefik_rules.check_settings(**dict(TRAEFIK_OK, access_log_status_codes=codes)) == []
    for duration in ("3s", "500ms", "1m30s", "1.5s", "250us", "2h"):
        durations = {"traefik_backend_dial_timeout": duration}
        assert traefik_rules.check_settings(**dict(TRAEFIK_OK, backend_durations=durations)) == []


@pytest.mark.parametrize("change, message", [
    ({"tls_termination": "both"}, "traefik_tls_termination (messaging_tls_termination) is 'both': use traefik"),
    ({"generated_key_type": "DSA"}, "traefik_generated_key_type is 'DSA'; use RSA or ECC."),
    ({"hostname": "bad host"}, "traefik_hostname: 'bad host' is not a valid DNS host name"),
    ({"hostname": ""}, "traefik_hostname: must be a non-empty host name"),
    ({"http_port": 443}, "traefik_http_port (443) and traefik_https_port (443) must be distinct"),
    ({"https_port": 70000}, "traefik_http_port (80) and traefik_https_port (70000) must be distinct"),
    ({"http_port": "x"}, "traefik_http_port (x) and traefik_https_port (443)"),
    ({"command_source_ranges": []}, "traefik_command_source_ranges must be a non-empty list of addresses or networks; invalid: "),
    ({"command_source_ranges": ["10.0.0.1/8", "ok?"]}, "traefik_command_source_ranges must be a non-empty list of addresses or networks; invalid: 10.0.0.1/8, ok?"),
    ({"command_source_ranges": "10.0.0.0/8"}, "traefik_command_source_ranges must be a non-empty list of addresses or networks; invalid: 10.0.0.0/8"),
    ({"public_path_prefixes": []}, "traefik_public_path_prefixes and traefik_private_path_prefixes must be non-empty"),
    ({"private_path_prefixes": ["/a`b"]}, "traefik_public_path_prefixes and traefik_private_path_prefixes must be non-empty"),
    ({"access_log_status_codes": ["400-599", "5xx", "600"]},
     "traefik_access_log_status_codes must be a list of HTTP status codes or ranges such as \"400-599\"; invalid: 5xx, 600"),
    ({"access_log_status_codes": ["599-400"]}, "traefik_access_log_status_codes must be a list of HTTP status codes or ranges"),
    ({"access_log_status_codes": "400-599"}, "traefik_access_log_status_codes must be a list of HTTP status codes or ranges"),
    ({"backend_durations": {"traefik_backend_dial_timeout": "3"}},
     "traefik_backend_dial_timeout is '3': use a positive Go duration such as 3s, 500ms or 1m30s."),
    ({"backend_durations": {"traefik_backend_dial_timeout": "0s"}}, "traefik_backend_dial_timeout is '0s'"),
    ({"backend_durations": {"traefik_backend_health_timeout": "3 s"}}, "traefik_backend_health_timeout is '3 s'"),
    ({"backend_durations": {"traefik_backend_health_interval": "-5s"}}, "traefik_backend_health_interval is '-5s'"),
    ({"backend_durations": {"traefik_backend_health_interval": ""}}, "traefik_backend_health_interval is ''"),
])
def test_traefik_each_broken_rule_names_its_variable(change, message):
    errors = traefik_rules.check_settings(**dict(TRAEFIK_OK, **change))
    assert len(errors) == 1 and errors[0].startswith(message), errors


def _write_pair(tmp_path, host):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    (tmp_path / "c.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "k.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                       serialization.NoEncryption()))
    return cert


def test_traefik_certificate_only_checked_when_traefik_terminates_with_an_operator_cert(tmp_path):
    assert traefik_certs.check_operator_certificate(tls_termination="service", cert_file="x.pem") == []
    assert traefik_certs.check_operator_certificate(tls_termination="traefik", cert_file="") == []


def test_traefik_certificate_needs_its_key():
    assert traefik_certs.check_operator_certificate(cert_file="c.pem", key_file="") == [
        "traefik_tls_cert_file is set (c.pem) but traefik_tls_key_file is empty."]


def test_traefik_certificate_problems_are_one_refusal(tmp_path):
    _write_pair(tmp_path, "msg.example.org")
    errors = traefik_certs.check_operator_certificate(
        cert_file="c.pem", key_file="missing.pem", hostname="other.example.org", base_dir=str(tmp_path))
    assert errors == ["Refusing the TLS certificate: %s/missing.pem: cannot read the key file "
                      "(No such file or directory)" % tmp_path]
    errors = traefik_certs.check_operator_certificate(
        cert_file="c.pem", key_file="k.pem", hostname="other.example.org", base_dir=str(tmp_path))
    assert len(errors) == 1 and errors[0].startswith("Refusing the TLS certificate: %s/c.pem: subjectAltName does not cover"
                                                     % tmp_path), errors


def test_traefik_certificate_min_valid_days_must_be_a_number(tmp_path):
    _write_pair(tmp_path, "msg.example.org")
    errors = traefik_certs.check_operator_certificate(
        cert_file="c.pem", key_file="k.pem", hostname="msg.example.org", min_valid_days="soon", base_dir=str(tmp_path))
    assert errors == ["Refusing the TLS certificate: traefik_tls_min_valid_days must be an integer, not 'soon'"]


@pytest.mark.parametrize("home", ["/opt/smartid", "/srv/a_b"])
def test_smartid_home_accepts_absolute_normalised_paths(home):
    assert smartid_home_rules.check_home(home=home, network_name="smartid") == []


@pytest.mark.parametrize("home", ["relative/smartid", "/", "/opt//smartid", "/opt/smartid/", "/opt/../x", None])
def test_smartid_home_refuses_other_paths(home):
    assert smartid_home_rules.check_home(home=home, network_name="smartid") == [
        "smartid_home must be an absolute path such as /opt/smartid, not '%s'" % home]


@pytest.mark.parametrize("name", ["-net", "a b", "", "ne/t"])
def test_smartid_network_name_must_be_a_docker_name(name):
    assert smartid_home_rules.check_home(home="/opt/smartid", network_name=name) == [
        "smartid_network_name '%s' is not a valid Docker network name" % name]


def test_docker_install_source_and_plugin_file(tmp_path):
    plugin = tmp_path / "docker-compose"
    plugin.write_text("x")
    assert docker_rules.check_install("docker-ce", "") == []
    assert docker_rules.check_install("distro", str(plugin)) == []
    # Only the distro install copies the plugin file.
    assert docker_rules.check_install("docker-ce", str(tmp_path / "none")) == []
    assert docker_rules.check_install("snap", "")[0].startswith("docker_install_source is 'snap': use docker-ce")
    assert docker_rules.check_install("distro", str(tmp_path)) == [
        "docker_compose_plugin_src: %s is not a file on the controller" % tmp_path]


@pytest.mark.parametrize("password, ok", [
    ("correct horse", True), ("short", False), ("two\nlines!", False), ("x$smartid_pw$yyyy", False),
    ("", False), (None, False), (12345678, False)])
def test_database_password(password, ok):
    errors = database_rules.check_password(password)
    assert errors == ([] if ok else ["database_password must be set (vault), at least 8 characters, one line"])
    assert not any(str(password) in e for e in errors if password)


DB_OK = dict(name="smartid", user="smartid_app", port=5432, host="db", schema_version="1.2.0",
             backup_keep=3, client_connection="docker_exec", external=False)


def test_database_connection_valid():
    assert database_rules.check_connection(**DB_OK) == []
    assert database_rules.check_connection(**dict(DB_OK, external=True, client_connection="local")) == []


@pytest.mark.parametrize("change", [
    {"name": "1abc"}, {"user": "a-b"}, {"name": "a" * 64}, {"port": 0}, {"port": 65536}, {"port": "x"},
    {"host": ""}, {"schema_version": "1.02.0"}, {"schema_version": "1.2"}, {"backup_keep": -1},
    {"client_connection": "ssh"}, {"external": True}])
def test_database_connection_broken(change):
    errors = database_rules.check_connection(**dict(DB_OK, **change))
    assert len(errors) == 1 and errors[0].startswith("database settings: database_name/database_user")
    assert "(is %s)" % dict(DB_OK, **change)["schema_version"] in errors[0]


def test_database_container_mode():
    ok = dict(external=False, image="postgres:16", compose_dir="/opt/s/db", backup_dir="/opt/s/bak", network_alias="db")
    assert database_rules.check_container(**ok) == []
    assert database_rules.check_container(**dict(ok, external=True, image="")) == []
    for change in ({"image": ""}, {"compose_dir": "db"}, {"backup_dir": "bak"}, {"network_alias": ""}):
        assert database_rules.check_container(**dict(ok, **change)) == [
            "database_image must be set; database_compose_dir and database_backup_dir must be absolute paths"]


def test_database_sql_dir(tmp_path):
    assert database_rules.check_sql_dir(migrate=False, sql_dir=str(tmp_path / "none")) == []
    assert database_rules.check_sql_dir(True, str(tmp_path / "none"), "1.0.0") == [
        "database_sql_dir %s/none holds no SQL files" % tmp_path]
    (tmp_path / "README").write_text("x")
    assert database_rules.check_sql_dir(True, str(tmp_path), "1.0.0") == [
        "database_sql_dir %s holds no SQL files" % tmp_path]
    (tmp_path / "V1.0.0__base_version.sql").write_text("select 1;")
    (tmp_path / "V1.1.0__add.sql").write_text("select 1;")
    assert database_rules.check_sql_dir(True, str(tmp_path), "1.1.0") == []
    # Upper-case names are found too, and the planner names the one it cannot read.
    (tmp_path / "V1.2.0__up.SQL").write_text("select 1;")
    errors = database_rules.check_sql_dir(True, str(tmp_path), "1.1.0")
    assert len(errors) == 1 and "V1.2.0__up.SQL" in errors[0], errors
    (tmp_path / "V1.2.0__up.SQL").unlink()
    (tmp_path / "V1.1.0__again.sql").write_text("select 1;")
    errors = database_rules.check_sql_dir(True, str(tmp_path), "1.1.0")
    assert len(errors) == 1 and errors[0].startswith("database_sql_dir %s: " % tmp_path), errors


@pytest.mark.parametrize("concern", ["smartid_home", "docker_install", "docker_versions", "traefik_settings", "traefik_certificate",
                                     "database_password", "database_connection", "database_container", "database_sql",
                                     "database_tls"])
def test_the_action_knows_each_concern(concern):
    errors, warnings = validate.CONCERNS[concern]()
    assert isinstance(errors, list) and warnings == []


SERVER = '{"Version": "27.3.1", "ApiVersion": "1.47"}'
RUNNING = dict(socket="/run/docker.sock", socket_exists=True, socket_is_sock=True, server_rc=0,
               server_stdout=SERVER, compose_rc=0, compose_stdout="v2.29.7\n", min_version="20.10",
               compose_min_version="2.20")


def test_docker_versions_new_enough():
    assert docker_rules.check_versions(**RUNNING) == ([], [])
    assert docker_rules.check_versions(**dict(RUNNING, only_if_present=True)) == ([], [])


def test_docker_versions_too_old():
    errors, _ = docker_rules.check_versions(**dict(RUNNING, min_version="99.0", compose_min_version="2.30"))
    assert errors == ["Docker engine 27.3.1 is too old: the bundle needs 99.0 or newer.",
                      "Docker Compose 2.29.7 is too old: the bundle needs 2.30 or newer."]
    # Numeric, not text, comparison: 27 is newer than 3.
    assert docker_rules.check_versions(**dict(RUNNING, min_version="3.9"))[0] == []


def test_docker_engine_without_socket():
    gone = dict(RUNNING, socket_exists=False, server_rc=None, compose_rc=None)
    assert docker_rules.check_versions(**gone) == (["No Docker engine socket at /run/docker.sock"], [])
    assert docker_rules.check_versions(**dict(gone, install_source="external"))[0] == [
        "No Docker engine socket at /run/docker.sock (docker_install_source is external: start the engine first)"]
    assert docker_rules.check_versions(**dict(gone, only_if_present=True)) == ([], [])
    assert docker_rules.check_versions(**dict(gone, check_mode=True)) == ([], [])
    assert docker_rules.check_versions(**dict(RUNNING, socket_is_sock=False))[0] == [
        "No Docker engine socket at /run/docker.sock"]


def test_docker_socket_that_outlived_its_engine():
    stale = dict(RUNNING, server_rc=1, server_stdout="", server_stderr="Cannot connect\n",
                 compose_rc=1, compose_stdout="")
    # Before the install step: nothing compared (no version to compare), a warning, no error.
    errors, warnings = docker_rules.check_versions(**dict(stale, only_if_present=True))
    assert errors == [] and warnings == [
        "The Docker engine does not answer on /run/docker.sock: Cannot connect"
        " (not compared yet: the role starts the engine)"]
    errors, warnings = docker_rules.check_versions(**stale)
    assert warnings == [] and errors == [
        "The Docker engine does not answer on /run/docker.sock: Cannot connect",
        "Docker Compose v2 (docker compose) is not installed: the bundle needs 2.20 or newer."]


def test_docker_compose_present_before_install_is_still_compared():
    errors, _ = docker_rules.check_versions(**dict(RUNNING, only_if_present=True, compose_stdout="1.29.2"))
    assert errors == ["Docker Compose 1.29.2 is too old: the bundle needs 2.20 or newer."]


def test_the_docker_probe_reads_socket_versions_and_swarm_state_in_one_go(tmp_path):
    from ansible_collections.smartid.hermod.plugins.module_utils import docker_rules
    import socket as sockets
    asked = []

    def run(argv):
        asked.append(argv)
        return (0, '{"Version": "20.10.24"}\n', "") if argv[1] == "version" else (0, "2.29.1\n", "")

    # No socket: no command is run, and no swarm state.
    found = docker_rules.probe(run, str(tmp_path / "docker.sock"), str(tmp_path))
    assert asked == [] and found["socket_exists"] is False and found["server_rc"] is None
    assert found["swarm_state"] == ""
    # A real socket, and an engine that is still a swarm member.
    path = str(tmp_path / "docker.sock")
    listener = sockets.socket(sockets.AF_UNIX)
    listener.bind(path)
    (tmp_path / "swarm").mkdir()
    (tmp_path / "swarm" / "docker-state.json").write_text("{}")
    try:
        found = docker_rules.probe(run, path, str(tmp_path))
    finally:
        listener.close()
    assert found["socket_is_sock"] is True
    assert (found["server_rc"], found["server_stdout"]) == (0, '{"Version": "20.10.24"}')
    assert (found["compose_rc"], found["compose_stdout"]) == (0, "2.29.1")
    assert found["swarm_state"] == str(tmp_path / "swarm" / "docker-state.json")
    assert asked == [["docker", "version", "--format", "{{json .Server}}"],
                     ["docker", "compose", "version", "--short"]]
    # What it returns is what the version rule reads.
    assert docker_rules.check_versions(socket=path, socket_exists=True, socket_is_sock=True,
                                       server_rc=0, server_stdout=found["server_stdout"],
                                       compose_rc=0, compose_stdout=found["compose_stdout"],
                                       min_version="20.10", compose_min_version="2.20")[0] == []


def test_the_docker_probe_reports_packages_files_and_patterns_for_the_install_steps(tmp_path):
    import hashlib
    from ansible_collections.smartid.hermod.plugins.module_utils import docker_rules

    def run(argv):
        assert argv[0] == "dpkg-query" and argv[-2:] == ["docker.io", "containerd"]
        return 1, "docker.io installed\n", "dpkg-query: no packages found matching containerd\n"

    plugin = tmp_path / "docker-compose"
    plugin.write_bytes(b"binary")
    plugin.chmod(0o755)
    script = tmp_path / "docker"
    script.write_text("start() {\n    ulimit -n 1048576\n}\n")
    found = docker_rules.probe(run, str(tmp_path / "no.sock"), str(tmp_path),
                               packages=["docker.io", "containerd"],
                               files=[str(tmp_path), str(plugin), str(tmp_path / "absent")],
                               patterns={str(script): r"^(\s*)ulimit -([npu]) (1048576|unlimited)$",
                                         str(tmp_path / "absent"): "x"})
    assert found["packages"] == {"docker.io": True, "containerd": False}
    assert found["files"][str(plugin)] == {"exists": True, "isdir": False, "mode": "0755",
                                           "uid": os.getuid(), "gid": os.getgid(),
                                           "sha1": hashlib.sha1(b"binary").hexdigest()}
    assert found["files"][str(tmp_path)]["isdir"] is True and "sha1" not in found["files"][str(tmp_path)]
    assert found["files"][str(tmp_path / "absent")] == {"exists": False}
    # A line left to cap; a file that cannot be read counts as "run the step".
    assert found["patterns"] == {str(script): True, str(tmp_path / "absent"): True}
    script.write_text("start() {\n    ulimit -n 1048576 2>/dev/null || ulimit -n \"$(ulimit -Hn)\"\n}\n")
    found = docker_rules.probe(run, str(tmp_path / "no.sock"), str(tmp_path),
                               patterns={str(script): r"^(\s*)ulimit -([npu]) (1048576|unlimited)$"})
    assert found["patterns"] == {str(script): False}

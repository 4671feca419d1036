"""TLS to an external database, at the playbook level: the database role's validation refuses
an unknown sslmode and a verify-full/verify-ca without a usable CA file, naming the variable,
before the host changes; a valid setting puts the CA where the database client reads it.

One ansible-playbook run (controller-side checks and file copies only: no Docker engine needed),
one inventory host per case, each with its own SMARTIDHOME.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess

import pytest
import yaml

from conftest import HERE, ROOT, VENV_BIN, Harness, cert_pem, make_cert, tree_checksum

SQL_DIR = os.path.join(ROOT, "images", "messaging", "sql", "postgresql")

# name -> (settings given the case's folder, expected errors of the database validation)
CASES = {
    "valid": (lambda d: {"database_external_ca_file": str(d / "provider-ca.pem")}, []),
    "verify-ca": (lambda d: {"database_external_sslmode": "verify-ca",
                             "database_external_ca_file": str(d / "provider-ca.pem")}, []),
    "require": (lambda d: {"database_external_sslmode": "require"}, []),
    "no-ca": (lambda d: {}, [
        "database_external_ca_file must name the database provider's CA file (PEM, on the controller) "
        "when database_external_sslmode is verify-full"]),
    "ca-missing": (lambda d: {"database_external_ca_file": str(d / "nope.pem")}, [
        "database_external_ca_file {dir}/nope.pem is not a readable file (No such file or directory)"]),
    "ca-not-pem": (lambda d: {"database_external_ca_file": str(d / "junk.pem")}, [
        "database_external_ca_file {dir}/junk.pem holds no PEM certificate"]),
    "sslmode-prefer": (lambda d: {"database_external_sslmode": "prefer",
                                  "database_external_ca_file": str(d / "provider-ca.pem")}, [
        "database_external_sslmode must be one of disable, require, verify-ca, verify-full (is 'prefer')"]),
}


@pytest.fixture(scope="module")
def batch(tmp_path_factory):
    root = tmp_path_factory.mktemp("dbtls")
    hosts, harnesses, before = {}, {}, {}
    for name, (settings, _errors) in CASES.items():
        case_dir = root / name
        case_dir.mkdir()
        h = Harness(case_dir, "dbtls-" + name)
        h.add_cert("callback-ca.pem", cert_pem(make_cert("Callback CA")[1]))
        (case_dir / "provider-ca.pem").write_bytes(cert_pem(make_cert("Provider CA")[1]))
        (case_dir / "junk.pem").write_text("not a certificate\n")
        values = dict(h.vars)
        values.pop("messaging_database_password")
        values.update(database_external=True, database_host="pg.provider.test", database_password=h.db_password,
                      database_smartid_home=str(h.home), database_sql_dir=SQL_DIR,
                      ansible_connection="local", ansible_python_interpreter=os.path.join(VENV_BIN, "python"))
        values.update(settings(case_dir))
        hosts[name] = values
        harnesses[name] = h
        before[name] = tree_checksum(h.home)
    inventory = root / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"all": {"hosts": hosts}}))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"),
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_NOCOLOR="1",
               PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))

    def run():
        proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "-i", str(inventory),
                               os.path.join(HERE, "validate_database_tls.yml"), "-f", "8", "-vvv"],
                              env=env, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False)
        return proc, json.loads(proc.stdout[proc.stdout.index("{"):])

    proc, report = run()
    results = {}
    for play in report["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                if "Ensure the database settings are valid (" in task["task"]["name"]:
                    results[host] = result
    # A second run changes nothing.
    again, report_again = run()
    return {"proc": proc, "results": results, "harnesses": harnesses, "before": before, "root": root,
            "again": again, "stats_again": report_again["stats"]}


@pytest.mark.parametrize("name", list(CASES))
def test_each_case_is_refused_or_passes_as_expected(batch, name):
    h = batch["harnesses"][name]
    result = batch["results"].get(name)
    assert result is not None, batch["proc"].stdout[-3000:] + batch["proc"].stderr[-3000:]
    want = [m.replace("{dir}", str(h.tmp)) for m in CASES[name][1]]
    assert result["errors"] == want
    assert bool(result.get("failed")) == bool(want)
    if want:
        assert result["msg"].startswith("database settings are invalid:")
        # Refused before anything on the host changed.
        assert tree_checksum(h.home) == batch["before"][name]
    h.assert_no_secret(batch["proc"].stdout + batch["proc"].stderr)


def test_require_passes_with_a_warning_and_no_ca(batch):
    result = batch["results"]["require"]
    assert result["warnings_found"] == [
        "database_external_sslmode is require: the server's certificate is not verified (a man in the "
        "middle can read the password); use verify-full with database_external_ca_file"]
    assert not (batch["harnesses"]["require"].home / "docker" / "compose" / "database" / "tls").exists()


@pytest.mark.parametrize("name", ["valid", "verify-ca"])
def test_a_valid_setting_puts_the_ca_where_the_client_reads_it(batch, name):
    h = batch["harnesses"][name]
    ca = h.home / "docker" / "compose" / "database" / "tls" / "external-ca.pem"
    assert ca.read_bytes() == (h.tmp / "provider-ca.pem").read_bytes()
    assert stat.S_IMODE(ca.stat().st_mode) == 0o644


@pytest.mark.parametrize("name", ["valid", "verify-ca", "require"])
def test_a_second_run_changes_nothing(batch, name):
    assert batch["stats_again"][name]["changed"] == 0, batch["again"].stdout[-3000:]
    assert batch["stats_again"][name]["failures"] == 0

"""inventories/staging as an operator uses it: the example vault opens with its documented
password, and the database and messaging validations accept the settings once the provider's
CA is where group_vars point (database-ca.pem beside the inventory); without it the run is
refused naming database_external_ca_file. The inventory is copied, so the repository's stays
as shipped. Controller-side only: no Docker engine needed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from conftest import HERE, ROOT, VENV_BIN, cert_pem, make_cert

STAGING = os.path.join(ROOT, "inventories", "staging")
# inventories/staging/README.md
VAULT_PASSWORD = "staging-example-only"


@pytest.fixture
def site(tmp_path):
    """A copy of the repository's staging inventory at <site>/inventories/staging, with the
    site's images/ and files/ (group_vars find them two folders up)."""
    inventory = tmp_path / "inventories" / "staging"
    shutil.copytree(STAGING, inventory, ignore=shutil.ignore_patterns("database-ca.pem"))
    for folder in ("images", "files"):
        (tmp_path / folder).symlink_to(os.path.join(ROOT, folder))
    (tmp_path / "vault-password").write_text(VAULT_PASSWORD + "\n")
    return tmp_path


def validate(site):
    """The run's exit code, its stats per host, every failed task's errors per host and the
    names of the tasks that ran."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_STDOUT_CALLBACK="json",
               PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run(
        [os.path.join(VENV_BIN, "ansible-playbook"), "-i", str(site / "inventories" / "staging"),
         "--vault-password-file", str(site / "vault-password"), os.path.join(HERE, "validate_inventory.yml"),
         # Locally, as this user: the validations read the controller's files only.
         "-e", "ansible_connection=local", "-e", "ansible_become=false",
         "-e", "ansible_python_interpreter=" + os.path.join(VENV_BIN, "python")],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    report = json.loads(proc.stdout)
    failures, ran = {}, set()
    for play in report["plays"]:
        for task in play["tasks"]:
            ran.add(task["task"]["name"])
            for host, result in task["hosts"].items():
                if result.get("failed"):
                    failures.setdefault(host, []).extend(result.get("errors") or [result.get("msg")])
    return proc.returncode, report["stats"], failures, ran


HOSTS = {"mgr1", "mgr2", "mgr3", "edge1", "edge2"}


def test_staging_without_the_providers_ca_is_refused_naming_the_variable(site):
    code, _stats, failures, _ran = validate(site)
    assert code != 0
    ca_file = site / "inventories" / "staging" / "database-ca.pem"
    # Every host refused for the CA alone, by the database validation.
    assert {host.split(".")[0] for host in failures} == HOSTS, failures
    for host, errors in failures.items():
        assert errors == ["database_external_ca_file %s is not a readable file (No such file or directory)"
                          % ca_file], (host, errors)


def test_staging_with_the_providers_ca_in_place_validates(site):
    (site / "inventories" / "staging" / "database-ca.pem").write_bytes(cert_pem(make_cert("Provider CA")[1]))
    code, stats, failures, ran = validate(site)
    assert code == 0 and failures == {}, failures
    assert {host.split(".")[0] for host in stats} == HOSTS, stats
    assert all(s["failures"] == 0 and s["unreachable"] == 0 and s["ok"] > 0 for s in stats.values()), stats
    assert {"smartid.hermod.database : Ensure the database settings are valid (password, connection, TLS, container, SQL files)",
            "smartid.hermod.messaging : Ensure the messaging settings are valid (clients, URLs, cacerts, keystore)"} <= ran, ran

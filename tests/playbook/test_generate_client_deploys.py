"""generate_client.yml against the deployed local stack, its output pasted verbatim into an
inventory, deployed and exercised: the new client completes a lifecycle through Traefik.

Uses this machine's `make deploy` stack (inventories/local) and redeploys it: run under
`flock /tmp/lock.deploy`. The stack is put back with the local inventory afterwards."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from conftest import ROOT, VENV_BIN

LOCAL = os.path.join(ROOT, "inventories", "local")
pytestmark = pytest.mark.skipif(shutil.which("docker") is None, reason="needs a Docker engine")


def playbook(inventory, name, *extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    proc = subprocess.run([os.path.join(VENV_BIN, "ansible-playbook"), "-i", str(inventory),
                           os.path.join(ROOT, "playbooks", name), *extra],
                          env=env, cwd=ROOT, capture_output=True, text=True, timeout=1800, check=False)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def local_stack():
    """The stack `make deploy` runs, on this machine. Deployed here when it is not (a fresh CI
    machine), and then removed again at the end, data included, so the machine is left as found."""
    running = subprocess.run(["docker", "inspect", "smartid-messaging-messaging-1"],
                             capture_output=True).returncode == 0
    if not running:
        rc, out = playbook(LOCAL, "site.yml")
        assert rc == 0, out[-6000:]
    yield
    if not running:
        rc, out = playbook(LOCAL, "uninstall.yml", "-e", "smartid_uninstall_confirm=localhost", "-e", "purge=true")
        assert rc == 0, out[-3000:]


def test_pasted_entry_deploys_and_completes_a_lifecycle(tmp_path, local_stack):
    snippet = tmp_path / "snippet.yml"
    rc, out = playbook(LOCAL, "generate_client.yml", "-e", "client_id=idm-pasted",
                       "-e", "callback_url=https://idm.smartid.test/ws/hermod",
                       "-e", "messaging_generate_source=service", "-e", "messaging_generate_output=%s" % snippet)
    assert rc == 0, out
    # The YAML callback wraps long messages: compare with the whitespace collapsed.
    assert "was made by the service (http://messaging:20400 on localhost)" in " ".join(out.split())
    text = snippet.read_text()
    vault_block, client_block = text.split("# ---- 2.", 1)

    inventory = tmp_path / "site"
    (inventory / "group_vars" / "all").mkdir(parents=True)
    shutil.copy(os.path.join(LOCAL, "hosts.yml"), inventory / "hosts.yml")
    os.symlink(os.path.join(LOCAL, ".secrets"), inventory / ".secrets")
    main = open(os.path.join(LOCAL, "group_vars", "all", "main.yml")).read()
    # This copy lives outside the repository: the site folder is named, not derived.
    main = main.replace('smartid_site_dir: "{{ inventory_dir | dirname | dirname }}"', 'smartid_site_dir: "%s"' % ROOT)
    assert 'smartid_site_dir: "%s"' % ROOT in main
    head, clients = main.split("messaging_clients:\n", 1)
    existing, tail = clients.split("\n\n", 1)
    # Both blocks verbatim: the vault block as the vault file, the entry at the end of the client
    # list (the list is written at column 0, the indentation the pasted entry has).
    (inventory / "group_vars" / "all" / "main.yml").write_text(
        head + tail + "\nmessaging_clients:\n"
        + yaml.safe_dump(yaml.safe_load(existing), default_flow_style=False, sort_keys=False)
        + "# ---- 2." + client_block.split("# ---- 3.")[0]
        # What the operator does on the Identity Manager side: give it the generated pair (here the
        # stand-in, whose pair the other clients follow).
        + "callback_standin_basic_auth: \"{{ vault_messaging_idm_pasted_callback_auth }}\"\n")
    (inventory / "group_vars" / "all" / "vault.yml").write_text("---\n" + vault_block)
    try:
        rc, out = playbook(inventory, "site.yml")
        assert rc == 0, out[-6000:]
        rc, out = playbook(inventory, "verify.yml")
        assert rc == 0, out[-6000:]
        rows = [line for line in out.splitlines() if "idm-pasted" in line]
        assert [r.split()[2:4] for r in rows if r.split()[2] in ("command", "callback")] == [
            ["command", "PASS"], ["callback", "PASS"]], rows
        assert any("device" in r and "PASS" in r for r in rows) and any("signed" in r and "PASS" in r for r in rows)
    finally:
        rc, out = playbook(LOCAL, "site.yml")
        assert rc == 0, out[-3000:]

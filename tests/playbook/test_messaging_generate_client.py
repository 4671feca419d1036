"""playbooks/generate_client.yml: a usable key, printed only when asked for, an entry that deploys."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys

import yaml

from conftest import ROOT, VENV_BIN

PLAYBOOK = os.path.join(ROOT, "playbooks", "generate_client.yml")
HEX64 = re.compile(r"\b[0-9a-f]{64}\b")


def run(tmp_path, *extra):
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(yaml.safe_dump({"smartid": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", str(inventory), PLAYBOOK, *extra]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def parse_snippet(text):
    """(vault vars, client entry, X-Api-Key) from the two pasted blocks and the header comment."""
    vault_block, rest = text.split("# ---- 2.", 1)
    vault = yaml.safe_load(vault_block)
    entry = yaml.safe_load("# ---- 2." + rest)[0]
    header = re.search(r"X-Api-Key: (\S+)", text).group(1)
    return vault, entry, header


def test_default_prints_nothing_secret(tmp_path):
    rc, out = run(tmp_path, "-e", "client_id=idm", "-e", "messaging_generate_source=local", "-vvv")
    assert rc == 0, out
    assert "Nothing secret was printed" in out
    assert not HEX64.search(out)
    assert "X-Api-Key:" not in out


def test_output_file_holds_both_blocks_and_is_never_overwritten(tmp_path):
    target = tmp_path / "idm-client.yml"
    rc, out = run(tmp_path, "-e", "client_id=idm2", "-e", "messaging_generate_source=local",
                  "-e", "callback_url=https://idm2.example.test/ws/hermod",
                  "-e", "messaging_generate_output=%s" % target)
    assert rc == 0, out
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    vault, entry, header = parse_snippet(target.read_text())
    key = vault["vault_messaging_idm2_key"]
    assert HEX64.fullmatch(key)
    assert base64.b64decode(header).decode() == "idm2:" + key
    # An IDM client: the guide requires callback basic auth; a pair is generated for it.
    assert re.fullmatch(r"hermod:[A-Za-z0-9]{32}", vault["vault_messaging_idm2_callback_auth"])
    assert entry == {"client_id": "idm2", "group": "smartid", "key": "{{ vault_messaging_idm2_key }}",
                     "callback_url": "https://idm2.example.test/ws/hermod",
                     "callback_basic_auth": "{{ vault_messaging_idm2_callback_auth }}"}
    assert key not in out
    assert run(tmp_path, "-e", "client_id=idm2", "-e", "messaging_generate_source=local",
               "-e", "messaging_generate_output=%s" % target)[0] == 0
    assert key in target.read_text()


def test_da_entry_has_the_guide_placeholder_without_a_callback_url(tmp_path):
    rc, out = run(tmp_path, "-e", "client_id=da", "-e", "messaging_generate_source=local",
                  "-e", "messaging_generate_show_secret=true")
    assert rc == 0, out
    assert HEX64.search(out) and "X-Api-Key:" in out
    assert "https://<DA-HOST>/https/api/rest/v3.0/personalmessaging" in out
    assert "callback_url was not given" in out
    assert "callback_auth" not in out


def test_service_source_fails_clearly_when_the_network_has_no_service(tmp_path):
    rc, out = run(tmp_path, "-e", "client_id=da", "-e", "messaging_generate_source=service",
                  "-e", "messaging_generate_network=none")
    assert rc != 0
    assert "did not answer from network none" in out and "is the service running" in out
    assert not HEX64.search(out)


def test_bad_client_id_is_refused(tmp_path):
    rc, out = run(tmp_path, "-e", '{"client_id": "bad id!"}')
    assert rc != 0 and "client_id=<id>" in out

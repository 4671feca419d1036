"""playbooks/generate_client.yml: a usable key, printed only when asked for."""

from __future__ import annotations

import base64
import os
import re
import socket
import subprocess
import sys

import yaml

from conftest import ROOT, VENV_BIN

PLAYBOOK = os.path.join(ROOT, "playbooks", "generate_client.yml")
HEX64 = re.compile(r"\b[0-9a-f]{64}\b")


def run(*extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""))
    cmd = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", "localhost,", PLAYBOOK,
           "-e", "ansible_python_interpreter=" + sys.executable, *extra]
    proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_default_prints_nothing_secret(tmp_path):
    rc, out = run("-e", "client_id=idm", "-e", "messaging_generate_source=local", "-vvv")
    assert rc == 0, out
    assert "Nothing secret was printed" in out
    assert not HEX64.search(out)
    assert "X-Api-Key:" not in out


def test_output_file_holds_a_valid_private_snippet(tmp_path):
    target = tmp_path / "idm-client.yml"
    rc, out = run("-e", "client_id=idm", "-e", "messaging_generate_source=local",
                  "-e", "messaging_generate_output=%s" % target)
    assert rc == 0, out
    assert oct(target.stat().st_mode & 0o777) == "0o600"
    text = target.read_text()
    key = re.search(r"#    key: ([0-9a-f]{64})$", text, re.M).group(1)
    header = re.search(r"X-Api-Key: (\S+)", text).group(1)
    assert base64.b64decode(header).decode() == "idm:" + key
    entry = yaml.safe_load(text)[0]
    assert entry["client_id"] == "idm" and entry["key"] == "{{ vault_messaging_idm_key }}"
    assert key not in out
    # Never overwritten: a second run keeps the first key.
    assert run("-e", "client_id=idm", "-e", "messaging_generate_source=local",
               "-e", "messaging_generate_output=%s" % target)[0] == 0
    assert key in target.read_text()


def test_show_secret_prints_the_snippet_on_request():
    rc, out = run("-e", "client_id=da", "-e", "messaging_generate_source=local",
                  "-e", "messaging_generate_show_secret=true")
    assert rc == 0, out
    assert HEX64.search(out) and "X-Api-Key:" in out


def test_service_source_fails_clearly_when_nothing_listens():
    rc, out = run("-e", "client_id=da", "-e", "messaging_generate_source=service",
                  "-e", "messaging_generate_url=http://127.0.0.1:%d" % closed_port())
    assert rc != 0
    assert "is the service running" in out
    assert not HEX64.search(out)


def test_bad_client_id_is_refused():
    rc, out = run("-e", '{"client_id": "bad id!"}')
    assert rc != 0 and "client_id=<id>" in out

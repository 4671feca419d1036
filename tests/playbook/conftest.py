"""Fixtures for tests that drive ansible-playbook against this machine.

Each test gets a throwaway SMARTIDHOME in a temp dir, an inventory for localhost and
certificate factories; secrets are random per test so a leak check can grep for them.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
import subprocess
import sys

import pytest
import yaml

# Re-exported: the suites import the certificate helpers from here.
from pki import DAY, NOW, cert_der, cert_pem, key_pem, make_cert  # noqa: F401

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)
HERE = os.path.dirname(os.path.abspath(__file__))
# The integration guide's callback URL shapes.
IDM_CALLBACK = "https://idm.test/ws/hermod"
DA_CALLBACK = "https://da.test/https/api/rest/v3.0/personalmessaging"


def tree_checksum(path):
    """Digest of every path, type, mode, owner and content under path."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in sorted(os.walk(path)):
        dirnames.sort()
        for name in [dirpath] + [os.path.join(dirpath, f) for f in sorted(filenames)]:
            st = os.lstat(name)
            digest.update(("%s %o %d %d\n" % (os.path.relpath(name, path), st.st_mode, st.st_uid,
                                              st.st_gid)).encode())
            if stat.S_ISREG(st.st_mode):
                with open(name, "rb") as fh:
                    digest.update(fh.read())
    return digest.hexdigest()


class Harness:
    """One throwaway deployment target: SMARTIDHOME, controller inputs, vars, runner."""

    def __init__(self, tmp_path, name):
        self.tmp = tmp_path
        self.home = tmp_path / "smartidhome"
        self.cacerts = tmp_path / "controller-cacerts"
        self.cacerts.mkdir()
        self.home.mkdir()
        self.secret = "kdf-" + secrets.token_hex(12)
        self.db_password = "dbpw-" + secrets.token_hex(12)
        self.basic_auth = "cbuser:cbpw-" + secrets.token_hex(12)
        self.da_key = secrets.token_hex(32)
        self.vars = {
            "messaging_smartid_home": str(self.home),
            "messaging_cacerts_dir": str(self.cacerts),
            "messaging_compose_project": name,
            "messaging_network_name": name + "-net",
            "messaging_public_url": "https://messaging.test/ms",
            # The host Traefik serves; the public URL must name it (playbooks/vars/wiring.yml).
            "traefik_hostname": "messaging.test",
            "messaging_client_key_secret": self.secret,
            "messaging_database_password": self.db_password,
            "messaging_clients": [
                # No callback server in these tests: the preflight warns instead of failing.
                {"client_id": "idm", "group": "smartid", "callback_url": IDM_CALLBACK,
                 "callback_basic_auth": self.basic_auth, "callback_reachable": False},
                {"client_id": "da", "group": "smartid", "key": self.da_key,
                 "callback_url": DA_CALLBACK, "callback_reachable": False},
            ],
        }
        self.inventory = tmp_path / "inventory.yml"
        self.inventory.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": {
            "ansible_connection": "local",
            "ansible_python_interpreter": sys.executable,
        }}}}))

    @property
    def secret_values(self):
        derived = __import__("hmac").new(self.secret.encode(), b"idm", hashlib.sha256).hexdigest()
        return [self.secret, self.db_password, self.basic_auth, self.da_key, derived]

    def add_cert(self, filename, data):
        (self.cacerts / filename).write_bytes(data)

    def run(self, playbook="site_messaging.yml", extra=None, args=(), check=False):
        vars_file = self.tmp / "vars.yml"
        merged = dict(self.vars)
        merged.update(extra or {})
        vars_file.write_text(yaml.safe_dump(merged))
        env = dict(os.environ)
        env.update({
            "ANSIBLE_CONFIG": os.path.join(ROOT, "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_RETRY_FILES_ENABLED": "0",
            "PATH": VENV_BIN + os.pathsep + env.get("PATH", ""),
        })
        cmd = [os.path.join(VENV_BIN, "ansible-playbook"), "-i", str(self.inventory),
               os.path.join(HERE, playbook), "-e", "@" + str(vars_file), *args]
        if check:
            cmd += ["--check", "--diff"]
        proc = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900,
                              check=False)
        proc.output = proc.stdout + proc.stderr
        return proc

    def assert_no_secret(self, text):
        for value in self.secret_values:
            assert value not in text, "a secret value appeared in the output"


@pytest.fixture
def harness(tmp_path, request):
    name = "msgrole-" + hashlib.sha1(request.node.nodeid.encode()).hexdigest()[:8]
    return Harness(tmp_path, name)

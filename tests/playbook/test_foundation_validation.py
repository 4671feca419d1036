"""Bad foundation input is refused by site.yml's validation play, before the host changes.

Each case runs the real playbook against this machine (inventories/local) with one bad
value and a SMARTIDHOME that must not come into existence.
"""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)


def run_site(extra_vars, smartid_home):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    args = [os.path.join(VENV_BIN, "ansible-playbook"), "playbooks/site.yml", "-e", "smartid_home=%s" % smartid_home]
    for key, value in extra_vars.items():
        args += ["-e", "%s=%s" % (key, value)]
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "extra_vars, expected",
    [
        ({"docker_install_source": "snap"}, "docker_install_source"),
        ({"docker_min_version": "99.0"}, "too old"),
        ({"messaging_image_source": "archive", "messaging_image": "hermod:1", "messaging_image_archive": "/nonexistent/hermod.tar"},
         "messaging_image_archive"),
        ({"database_image_source": "ftp"}, "database_image_source"),
        ({"traefik_image_source": "registry", "traefik_image": ""}, "traefik_image"),
    ],
    ids=["unknown-install-source", "docker-too-old", "missing-archive", "unknown-image-source", "registry-without-ref"],
)
def test_bad_input_is_refused_before_changes(tmp_path, extra_vars, expected):
    home = tmp_path / "smartid"
    result = run_site(extra_vars, home)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-2000:]
    assert expected in output, output[-3000:]
    assert not home.exists(), "the host changed before validation failed"


def test_relative_smartid_home_is_refused(tmp_path):
    result = run_site({}, "relative/smartid")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "smartid_home must be an absolute path" in output, output[-3000:]
    assert not os.path.exists(os.path.join(ROOT, "relative"))

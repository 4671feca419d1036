"""Bad foundation input is refused by site.yml's validation play, before the host changes.

Each case runs the real playbook against this machine (inventories/local) with one bad
value and a SMARTIDHOME that must not come into existence.
"""
import os
import re
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


FAILED_RESULT = re.compile(r"^(fatal: \[localhost\]: FAILED!|failed: \[localhost\] \(item=.*\)) =>", re.M)


def failure_text(output):
    """What the failed task reported (from its `fatal:`/`failed:` result to the recap), so that a
    task name or a skipped task's condition cannot stand in for the error message."""
    found = FAILED_RESULT.search(output)
    assert found, output[-3000:]
    return output[found.start():].split("PLAY RECAP", 1)[0]


def recap(output):
    line = [ln for ln in output.splitlines() if ln.startswith("localhost") and "ok=" in ln][-1]
    return {k: int(v) for k, v in (item.split("=") for item in line.split()[2:])}


@pytest.mark.parametrize(
    "extra_vars, expected",
    [
        # The refusal names the variable, the value given and the values it accepts.
        ({"docker_install_source": "snap"},
         r"docker_install_source must be one of: docker-ce, distro, external, got: snap"),
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
    assert re.search(expected, failure_text(output)), output[-3000:]
    assert recap(result.stdout)["changed"] == 0, output[-3000:]
    assert not home.exists(), "the host changed before validation failed"


def test_relative_smartid_home_is_refused(tmp_path):
    result = run_site({}, "relative/smartid")
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "smartid_home must be an absolute path" in output, output[-3000:]
    assert not os.path.exists(os.path.join(ROOT, "relative"))

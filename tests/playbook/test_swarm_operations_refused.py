"""The operation playbooks that address compose projects only refuse smartid_orchestrator: swarm
as their very first task, naming the variable and what to run instead, before anything on the
host is read or changed; on compose the same check lets them through to their own validation.

Each case runs the real playbook against this machine (inventories/local) with a SMARTIDHOME
that must not come into existence.
"""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)
FAILED_RESULT = re.compile(r"^fatal: \[localhost\]: FAILED! =>", re.M)


def run(playbook, smartid_home, *extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    env["PATH"] = VENV_BIN + os.pathsep + env.get("PATH", "")
    args = [os.path.join(VENV_BIN, "ansible-playbook"), "playbooks/%s.yml" % playbook,
            "-e", "smartid_home=%s" % smartid_home]
    for item in extra:
        args += ["-e", item]
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    result.output = result.stdout + result.stderr
    return result


def failure(result):
    """The failed task's name and message (from its TASK line to the recap)."""
    found = FAILED_RESULT.search(result.output)
    assert found, result.output[-3000:]
    task = result.output.rfind("TASK [", 0, found.start())
    return result.output[task:].split("PLAY RECAP", 1)[0]


def recap(result):
    line = [ln for ln in result.stdout.splitlines() if ln.startswith("localhost") and "ok=" in ln][-1]
    return {k: int(v) for k, v in (item.split("=") for item in line.split()[2:])}


@pytest.mark.parametrize(
    "playbook, extra, instead",
    [
        ("upgrade", [], r"run playbooks/site\.yml: it dumps the database before a schema change"),
        ("rotate_certs", ["traefik_generated_cert_force_renew=true"],
         r"traefik_tls_cert_file and traefik_tls_key_file .* run playbooks/site\.yml"),
        ("rotate_client_key", ["client_id=idm"],
         r"new key in messaging_clients .* playbooks/generate_client\.yml\) and run playbooks/site\.yml"),
    ],
)
def test_compose_only_operation_refuses_a_swarm_first(tmp_path, playbook, extra, instead):
    home = tmp_path / "smartid"

    result = run(playbook, home, "smartid_orchestrator=swarm", *extra)

    assert result.returncode != 0, result.output[-3000:]
    text = " ".join(failure(result).split())
    assert "Refuse the compose" in text and "(smartid_orchestrator)" in text, text
    assert "playbooks/%s.yml" % playbook in text and "does not run with smartid_orchestrator: swarm" in text, text
    assert re.search(instead, text), text
    assert "Nothing was changed." in text
    # The refusal is the first task that ran: nothing was gathered, read or changed before it.
    assert recap(result) == {"ok": 0, "changed": 0, "unreachable": 0, "failed": 1, "skipped": 0,
                             "rescued": 0, "ignored": 0}, result.stdout[-2000:]
    assert not home.exists()


@pytest.mark.parametrize(
    "playbook, extra, refusal",
    [
        # Each stops at its own validation, after the orchestrator check passed.
        ("upgrade", ["docker_install_source=snap"], r"docker_install_source must be one of"),
        ("rotate_client_key", ["client_id=nobody"], r"Give -e client_id=<id> of one of messaging_clients"),
    ],
)
def test_compose_operation_passes_the_orchestrator_check(tmp_path, playbook, extra, refusal):
    home = tmp_path / "smartid"

    result = run(playbook, home, "smartid_orchestrator=compose", *extra)

    assert result.returncode != 0, result.output[-3000:]
    assert "Refuse the compose" in result.stdout and "smartid_orchestrator" in result.stdout
    text = failure(result)
    assert "does not run with smartid_orchestrator" not in text, text
    assert re.search(refusal, text), text
    assert recap(result)["changed"] == 0
    assert not home.exists()

"""Run a playbook of the bundle as an operator would, against a molecule scenario's inventory.

Shared by the scenarios' tests that drive the operation playbooks (restore, swarm)."""
import glob
import os
import subprocess
import time

PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY",
                         os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
EPHEMERAL = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")


def playbook(name, *extra, timeout=1800, inventory=None, config=None):
    """playbooks/<name>.yml with the scenario's ansible.cfg and inventory (or the given ones);
    the result carries `output` (stdout then stderr: the default callback writes failed tasks
    to stderr)."""
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": config or os.path.join(EPHEMERAL, "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": os.path.join(PROJECT, "collections") + ":~/.ansible/collections",
        "ANSIBLE_PIPELINING": "True",
        "ANSIBLE_FORCE_COLOR": "0",
        "ANSIBLE_NOCOLOR": "1",
    })
    started = time.monotonic()
    run = subprocess.run(["ansible-playbook", "-i", inventory or os.path.join(EPHEMERAL, "inventory"),
                          os.path.join(PROJECT, "playbooks", name + ".yml"), *extra],
                         capture_output=True, text=True, env=env, cwd=PROJECT, timeout=timeout)
    run.output = run.stdout + run.stderr
    print("playbooks/%s.yml %s: %.1f s" % (name, " ".join(extra), time.monotonic() - started))
    return run


def backup(home, *extra, **kwargs):
    """playbooks/backup.yml (as playbook() runs it), which must succeed and add exactly one dump
    to <home>/backups; returns that dump's path."""
    pattern = os.path.join(home, "backups", "database-hermod-*.dump")
    before = set(glob.glob(pattern))
    run = playbook("backup", *extra, **kwargs)
    assert run.returncode == 0, run.output[-3000:]
    dumps = set(glob.glob(pattern)) - before
    assert len(dumps) == 1, dumps
    return dumps.pop()

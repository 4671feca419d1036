"""images role, `archive` source: the tarball is loaded once; a re-run loads nothing."""
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)
REF = "smartid/archive-test:1"


def docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def run_playbook(archive):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    args = [os.path.join(VENV_BIN, "ansible-playbook"), "tests/playbook/images_archive.yml",
            "-e", "archivetest_image_source=archive", "-e", "archivetest_image=%s" % REF,
            "-e", "archivetest_image_archive=%s" % archive]
    result = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    recap = re.search(r"localhost\s+:\s+ok=\d+\s+changed=(\d+)", result.stdout)
    assert recap, result.stdout[-2000:]
    return int(recap.group(1))


def test_archive_is_loaded_once(tmp_path):
    archive = tmp_path / "archive-test.tar"
    base = "smartid/base:%s" % subprocess.run(
        ["sh", "-c", ". /etc/os-release && echo $VERSION_CODENAME"], capture_output=True, text=True, check=True
    ).stdout.strip()
    docker("tag", base, REF)
    docker("save", "--output", str(archive), REF)
    docker("rmi", REF)
    try:
        assert docker("image", "inspect", REF, check=False).returncode != 0
        assert run_playbook(archive) > 0
        assert docker("image", "inspect", REF, check=False).returncode == 0
        assert run_playbook(archive) == 0
    finally:
        docker("rmi", REF, check=False)

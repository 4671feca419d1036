"""images role, `build` source in a dry run: an image that would be built is reported as a
change, and nothing is built or left behind (site.yml --check on a host without the image)."""
import json
import os
import re
import subprocess
import sys
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.dirname(sys.executable)


def test_dry_run_reports_the_build_and_builds_nothing(tmp_path):
    # A build argument nobody used yet gives a context hash, so an image tag, that is not there.
    marker = uuid.uuid4().hex
    build_args = json.dumps({"buildtest_build_args": {"SMARTID_DRY_RUN_MARKER": marker}})
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(ROOT, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    before = set(subprocess.run(["docker", "image", "ls", "-q", "--no-trunc"], capture_output=True,
                                text=True, check=True).stdout.split())
    result = subprocess.run(
        [os.path.join(VENV_BIN, "ansible-playbook"), "tests/playbook/images_build.yml", "--check", "--diff",
         "-e", build_args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    recap = re.search(r"localhost\s+:\s+ok=\d+\s+changed=(\d+)", result.stdout)
    assert recap and int(recap.group(1)) > 0, result.stdout[-2000:]
    assert re.search(r"TASK \[smartid\.hermod\.images : Report the image a real run builds, smartid/nexus-standin:\w+\]",
                     result.stdout), result.stdout[-3000:]
    after = set(subprocess.run(["docker", "image", "ls", "-q", "--no-trunc"], capture_output=True,
                               text=True, check=True).stdout.split())
    assert after == before, "a dry run created images"
    # The context archive is only packed for a real build.
    assert not os.path.exists(os.path.join(ROOT, "images", "nexus-standin", ".build", "context.tar"))
    assert not os.path.exists("/var/tmp/smartid-build/nexus-standin.tar")

"""messaging_startup.read_container: what the start-up check reads on the host in one module run."""
from __future__ import annotations

import json
import os

from ansible_collections.smartid.hermod.plugins.module_utils import messaging_startup as startup

STARTED = "2026-11-30T13:00:00.123456789Z"
INSPECT = [{"Id": "abc123", "State": {"Running": True, "StartedAt": STARTED,
                                       "Health": {"Status": "healthy"}},
            "Mounts": [{"Destination": "/home/docker/cacerts", "Source": "/x/cacerts"}]}]


class Engine:
    """Answers the three docker commands as the engine would; records what was asked."""

    def __init__(self, ps="abc123\n", ps_rc=0, logs=("out line\n", "err line\n")):
        self.ps, self.ps_rc, self.logs, self.asked = ps, ps_rc, logs, []

    def __call__(self, argv):
        self.asked.append(argv)
        if argv[:2] == ["docker", "compose"]:
            return self.ps_rc, self.ps, "" if self.ps_rc == 0 else "no such project"
        if argv[1] == "inspect":
            return 0, json.dumps(INSPECT), ""
        if argv[1] == "logs":
            return 0, self.logs[0], self.logs[1]
        raise AssertionError(argv)


def test_it_reads_container_inspect_log_since_start_and_the_cer_files(tmp_path):
    cacerts = tmp_path / "cacerts"
    cacerts.mkdir()
    (cacerts / "b.cer").write_text("B")
    (cacerts / "a.cer").write_text("A")
    (cacerts / "notes.txt").write_text("not a certificate")
    (cacerts / "dir.cer").mkdir()
    os.chmod(cacerts / "a.cer", 0o640)
    engine = Engine()
    found = startup.read_container(engine, "/srv/messaging", "messaging", str(cacerts))
    assert found["error"] == ""
    assert found["container"] == "abc123"
    assert found["inspect"] == INSPECT[0]
    # The log since the container's last start, both streams.
    assert engine.asked[2] == ["docker", "logs", "--since", STARTED, "abc123"]
    assert "out line" in found["log"] and "err line" in found["log"]
    assert [c["path"] for c in found["cacerts"]] == [str(cacerts / "a.cer"), str(cacerts / "b.cer")]
    assert found["cacerts"][0]["mode"] == "0640"
    assert found["cacerts"][0]["uid"] == os.getuid()
    assert engine.asked[0] == ["docker", "compose", "--project-directory", "/srv/messaging", "ps",
                               "--all", "--quiet", "messaging"]


def test_no_container_and_a_failing_compose_are_errors_that_name_the_project(tmp_path):
    found = startup.read_container(Engine(ps=""), "/srv/messaging", "messaging", str(tmp_path))
    assert found["error"] == "no messaging container in the compose project of /srv/messaging"
    found = startup.read_container(Engine(ps_rc=1), "/srv/messaging", "messaging", str(tmp_path))
    assert found["error"].startswith("docker compose ps in /srv/messaging failed: no such project")


def test_a_missing_cacerts_folder_lists_nothing(tmp_path):
    found = startup.read_container(Engine(), "/p", "messaging", str(tmp_path / "absent"))
    assert found["error"] == "" and found["cacerts"] == []

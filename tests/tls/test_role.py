"""The traefik role (smartid.hermod.traefik) on a real Docker engine: idempotent, check mode clean, files and modes."""

from __future__ import annotations

import stat

from conftest import container_state, docker
from stack import recap


def test_first_run_changed_something(test_instance):
    assert recap(test_instance.first_run.stdout)["changed"] > 0


def test_second_run_changes_nothing_and_restarts_nothing(test_instance):
    before = container_state(test_instance.container)
    proc = test_instance.deploy()
    assert recap(proc.stdout)["changed"] == 0, proc.stdout[-4000:]
    assert container_state(test_instance.container) == before


def test_check_diff_run_reports_no_change(test_instance):
    before = container_state(test_instance.container)
    proc = test_instance.deploy("--check", "--diff")
    assert recap(proc.stdout)["changed"] == 0, proc.stdout[-4000:]
    assert container_state(test_instance.container) == before


def test_private_keys_are_not_world_readable(test_instance):
    comp = test_instance.component_dir
    keys = list((comp / "certificates").glob("*.key")) + list((comp / "ca").glob("*.key"))
    assert len(keys) == 3  # served key, CA key, generated server key
    for key in keys:
        mode = stat.S_IMODE(key.stat().st_mode)
        assert mode & 0o007 == 0, f"{key} is {oct(mode)}"
    assert stat.S_IMODE((comp / "ca" / "smartid-local-ca.key").stat().st_mode) == 0o600


def test_no_secret_in_playbook_output_at_vvv(test_instance):
    """The first run creates the CA key and the server key and copies the served key: none of
    them, in whole or in any line of their PEM body, appears in its -vvv output."""
    run = test_instance.first_run
    out = run.stdout + run.stderr
    assert "ESTABLISH LOCAL CONNECTION" in out, "the first run was not at -vvv"
    comp = test_instance.component_dir
    keys = sorted((comp / "ca").glob("*.key")) + sorted((comp / "certificates").glob("*.key"))
    assert len(keys) == 3, keys  # CA key, generated server key, served copy of it
    for key in keys:
        lines = key.read_text().splitlines()
        assert lines[0].startswith("-----BEGIN") and "PRIVATE KEY" in lines[0], key
        body = lines[1:-1]
        assert "".join(body) not in out, f"{key} appears in the output"
        for line in body:
            # A full 64-character line is unique to the key; the last, shorter line may not be.
            if len(line) >= 32:
                assert line not in out, f"a line of {key} appears in the output"
    assert "PRIVATE KEY" not in out


def test_compose_file_works_by_hand(test_instance):
    proc = docker("compose", "--project-directory", test_instance.component_dir, "ps", "--format", "json")
    assert test_instance.container in proc.stdout
    assert '"Health":"healthy"' in proc.stdout.replace(" ", "")


def test_check_mode_on_a_fresh_host_succeeds_and_writes_nothing(test_instance, tmp_path):
    home = tmp_path / "fresh"
    home.mkdir()
    proc = test_instance.deploy("--check", "--diff", traefik_smartid_home=str(home))
    assert recap(proc.stdout)["changed"] > 0  # it reports what it would do ...
    assert list(home.iterdir()) == []  # ... and does none of it

"""The database_migrate and database_backup modules run by Ansible itself, against real PostgreSQL.

- `local` connection against a throwaway cluster (runuser + the installed PostgreSQL's server binaries);
- `docker_exec` against a dbtest- container of images/postgres (marked `docker`: needs a running
  Docker engine).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from ansible_collections.smartid.hermod.plugins.module_utils.database_migrations import flyway_checksum
from ansible_collections.smartid.hermod.plugins.modules import database_backup
from conftest_database import PG_BIN, ROOT, require, wait_for, write_fixture_sql

ANSIBLE_PLAYBOOK = str(Path(sys.executable).with_name("ansible-playbook"))


def run_play(tmp_path, tasks, extra_args=()):
    """Run tasks on localhost with the bundle's ansible.cfg (its collection); returns (rc, output, results)."""
    play = [{"name": "dbtest", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    path = tmp_path / ("play-%s.yml" % uuid.uuid4().hex[:8])
    path.write_text(json.dumps(play))
    env = dict(
        os.environ,
        ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"),
        ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json",
        ANSIBLE_LOCALHOST_WARNING="false",
        ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
    )
    proc = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-c", "local", "-e", "ansible_python_interpreter=%s" % sys.executable,
         str(path)] + list(extra_args),
        capture_output=True, text=True, env=env, cwd=str(ROOT),
    )
    output = proc.stdout + proc.stderr
    results = []
    try:
        start = proc.stdout.index("{")
        data = json.loads(proc.stdout[start:])
        for task in data["plays"][0]["tasks"]:
            results.append(task["hosts"]["localhost"])
    except (ValueError, KeyError, IndexError):
        pass
    return proc.returncode, output, results


def migrate_task(db, sql_dir, version, **extra):
    args = {
        "sql_dir": str(sql_dir), "target_version": version, "connection": "local",
        "client_bin_dir": str(PG_BIN), "login_host": "127.0.0.1", "login_port": db.port,
        "login_user": db.user, "login_password": db.password, "database": db.database,
    }
    args.update(extra)
    return {"name": "migrate", "smartid.hermod.database_migrate": args}


def test_module_check_mode_apply_second_run_and_no_password_in_output(db, tmp_path):
    sql_dir = write_fixture_sql(tmp_path / "sql")
    rc, out, res = run_play(tmp_path, [migrate_task(db, sql_dir, "1.0.0")], ["--check", "-vvvv"])
    assert rc == 0, out
    assert res[0]["changed"] is True and res[0]["plan"] == ["V1.0.0__base_version.sql"]
    assert db.psql("SELECT to_regclass('flyway_schema_history') IS NULL") == "t"
    assert db.password not in out

    rc, out, res = run_play(tmp_path, [migrate_task(db, sql_dir, "1.0.0"), migrate_task(db, sql_dir, "1.2.0"),
                                       migrate_task(db, sql_dir, "1.2.0")], ["-vvvv"])
    assert rc == 0, out
    assert [r["changed"] for r in res] == [True, True, False]
    assert res[1]["mode"] == "upgrade" and res[1]["installed_version"] == "1.0.0"
    assert res[1]["plan"] == ["V1.1.0__add_expiry_and_devices.sql", "V1.2.0__index_commands_by_client.sql"]
    assert res[2]["plan"] == [] and res[2]["schema_version"] == "1.2.0"
    assert db.password not in out


def test_module_fails_on_modified_applied_file_without_changing(db, tmp_path):
    sql_dir = write_fixture_sql(tmp_path / "sql")
    rc, out, _ = run_play(tmp_path, [migrate_task(db, sql_dir, "1.0.0")])
    assert rc == 0, out
    (sql_dir / "V1.0.0__base_version.sql").write_text("CREATE TABLE command (id int);\n")
    rc, out, res = run_play(tmp_path, [migrate_task(db, sql_dir, "1.1.0")])
    assert rc != 0
    assert "V1.0.0__base_version.sql was changed after it was applied" in res[0]["msg"]
    assert db.psql("SELECT count(*) FROM flyway_schema_history") == "1"


def test_module_inspect_only_reports_installed_version(db, tmp_path):
    sql_dir = write_fixture_sql(tmp_path / "sql")
    rc, out, res = run_play(tmp_path, [
        {"name": "inspect", "smartid.hermod.database_migrate": {"inspect_only": True, "connection": "local",
                                                  "client_bin_dir": str(PG_BIN), "login_port": db.port,
                                                  "login_user": db.user, "login_password": db.password,
                                                  "database": db.database}},
        migrate_task(db, sql_dir, "1.1.0"),
    ])
    assert rc == 0, out
    assert res[0]["installed_version"] is None and res[0]["history"] is None and res[0]["changed"] is False


def test_module_inspect_only_with_the_sql_folder_tells_whether_a_migration_would_pass_its_check(db, tmp_path):
    sql_dir = write_fixture_sql(tmp_path / "sql")
    inspect = {"name": "inspect", "smartid.hermod.database_migrate": {
        "inspect_only": True, "sql_dir": str(sql_dir), "connection": "local", "client_bin_dir": str(PG_BIN),
        "login_port": db.port, "login_user": db.user, "login_password": db.password, "database": db.database}}
    rc, out, res = run_play(tmp_path, [inspect, migrate_task(db, sql_dir, "1.0.0"), inspect])
    assert rc == 0, out
    assert res[0]["history_valid"] is True and res[2]["history_valid"] is True
    assert res[2]["installed_version"] == "1.0.0"
    # An applied file changed since: the read says so without failing (and changes nothing);
    # the migration is what stops, naming the file.
    (sql_dir / "V1.0.0__base_version.sql").write_text("CREATE TABLE command (id int);\n")
    rc, out, res = run_play(tmp_path, [inspect])
    assert rc == 0, out
    assert res[0]["history_valid"] is False and res[0]["changed"] is False


def test_backup_dump_retention_and_restore_into_empty_database(db, tmp_path):
    sql_dir = write_fixture_sql(tmp_path / "sql")
    backups = tmp_path / "backups"
    backups.mkdir()
    common = {"connection": "local", "client_bin_dir": str(PG_BIN), "login_port": db.port,
              "login_user": db.user, "login_password": db.password, "database": db.database}
    rc, out, _ = run_play(tmp_path, [migrate_task(db, sql_dir, "1.0.0")])
    assert rc == 0, out
    db.psql("INSERT INTO command (client_id, body) SELECT 'c' || i, '{}' FROM generate_series(1, 50) i")
    dump = dict(common, state="dumped", dest_dir=str(backups), keep=2, label="1.0.0")
    rc, out, res = run_play(tmp_path, [{"name": "d%d" % i, "smartid.hermod.database_backup": dump} for i in range(3)], ["-vvvv"])
    assert rc == 0, out
    assert db.password not in out
    files = sorted(p.name for p in backups.iterdir())
    assert len(files) == 2 and all(f.endswith("-schema-1.0.0.dump") for f in files)
    assert res[2]["removed"] == [Path(res[0]["path"]).name]
    assert oct(os.stat(res[2]["path"]).st_mode & 0o777) == "0o600"

    restore = dict(common, state="restored", src=res[2]["path"])
    rc, out, res_r = run_play(tmp_path, [{"name": "r", "smartid.hermod.database_backup": restore}])
    assert rc != 0 and "already holds" in res_r[0]["msg"]

    db.reset()
    rc, out, _ = run_play(tmp_path, [{"name": "r", "smartid.hermod.database_backup": restore}])
    assert rc == 0, out
    assert db.psql("SELECT count(*) FROM command") == "50"
    assert db.psql("SELECT version FROM flyway_schema_history") == "1.0.0"
    checksum = flyway_checksum((sql_dir / "V1.0.0__base_version.sql").read_bytes())
    assert db.psql("SELECT checksum FROM flyway_schema_history") == str(checksum)


def test_backup_retention_selection():
    names = ["database-hermod-20260101T000000.000001Z-schema-1.0.0.dump",
             "database-hermod-20260102T000000.000001Z.dump",
             "database-hermod-20260103T000000.000001Z-schema-1.1.0.dump",
             "database-other-20250101T000000.000001Z.dump", ".database-hermod-x.partial", "notes.txt"]
    assert database_backup.select_expired(names, "database-hermod", 2) == [names[0]]
    assert database_backup.select_expired(names, "database-hermod", 0) == []
    assert database_backup.select_expired(names, "database-hermod", 5) == []


# docker_exec against the image ----------------------------------------------------------------


def _docker_ok():
    return shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0


@pytest.fixture(scope="module")
def pg_container():
    require(_docker_ok(), "needs a running Docker engine")
    image = os.environ.get("DBTEST_POSTGRES_IMAGE", "smartid/postgres:dbtest")
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode != 0:
        subprocess.run(["docker", "build", "-q", "--build-arg", "BASE_IMAGE=smartid/base:bookworm", "-t", image,
                        str(ROOT / "images" / "postgres")], check=True, capture_output=True)
    name = "dbtest-unit-%s" % uuid.uuid4().hex[:8]
    password = "dbtest-container-pw"
    env = dict(os.environ, POSTGRES_PASSWORD=password)
    subprocess.run(["docker", "run", "-d", "--name", name, "-e", "POSTGRES_USER=hermod", "-e", "POSTGRES_DB=hermod",
                    "-e", "POSTGRES_PASSWORD", image], check=True, capture_output=True, env=env)
    try:
        healthy = wait_for(lambda: subprocess.run(
            ["docker", "inspect", "-f", "{{.State.Health.Status}}", name], capture_output=True, text=True
        ).stdout.strip() == "healthy", timeout=90)
        assert healthy, subprocess.run(["docker", "logs", name], capture_output=True, text=True).stderr
        yield name, password
    finally:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True)


@pytest.mark.docker
def test_docker_exec_migrates_inside_the_container(pg_container, tmp_path):
    name, password = pg_container
    sql_dir = write_fixture_sql(tmp_path / "sql")
    args = {"sql_dir": str(sql_dir), "connection": "docker_exec", "container": name, "login_user": "hermod",
            "login_password": password, "database": "hermod"}
    rc, out, res = run_play(tmp_path, [
        {"name": "a", "smartid.hermod.database_migrate": dict(args, target_version="1.0.0")},
        {"name": "b", "smartid.hermod.database_migrate": dict(args, target_version="1.10.0")},
        {"name": "c", "smartid.hermod.database_migrate": dict(args, target_version="1.10.0")},
    ], ["-vvvv"])
    assert rc == 0, out
    assert password not in out
    assert [r["changed"] for r in res] == [True, True, False]
    assert res[1]["plan"][-2:] == ["V1.9.0__device_seen.sql", "V1.10.0__device_label.sql"]
    ps = subprocess.run(["docker", "exec", name, "psql", "-X", "-At", "-U", "hermod", "-d", "hermod", "-c",
                         "SELECT string_agg(version, ',' ORDER BY installed_rank) FROM flyway_schema_history"],
                        capture_output=True, text=True, check=True)
    assert ps.stdout.strip() == "1.0.0,1.1.0,1.2.0,1.9.0,1.10.0"


@pytest.mark.docker
def test_docker_exec_with_wrong_password_fails_cleanly(pg_container, tmp_path):
    name, _ = pg_container
    sql_dir = write_fixture_sql(tmp_path / "sql")
    rc, out, res = run_play(tmp_path, [{"name": "a", "smartid.hermod.database_migrate": {
        "sql_dir": str(sql_dir), "connection": "docker_exec", "container": name, "login_user": "hermod",
        "login_password": "wrong-one-123", "database": "hermod", "target_version": "1.0.0"}}])
    assert rc != 0 and "password authentication failed" in res[0]["msg"]
    assert "wrong-one-123" not in out


def test_empty_container_name_fails_cleanly(tmp_path):
    sql_dir = write_fixture_sql(tmp_path / "sql")
    rc, out, res = run_play(tmp_path, [{"name": "a", "smartid.hermod.database_migrate": {
        "sql_dir": str(sql_dir), "connection": "docker_exec", "container": "", "login_user": "hermod",
        "login_password": "empty-container-pw-1", "database": "hermod", "target_version": "1.0.0"}}])
    assert rc != 0 and res[0]["msg"] == "connection docker_exec needs the container name"
    assert "Traceback" not in out and "empty-container-pw-1" not in out

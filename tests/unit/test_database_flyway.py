"""Migrations against a real PostgreSQL (throwaway cluster on 127.0.0.1, scram-sha-256)."""

from __future__ import annotations

import pytest

from ansible_collections.smartid.hermod.plugins.module_utils.database_client import ClientError, DatabaseClient
from ansible_collections.smartid.hermod.plugins.module_utils.database_flyway import apply_script, migrate, read_history
from ansible_collections.smartid.hermod.plugins.module_utils.database_migrations import (
    MigrationError,
    flyway_checksum,
    parse_migration,
)
from conftest_database import PG_BIN, write_fixture_sql


def history(db):
    rows = db.psql(
        "SELECT installed_rank, version, description, type, script, checksum, installed_by, success,"
        " execution_time >= 0 FROM flyway_schema_history ORDER BY installed_rank"
    )
    return [r.split("|") for r in rows.splitlines()]


def test_new_install_runs_base_file_and_records_it(db, client, sql_dir):
    result = migrate(client, str(sql_dir), "1.0.0")
    assert result["mode"] == "install" and result["changed"]
    assert result["plan"] == ["V1.0.0__base_version.sql"]
    assert result["installed_version"] is None and result["schema_version"] == "1.0.0"
    checksum = flyway_checksum((sql_dir / "V1.0.0__base_version.sql").read_bytes())
    assert history(db) == [
        ["1", "1.0.0", "base version", "SQL", "V1.0.0__base_version.sql", str(checksum), db.user, "t", "t"]
    ]
    assert db.psql("SELECT count(*) FROM command") == "0"


def test_new_install_at_later_version_uses_only_that_base(db, client, sql_dir):
    result = migrate(client, str(sql_dir), "1.1.0")
    assert result["plan"] == ["V1.1.0__base_version.sql"]
    assert [r[4] for r in history(db)] == ["V1.1.0__base_version.sql"]
    assert db.psql("SELECT to_regclass('device') IS NOT NULL") == "t"


def test_multi_step_upgrade_keeps_rows_and_orders_3_10_after_3_9(db, client, sql_dir):
    migrate(client, str(sql_dir), "1.0.0")
    db.psql("INSERT INTO command (client_id, body) VALUES ('idm', '{\"a\": 1}'), ('da', '{}')")
    result = migrate(client, str(sql_dir), "1.10.0")
    assert result["mode"] == "upgrade"
    assert result["plan"] == [
        "V1.1.0__add_expiry_and_devices.sql",
        "V1.2.0__index_commands_by_client.sql",
        "V1.9.0__device_seen.sql",
        "V1.10.0__device_label.sql",
    ]
    assert [a["installed_rank"] for a in result["applied"]] == [2, 3, 4, 5]
    assert [r[1] for r in history(db)] == ["1.0.0", "1.1.0", "1.2.0", "1.9.0", "1.10.0"]
    assert db.psql("SELECT client_id FROM command ORDER BY id") == "idm\nda"
    assert db.psql("SELECT count(*) FROM command WHERE expires_at IS NOT NULL") == "2"
    assert db.psql("SELECT obj_description('command'::regclass)") == "commands; it's fine"
    assert db.psql("SELECT count(*) FROM information_schema.columns WHERE table_name = 'device'"
                   " AND column_name IN ('label', 'last_seen')") == "2"


def test_second_run_applies_nothing(db, client, sql_dir):
    migrate(client, str(sql_dir), "1.0.0")
    migrate(client, str(sql_dir), "1.2.0")
    before = history(db)
    result = migrate(client, str(sql_dir), "1.2.0")
    assert result["changed"] is False and result["plan"] == [] and result["mode"] == "current"
    assert history(db) == before


def test_check_mode_reports_plan_and_changes_nothing(db, client, sql_dir):
    result = migrate(client, str(sql_dir), "1.0.0", check_mode=True)
    assert result["plan"] == ["V1.0.0__base_version.sql"] and result["changed"] is True
    assert db.psql("SELECT to_regclass('flyway_schema_history') IS NULL") == "t"
    migrate(client, str(sql_dir), "1.0.0")
    result = migrate(client, str(sql_dir), "1.2.0", check_mode=True)
    assert result["plan"] == ["V1.1.0__add_expiry_and_devices.sql", "V1.2.0__index_commands_by_client.sql"]
    assert result["schema_version"] == "1.0.0"
    assert [r[1] for r in history(db)] == ["1.0.0"]


def test_modified_applied_file_is_detected_before_any_change(db, client, sql_dir):
    migrate(client, str(sql_dir), "1.0.0")
    migrate(client, str(sql_dir), "1.1.0")
    target = sql_dir / "V1.1.0__add_expiry_and_devices.sql"
    target.write_text(target.read_text() + "CREATE TABLE sneaky (id int);\n")
    with pytest.raises(MigrationError, match=r"V1\.1\.0__add_expiry_and_devices\.sql was changed after it was applied"):
        migrate(client, str(sql_dir), "1.2.0")
    assert [r[1] for r in history(db)] == ["1.0.0", "1.1.0"]
    assert db.psql("SELECT to_regclass('command_client_idx') IS NULL") == "t"


def test_line_ending_change_of_applied_file_is_not_a_modification(db, client, sql_dir):
    migrate(client, str(sql_dir), "1.0.0")
    base = sql_dir / "V1.0.0__base_version.sql"
    base.write_bytes(base.read_bytes().replace(b"\n", b"\r\n"))
    assert migrate(client, str(sql_dir), "1.1.0")["plan"] == ["V1.1.0__add_expiry_and_devices.sql"]


def test_downgrade_is_refused(db, client, sql_dir):
    migrate(client, str(sql_dir), "1.1.0")
    with pytest.raises(MigrationError, match="downgrade"):
        migrate(client, str(sql_dir), "1.0.0")


def test_failing_file_is_rolled_back_without_history_row(db, client, tmp_path):
    sql_dir = write_fixture_sql(
        tmp_path / "sql", names=["V1.0.0__base_version.sql", "V1.1.0__add_expiry_and_devices.sql"],
        extra={"V1.2.0__broken.sql": "CREATE TABLE half_done (id int);\nSELECT no_such_column FROM command;\n"},
    )
    migrate(client, str(sql_dir), "1.0.0")
    with pytest.raises(MigrationError) as info:
        migrate(client, str(sql_dir), "1.2.0")
    message = str(info.value)
    assert "applying V1.2.0__broken.sql failed and was rolled back" in message
    assert "V1.2.0__broken.sql:2:" in message and "no_such_column" in message
    assert info.value.result["applied"][0]["script"] == "V1.1.0__add_expiry_and_devices.sql"
    assert [r[1] for r in history(db)] == ["1.0.0", "1.1.0"]
    assert db.psql("SELECT to_regclass('half_done') IS NULL") == "t"


def test_failed_new_install_leaves_no_history_table(db, client, tmp_path):
    sql_dir = write_fixture_sql(tmp_path / "sql", names=[], extra={"V1.0.0__base_version.sql": "CREATE TABLE x (;\n"})
    with pytest.raises(MigrationError, match="rolled back"):
        migrate(client, str(sql_dir), "1.0.0")
    assert db.psql("SELECT to_regclass('flyway_schema_history') IS NULL") == "t"


def test_concurrent_migrator_is_stopped_by_rank_guard(db, client, sql_dir):
    migrate(client, str(sql_dir), "1.0.0")
    migration = parse_migration("V1.1.0__add_expiry_and_devices.sql")
    text = (sql_dir / migration.script).read_bytes()
    stale, _ = apply_script(migration, text, flyway_checksum(text), previous_rank=0, create_history=False)
    with pytest.raises(ClientError, match="another migration running"):
        client.psql(stale, args=("-X", "-q"))
    assert [r[1] for r in history(db)] == ["1.0.0"]


def test_failed_history_row_blocks_migration(db, client, sql_dir):
    migrate(client, str(sql_dir), "1.0.0")
    db.psql("INSERT INTO flyway_schema_history VALUES (2, '1.1.0', 'x', 'SQL', 'V1.1.0__x.sql', 0, 'me',"
            " now(), 1, false)")
    with pytest.raises(MigrationError, match="marked failed"):
        migrate(client, str(sql_dir), "1.2.0")


def test_wrong_password_is_a_client_error_without_the_password(db, sql_dir):
    bad = DatabaseClient("local", db.database, db.user, "not-the-password", port=db.port,
                         client_bin_dir=str(PG_BIN))
    with pytest.raises(ClientError, match="password authentication failed") as info:
        read_history(bad)
    assert "not-the-password" not in str(info.value)


def test_password_is_never_on_the_command_line():
    for connection, extra in (("docker_exec", {"container": "c"}), ("docker_run", {"image": "i"}), ("local", {})):
        client = DatabaseClient(connection, "db", "u", "S3cret!", **extra)
        for tool in ("psql", "pg_dump", "pg_restore"):
            argv = client.argv(tool)
            assert not any("S3cret!" in a for a in argv)
            assert client.env()["PGPASSWORD"] == "S3cret!"
            if connection != "local":
                assert argv[argv.index("PGPASSWORD") - 1] == "-e"

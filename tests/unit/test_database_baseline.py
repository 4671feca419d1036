"""Baseline of a hand-made schema and user substitutions, against a real PostgreSQL 15."""

from __future__ import annotations

import pytest

from ansible_collections.smartid.hermod.plugins.module_utils.database_flyway import migrate
from ansible_collections.smartid.hermod.plugins.module_utils.database_migrations import (
    MigrationError,
    flyway_checksum,
)
from conftest_database import FIXTURE_SQL, HAVE_PG, write_fixture_sql

pytestmark = pytest.mark.skipif(not HAVE_PG, reason="needs PostgreSQL 15 server binaries and runuser")


def history(db):
    rows = db.psql("SELECT installed_rank, version, type, script, coalesce(checksum::text, '-')"
                   " FROM flyway_schema_history ORDER BY installed_rank")
    return [r.split("|") for r in rows.splitlines()]


def make_by_hand(db, version_file):
    """The schema as an operator would make it: the vendor's file run through psql, no history."""
    db.psql(FIXTURE_SQL[version_file])


def test_tables_without_history_are_refused_naming_the_baseline_option(db, client, sql_dir):
    make_by_hand(db, "V1.0.0__base_version.sql")
    with pytest.raises(MigrationError) as info:
        migrate(client, str(sql_dir), "1.1.0")
    message = str(info.value)
    assert "public.command" in message and "no flyway_schema_history" in message
    assert "database_baseline_version" in message
    assert db.psql("SELECT to_regclass('flyway_schema_history') IS NULL") == "t"
    assert db.psql("SELECT to_regclass('device') IS NULL") == "t"


def test_baseline_records_the_version_without_running_anything(db, client, sql_dir):
    make_by_hand(db, "V1.0.0__base_version.sql")
    db.psql("INSERT INTO command (client_id, body) VALUES ('idm', '{}')")
    result = migrate(client, str(sql_dir), "1.0.0", baseline="1.0.0")
    assert result["changed"] is True and result["baseline"] == "1.0.0"
    assert result["plan"] == [] and result["applied"] == [] and result["schema_version"] == "1.0.0"
    assert history(db) == [["1", "1.0.0", "BASELINE", "<< Flyway Baseline >>", "-"]]
    assert db.psql("SELECT count(*) FROM command") == "1"
    again = migrate(client, str(sql_dir), "1.0.0", baseline="1.0.0")
    assert again["changed"] is False and again["warnings"] == []
    assert len(history(db)) == 1


def test_baseline_then_later_files_are_applied_on_top(db, client, sql_dir):
    make_by_hand(db, "V1.0.0__base_version.sql")
    result = migrate(client, str(sql_dir), "1.2.0", baseline="1.0.0")
    assert result["installed_version"] == "1.0.0" and result["mode"] == "upgrade"
    assert result["plan"] == ["V1.1.0__add_expiry_and_devices.sql", "V1.2.0__index_commands_by_client.sql"]
    assert [r[1:3] for r in history(db)] == [["1.0.0", "BASELINE"], ["1.1.0", "SQL"], ["1.2.0", "SQL"]]
    assert db.psql("SELECT to_regclass('command_client_idx') IS NOT NULL") == "t"


def test_baseline_check_mode_changes_nothing(db, client, sql_dir):
    make_by_hand(db, "V1.0.0__base_version.sql")
    result = migrate(client, str(sql_dir), "1.1.0", check_mode=True, baseline="1.0.0")
    assert result["changed"] is True and result["plan"] == ["V1.1.0__add_expiry_and_devices.sql"]
    assert db.psql("SELECT to_regclass('flyway_schema_history') IS NULL") == "t"


def test_baseline_after_target_is_refused(db, client, sql_dir):
    make_by_hand(db, "V1.1.0__base_version.sql")
    with pytest.raises(MigrationError, match="baseline_version 1.2.0 is after the target schema version 1.1.0"):
        migrate(client, str(sql_dir), "1.1.0", baseline="1.2.0")
    assert db.psql("SELECT to_regclass('flyway_schema_history') IS NULL") == "t"


def test_malformed_baseline_is_refused_naming_the_option(db, client, sql_dir):
    with pytest.raises(MigrationError, match="database_baseline_version '1.0' is not a version"):
        migrate(client, str(sql_dir), "1.1.0", baseline="1.0")


def test_empty_database_with_baseline_is_a_new_install(db, client, sql_dir):
    result = migrate(client, str(sql_dir), "1.1.0", baseline="1.0.0")
    assert result["mode"] == "install" and result["plan"] == ["V1.1.0__base_version.sql"]
    assert any("is ignored: the database is empty" in w for w in result["warnings"])
    assert [r[2] for r in history(db)] == ["SQL"]


def test_baseline_is_ignored_once_a_history_exists(db, client, sql_dir):
    migrate(client, str(sql_dir), "1.0.0")
    result = migrate(client, str(sql_dir), "1.1.0", baseline="1.0.0")
    assert result["plan"] == ["V1.1.0__add_expiry_and_devices.sql"]
    assert any("ignored: the database has a schema history already" in w for w in result["warnings"])
    assert [r[2] for r in history(db)] == ["SQL", "SQL"]


def test_substitutions_change_what_runs_not_the_recorded_checksum(db, client, tmp_path):
    grant = "CREATE TABLE owned (id int);\nALTER TABLE owned OWNER TO hermod_owner;\n"
    sql_dir = write_fixture_sql(tmp_path / "sql", names=["V1.0.0__base_version.sql"],
                                extra={"V1.1.0__owned.sql": grant})
    migrate(client, str(sql_dir), "1.0.0")
    # The vendor's file names a user this site does not have: without a substitution it fails.
    with pytest.raises(MigrationError, match='role "hermod_owner" does not exist'):
        migrate(client, str(sql_dir), "1.1.0")
    result = migrate(client, str(sql_dir), "1.1.0", substitutions={"hermod_owner": db.user})
    assert result["applied"][0]["checksum"] == flyway_checksum(grant.encode())
    assert history(db)[-1] == ["2", "1.1.0", "SQL", "V1.1.0__owned.sql", str(flyway_checksum(grant.encode()))]
    assert db.psql("SELECT tableowner FROM pg_tables WHERE tablename = 'owned'") == db.user
    # The next run sees the file as shipped, unchanged: nothing to do, no checksum complaint.
    again = migrate(client, str(sql_dir), "1.1.0", substitutions={"hermod_owner": db.user})
    assert again["changed"] is False


def test_substitution_missing_from_the_plan_is_a_warning(db, client, sql_dir):
    result = migrate(client, str(sql_dir), "1.0.0", substitutions={"no_such_user": "x"})
    assert any("'no_such_user' occurs in none of V1.0.0__base_version.sql" in w for w in result["warnings"])


@pytest.mark.parametrize("bad", [{"": "x"}, {"hermod": None}, {"hermod": 3}])
def test_bad_substitutions_are_refused_before_anything_runs(db, client, sql_dir, bad):
    with pytest.raises(MigrationError, match="database_sql_substitutions"):
        migrate(client, str(sql_dir), "1.0.0", substitutions=bad)
    assert db.psql("SELECT to_regclass('flyway_schema_history') IS NULL") == "t"

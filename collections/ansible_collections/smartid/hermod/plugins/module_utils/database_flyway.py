# -*- coding: utf-8 -*-
"""Apply planned migrations and keep the Flyway-compatible history (flyway_schema_history).

Each SQL file runs in its own transaction together with its history row, so a failed file
leaves neither its changes nor a row behind (PostgreSQL has transactional DDL). A file that
was applied and has changed since (checksum mismatch) stops everything before any change.
"""

from __future__ import annotations

import json
import os
import re

from ansible_collections.smartid.hermod.plugins.module_utils.database_migrations import (
    MigrationError,
    flyway_checksum,
    format_version,
    parse_migrations,
    parse_version,
    plan_migrations,
)

HISTORY_TABLE = "flyway_schema_history"

# Flyway's own DDL for PostgreSQL, so that Flyway (or the vendor's service) can read it.
HISTORY_DDL = """CREATE TABLE IF NOT EXISTS "flyway_schema_history" (
    "installed_rank" INT NOT NULL,
    "version" VARCHAR(50),
    "description" VARCHAR(200) NOT NULL,
    "type" VARCHAR(20) NOT NULL,
    "script" VARCHAR(1000) NOT NULL,
    "checksum" INTEGER,
    "installed_by" VARCHAR(100) NOT NULL,
    "installed_on" TIMESTAMP NOT NULL DEFAULT now(),
    "execution_time" INTEGER NOT NULL,
    "success" BOOLEAN NOT NULL,
    CONSTRAINT "flyway_schema_history_pk" PRIMARY KEY ("installed_rank")
);
CREATE INDEX IF NOT EXISTS "flyway_schema_history_s_idx" ON "flyway_schema_history" ("success");
"""

READ_HISTORY = """SELECT to_regclass('flyway_schema_history') IS NOT NULL AS has_history \\gset
\\if :has_history
SELECT coalesce(json_agg(h ORDER BY h.installed_rank), '[]'::json)
  FROM (SELECT installed_rank, version, description, type, script, checksum, success
          FROM flyway_schema_history) h;
\\else
SELECT 'null';
\\endif
"""

# Tables outside the system schemas: a database holding any has a schema already, made by hand
# when there is no history to say which version it is.
LIST_TABLES = """SELECT coalesce(json_agg(t ORDER BY t), '[]'::json) FROM (
  SELECT schemaname || '.' || tablename AS t FROM pg_catalog.pg_tables
   WHERE schemaname NOT IN ('pg_catalog', 'information_schema') AND schemaname NOT LIKE 'pg\\_%') s;
"""

BASELINE_DESCRIPTION = "<< Flyway Baseline >>"

_PSQL_LINE_RE = re.compile(r"psql:<stdin>:(\d+):")


def _literal(value):
    if value is None:
        return "NULL"
    return "'" + str(value).replace("'", "''") + "'"


def read_history(client):
    """The history rows in rank order, or None when there is no history table."""
    out = client.psql(READ_HISTORY).strip()
    return json.loads(out) if out else None


def list_tables(client):
    """Names (schema.table) of every table outside the system schemas."""
    out = client.psql(LIST_TABLES).strip()
    return json.loads(out) if out else []


def substitute(text, substitutions):
    """The SQL text with each `from` replaced by its `to` (in the given order).

    Applied to what runs, never to what is checksummed: the history keeps the checksum of the
    file as shipped, so the vendor's files stay verifiable and an upgrade does not see them as
    changed.
    """
    if not substitutions:
        return text
    body = text.decode("utf-8") if isinstance(text, bytes) else text
    for old, new in substitutions.items():
        body = body.replace(old, new)
    return body


def check_substitutions(substitutions):
    """Refuse empty or non-text keys and values before anything runs."""
    for old, new in (substitutions or {}).items():
        if not isinstance(old, str) or not old:
            raise MigrationError("database_sql_substitutions: every key must be a non-empty string (got %r)" % (old,))
        if not isinstance(new, str):
            raise MigrationError("database_sql_substitutions: the value of %r must be a string" % old)


def check_baseline_settings(baseline_version="", sql_substitutions=None,
                            schema_version=None):
    """The database role's loop options, as the validate action checks them on the controller.

    Returns error messages naming the variable; an empty list when both are usable.
    """
    errors = []
    if not isinstance(baseline_version, str):
        errors.append("database_baseline_version must be a string: empty, or the version x.y.z "
                      "of a schema made by hand")
    elif baseline_version and not re.match(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$",
                                           baseline_version):
        errors.append("database_baseline_version must be empty or a version x.y.z (is %s)"
                      % baseline_version)
    elif baseline_version and isinstance(schema_version, str) and re.match(
            r"^[0-9]+\.[0-9]+\.[0-9]+$", schema_version) and tuple(
            int(p) for p in baseline_version.split(".")) > tuple(
            int(p) for p in schema_version.split(".")):
        errors.append("database_baseline_version %s is after database_schema_version %s: a "
                      "downgrade is not possible" % (baseline_version, schema_version))
    if sql_substitutions is None:
        sql_substitutions = {}
    if not isinstance(sql_substitutions, dict):
        errors.append("database_sql_substitutions must be a mapping of text in the SQL files to "
                      "its replacement")
        return errors
    try:
        check_substitutions(sql_substitutions)
    except MigrationError as exc:
        errors.append(str(exc))
    return errors


def baseline_script(version):
    """Create the history table and record `version` as a baseline (Flyway's BASELINE row)."""
    return "\n".join(
        ["\\set ON_ERROR_STOP on", "BEGIN;"]
        + HISTORY_DDL.strip().splitlines()
        + [
            "LOCK TABLE flyway_schema_history IN SHARE ROW EXCLUSIVE MODE;",
            "DO $smartid_guard$ BEGIN IF (SELECT count(*) FROM flyway_schema_history) <> 0 THEN "
            "RAISE EXCEPTION 'flyway_schema_history was filled during the baseline (another "
            "migration running?)'; END IF; END $smartid_guard$;",
            "INSERT INTO flyway_schema_history (installed_rank, version, description, type, script,"
            " checksum, installed_by, installed_on, execution_time, success) VALUES (1, %s, %s,"
            " 'BASELINE', %s, NULL, current_user, now(), 0, true);"
            % (_literal(version), _literal(BASELINE_DESCRIPTION), _literal(BASELINE_DESCRIPTION)),
            "COMMIT;",
            "",
        ]
    )


def installed_version(history):
    """Highest successfully applied version, or None (no history, or an empty one)."""
    versions = []
    for row in history or []:
        if row.get("success") and row.get("version"):
            versions.append(
                parse_version(row["version"], "version %r in flyway_schema_history (rank %s)"
                              % (row["version"], row.get("installed_rank")))
            )
    return format_version(max(versions)) if versions else None


def read_sql_files(sql_dir):
    """{script: bytes} for every entry of the directory (planner decides which count)."""
    if not os.path.isdir(sql_dir):
        raise MigrationError("SQL directory %s does not exist" % sql_dir)
    files = {}
    for name in sorted(os.listdir(sql_dir)):
        path = os.path.join(sql_dir, name)
        if os.path.isfile(path) and name.lower().endswith(".sql") and not name.startswith("."):
            with open(path, "rb") as handle:
                files[name] = handle.read()
    return files


def validate_history(history, files):
    """Refuse failed rows and applied files whose content changed; return warnings."""
    warnings = []
    checksums = {}
    for row in history or []:
        script = row.get("script")
        if not row.get("success"):
            raise MigrationError(
                "flyway_schema_history rank %s (%s) is marked failed: repair the database "
                "(restore a backup) before migrating" % (row.get("installed_rank"), script)
            )
        if row.get("type") != "SQL" or not script:
            continue
        if script not in files:
            warnings.append("applied migration %s is not among the SQL files" % script)
            continue
        if script not in checksums:
            checksums[script] = flyway_checksum(files[script])
        if row.get("checksum") is not None and int(row["checksum"]) != checksums[script]:
            raise MigrationError(
                "SQL file %s was changed after it was applied (checksum %s in "
                "flyway_schema_history, %s now): restore the original file; never edit an "
                "applied migration" % (script, row["checksum"], checksums[script])
            )
    return warnings


def apply_script(migration, text, checksum, previous_rank, create_history):
    """The psql script that applies one migration and records it, atomically.

    Returns (script, header_line_count) so that error line numbers can be mapped back.
    """
    header = [
        "\\set ON_ERROR_STOP on",
        "BEGIN;",
    ]
    if create_history:
        header += HISTORY_DDL.strip().splitlines()
    header += [
        # One migrator at a time: a second one waits here, then sees the rank moved and stops.
        "LOCK TABLE flyway_schema_history IN SHARE ROW EXCLUSIVE MODE;",
        "DO $smartid_guard$ BEGIN IF (SELECT coalesce(max(installed_rank), 0) FROM "
        "flyway_schema_history) <> %d THEN RAISE EXCEPTION 'flyway_schema_history changed "
        "during the migration run (another migration running?)'; END IF; END $smartid_guard$;"
        % previous_rank,
    ]
    footer = [
        "",
        ";",
        "INSERT INTO flyway_schema_history (installed_rank, version, description, type, script,"
        " checksum, installed_by, installed_on, execution_time, success) VALUES ("
        "%d, %s, %s, 'SQL', %s, %d, current_user, now(),"
        " (extract(epoch FROM clock_timestamp() - now()) * 1000)::int, true);"
        % (
            previous_rank + 1,
            _literal(migration.version_text),
            _literal(migration.flyway_description),
            _literal(migration.script),
            checksum,
        ),
        "COMMIT;",
        "",
    ]
    body = text.decode("utf-8") if isinstance(text, bytes) else text
    if body.startswith("\ufeff"):
        body = body[1:]
    return "\n".join(header) + "\n" + body + "\n".join(footer), len(header)


def _map_error(stderr, script_name, header_lines):
    def repl(match):
        line = int(match.group(1)) - header_lines
        return "%s:%d:" % (script_name, line) if line > 0 else "%s:" % script_name

    return _PSQL_LINE_RE.sub(repl, stderr).strip()


def migrate(client, sql_dir, target, check_mode=False, baseline=None, substitutions=None):
    """Plan and (unless check_mode) apply. Returns a result dict for the module.

    baseline: the version of a schema made by hand (tables but no history table): recorded as
    Flyway's BASELINE row without running anything; later files are applied on top. Ignored for
    an empty database (a new install) and once a history exists.
    substitutions: {from: to} text replacements in the SQL that runs (the vendor's guide has
    operators adapt the database user in its files); the checksums stay those of the files.
    """
    check_substitutions(substitutions)
    files = read_sql_files(sql_dir)
    parse_migrations(files)  # malformed names and duplicates fail before touching anything
    target_text = format_version(parse_version(target, "target version"))
    baseline_text = None
    if baseline:
        baseline_text = format_version(parse_version(baseline, "database_baseline_version"))
    history = read_history(client)
    warnings = validate_history(history, files)
    baselined = False
    if history is None:
        tables = list_tables(client)
        if baseline_text is None and tables:
            raise MigrationError(
                "the database holds tables (%s) but no flyway_schema_history: it was not set up "
                "by this bundle and is not new. If its schema was made by hand at a known version, "
                "set database_baseline_version to that version (x.y.z) to record it without running "
                "anything; otherwise point the bundle at an empty database"
                % ", ".join(tables[:5] + (["..."] if len(tables) > 5 else []))
            )
        if baseline_text is not None and not tables:
            # Flyway's rule too: an empty database is a new install, whatever the baseline says.
            warnings.append("database_baseline_version %s is ignored: the database is empty, so this "
                            "is a new install" % baseline_text)
        elif baseline_text is not None:
            if parse_version(baseline_text, "") > parse_version(target_text, ""):
                raise MigrationError(
                    "database_baseline_version %s is after the target schema version %s: "
                    "a downgrade is not possible" % (baseline_text, target_text)
                )
            baselined = True
    elif baseline_text is not None and not any(
        r.get("type") == "BASELINE" and r.get("version") == baseline_text for r in history
    ):
        warnings.append(
            "database_baseline_version %s is ignored: the database has a schema history already "
            "(installed %s)" % (baseline_text, installed_version(history))
        )
    before = baseline_text if baselined else installed_version(history)
    plan = plan_migrations(list(files), before, target)
    if substitutions:
        for old in substitutions:
            if not any(old in files[m.script].decode("utf-8", "replace") for m in plan):
                if plan:
                    warnings.append("database_sql_substitutions: %r occurs in none of %s"
                                    % (old, ", ".join(m.script for m in plan)))
    result = {
        "installed_version": before,
        "target_version": target_text,
        "mode": "install" if before is None else ("upgrade" if plan else "current"),
        "plan": [m.script for m in plan],
        "applied": [],
        "baseline": baseline_text if baselined else None,
        "warnings": warnings,
        "changed": bool(plan) or baselined,
        "schema_version": before,
    }
    if check_mode or not (plan or baselined):
        return result

    previous_rank = max([int(r["installed_rank"]) for r in history or []] or [0])
    create_history = history is None
    if baselined:
        try:
            client.psql(baseline_script(baseline_text), args=("-X", "-q", "-A", "-t", "-f", "-"))
        except Exception as exc:  # ClientError
            error = MigrationError("recording baseline %s failed: %s"
                                   % (baseline_text, getattr(exc, "stderr", "") or exc))
            result["changed"] = False
            error.result = result
            raise error
        previous_rank = 1
        create_history = False
    for migration in plan:
        text = files[migration.script]
        checksum = flyway_checksum(text)
        script, header_lines = apply_script(migration, substitute(text, substitutions), checksum,
                                            previous_rank, create_history)
        try:
            client.psql(script, args=("-X", "-q", "-A", "-t", "-f", "-"))
        except Exception as exc:  # ClientError; keep module_utils free of a circular import
            stderr = getattr(exc, "stderr", "") or str(exc)
            error = MigrationError(
                "applying %s failed and was rolled back (applied before it: %s): %s"
                % (
                    migration.script,
                    ", ".join(a["script"] for a in result["applied"]) or "none",
                    _map_error(stderr, migration.script, header_lines),
                )
            )
            result["changed"] = bool(result["applied"]) or baselined
            error.result = result
            raise error
        previous_rank += 1
        create_history = False
        result["applied"].append(
            {"script": migration.script, "version": migration.version_text, "checksum": checksum,
             "installed_rank": previous_rank}
        )
        result["schema_version"] = migration.version_text
    return result

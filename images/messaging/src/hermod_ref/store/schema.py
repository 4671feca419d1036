"""The schema version check: read flyway_schema_history, never migrate.

The bundle's migration tool owns the schema. The service only refuses to run against
a schema older than its release needs.
"""

from __future__ import annotations

from ..release import parse_version


class SchemaError(RuntimeError):
    pass


HISTORY_QUERY = """
    SELECT version FROM flyway_schema_history
    WHERE success AND version IS NOT NULL
"""


async def installed_version(conn) -> str | None:
    exists = await conn.fetchval("SELECT to_regclass('flyway_schema_history') IS NOT NULL")
    if not exists:
        return None
    versions = []
    for row in await conn.fetch(HISTORY_QUERY):
        try:
            versions.append((parse_version(row["version"]), row["version"]))
        except ValueError:
            continue  # Flyway allows other version formats; they are not ours
    return max(versions)[1] if versions else None


async def check(conn, required: str) -> str:
    """Return the installed version, or raise SchemaError saying what to do."""
    installed = await installed_version(conn)
    if installed is None:
        raise SchemaError(
            f"Database schema is not initialised (no successful version in flyway_schema_history); "
            f"release {required} needs schema {required}: run V{required}__base_version.sql with the migration tool")
    if parse_version(installed) < parse_version(required):
        raise SchemaError(
            f"Database schema version {installed} is older than {required}, which this release needs: "
            f"upgrade the database with the migration tool first (the service never migrates by itself)")
    return installed

# -*- coding: utf-8 -*-
"""Migration planning for the Smart ID database: which SQL files to run, in which order.

SQL files are named ``V<major>.<minor>.<patch>__<description>.sql``. A new install runs the
target version's ``V<target>__base_version.sql``; an upgrade runs every file that is *not* a
base_version file with ``installed < version <= target``, in numeric version order.

Also the Flyway-compatible checksum (CRC32 over the file's lines), so that the history table
written here is the one Flyway itself would write and validate.

Pure Python, no Ansible imports: used by the ``database_migrate`` module on the target host and
by the ``database_migration_plan`` filter on the controller.
"""

from __future__ import annotations

import re
import zlib

BASE_DESCRIPTION = "base_version"

_VERSION_RE = re.compile(r"^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)$")
_FILE_RE = re.compile(
    r"^V(?P<version>[0-9]+\.[0-9]+\.[0-9]+)__(?P<description>[A-Za-z0-9][A-Za-z0-9_.\-]*)\.sql$"
)
# Java's BufferedReader.readLine() ends a line at \n, \r or \r\n, and only there.
_LINE_END_RE = re.compile(r"\r\n|\r|\n")


class MigrationError(ValueError):
    """A migration set or request that cannot be planned; the message names the file or value."""


def parse_version(text, what="version"):
    """'3.10.0' -> (3, 10, 0). Strict x.y.z, no leading zeros, so one version has one spelling."""
    if not isinstance(text, str) or not _VERSION_RE.match(text.strip()):
        raise MigrationError(
            "%s %r is not a version of the form <major>.<minor>.<patch> (e.g. 3.10.0)" % (what, text)
        )
    return tuple(int(part) for part in text.strip().split("."))


def format_version(version):
    return ".".join(str(part) for part in version)


class Migration(object):
    """One SQL file: its version, description and whether it is a base_version file."""

    __slots__ = ("script", "version", "description")

    def __init__(self, script, version, description):
        self.script = script
        self.version = version
        self.description = description

    @property
    def is_base(self):
        return self.description == BASE_DESCRIPTION

    @property
    def version_text(self):
        return format_version(self.version)

    @property
    def flyway_description(self):
        """Flyway shows the description with underscores as spaces."""
        return self.description.replace("_", " ")

    def __repr__(self):
        return "Migration(%r)" % self.script

    def __eq__(self, other):
        return isinstance(other, Migration) and self.script == other.script

    def __hash__(self):
        return hash(self.script)


def _basename(name):
    return re.split(r"[\\/]", name)[-1]


def parse_migration(name):
    """Parse one file name (a path is reduced to its base name)."""
    script = _basename(name)
    match = _FILE_RE.match(script)
    if not match:
        raise MigrationError(
            "SQL file %r is malformed: expected V<major>.<minor>.<patch>__<description>.sql "
            "(description of letters, digits, '_', '-', '.')" % script
        )
    try:
        version = parse_version(match.group("version"), "version of SQL file %r:" % script)
    except MigrationError:
        raise MigrationError(
            "SQL file %r is malformed: version %r has a leading zero"
            % (script, match.group("version"))
        )
    return Migration(script, version, match.group("description"))


def parse_migrations(names):
    """Parse a set of file names for one engine; refuse malformed names and duplicate versions.

    Names that do not end in ``.sql`` (README, checksum lists) are ignored; dot files too.
    Two non-base files with the same version are refused (their order would be undefined),
    as are two files with the same name (e.g. given by two paths).
    """
    migrations = []
    seen_scripts = {}
    incremental_by_version = {}
    for name in names:
        script = _basename(str(name))
        if script.startswith(".") or not script.lower().endswith(".sql"):
            continue
        migration = parse_migration(script)
        if script in seen_scripts:
            raise MigrationError("SQL file %r is given twice" % script)
        seen_scripts[script] = migration
        if not migration.is_base:
            other = incremental_by_version.get(migration.version)
            if other is not None:
                first, second = sorted([other.script, migration.script])
                raise MigrationError(
                    "duplicate version %s: SQL files %r and %r; each version may have one "
                    "incremental file (plus its base_version file)"
                    % (migration.version_text, first, second)
                )
            incremental_by_version[migration.version] = migration
        migrations.append(migration)
    return migrations


def _sort_key(migration):
    return (migration.version, migration.is_base, migration.script)


def plan_migrations(names, installed, target):
    """The ordered list of Migration objects to run.

    names:     file names (or paths) of one engine's SQL files.
    installed: installed schema version ('1.0.0'), or None/'' for a new install.
    target:    target schema version.
    """
    migrations = parse_migrations(names)
    target_v = parse_version(target, "target version")
    if installed is None or (isinstance(installed, str) and installed.strip() == ""):
        bases = [m for m in migrations if m.is_base and m.version == target_v]
        if not bases:
            available = sorted(m.version for m in migrations if m.is_base)
            raise MigrationError(
                "new install of schema %s needs V%s__%s.sql, which is not among the SQL files "
                "(base versions available: %s)"
                % (
                    target,
                    format_version(target_v),
                    BASE_DESCRIPTION,
                    ", ".join(format_version(v) for v in available) or "none",
                )
            )
        return bases
    installed_v = parse_version(installed, "installed version")
    if installed_v > target_v:
        raise MigrationError(
            "refusing to downgrade the schema from %s to %s: restore a backup taken at %s instead"
            % (format_version(installed_v), format_version(target_v), format_version(target_v))
        )
    steps = [
        m for m in migrations if not m.is_base and installed_v < m.version <= target_v
    ]
    return sorted(steps, key=_sort_key)


def plan_scripts(names, installed, target):
    """plan_migrations() as plain file names."""
    return [m.script for m in plan_migrations(names, installed, target)]


def _to_int32(value):
    value &= 0xFFFFFFFF
    return value - 0x100000000 if value >= 0x80000000 else value


def flyway_checksum(data):
    """Flyway's checksum of a SQL file: CRC32 over its UTF-8 lines without line terminators.

    As Flyway's ChecksumCalculator: a leading BOM is dropped, lines end at \\n, \\r or \\r\\n,
    and the result is the CRC32 as a signed 32-bit integer. So the checksum does not change
    when only the line endings do.
    """
    if isinstance(data, bytes):
        text = data.decode("utf-8")
    else:
        text = data
    if text.startswith("\ufeff"):
        text = text[1:]
    lines = _LINE_END_RE.split(text)
    if lines and lines[-1] == "":
        # A final terminator ends the last line; it does not start another one.
        lines.pop()
    crc = 0
    for line in lines:
        crc = zlib.crc32(line.encode("utf-8"), crc)
    return _to_int32(crc)

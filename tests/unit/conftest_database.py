"""Helpers for the database tests, imported explicitly by the test modules that use them.

- `PostgresCluster`: a throwaway PostgreSQL cluster run as user postgres with the server
  binaries of the newest PostgreSQL installed (/usr/lib/postgresql/<version>/bin, or
  $DBTEST_PG_BIN), listening on 127.0.0.1 with scram-sha-256 auth.
- `require(condition, reason)`: skips a test whose prerequisite is missing, and fails it under CI
  (the CI variable set), where a missing prerequisite is a broken machine, not a choice.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _pg_bin():
    """The server binaries: $DBTEST_PG_BIN, else the newest installed version (by number, so 17
    comes after 9.6)."""
    if os.environ.get("DBTEST_PG_BIN"):
        return Path(os.environ["DBTEST_PG_BIN"])
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")

    def version(path):
        return tuple(int(part) for part in Path(path).parts[-3].split(".") if part.isdigit())

    return Path(max(found, key=version)).parent if found else None


PG_BIN = _pg_bin()
# PostgresCluster needs the server binaries, and runuser to run them as postgres.
HAVE_PG = PG_BIN is not None and (PG_BIN / "initdb").exists() and shutil.which("runuser") is not None
PG_MISSING = "needs PostgreSQL server binaries (/usr/lib/postgresql/<version>/bin; tools/bootstrap.sh test installs them) and runuser"


def require(condition, reason):
    """Skip when `condition` is false; under CI fail instead, so a missing prerequisite
    cannot turn a suite green by skipping it."""
    if condition:
        return
    if os.environ.get("CI"):
        pytest.fail("%s (a skip is a failure under CI)" % reason, pytrace=False)
    pytest.skip(reason)


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresCluster:
    """initdb + pg_ctl start in a temp dir; `stop()` removes everything it made."""

    user = "dbtest"
    password = "dbtest-S3cret-pw"
    database = "dbtest"

    def __init__(self, extra_opts=""):
        # More server settings (-c name=value ...), e.g. ssl=on with a test certificate.
        self.extra_opts = extra_opts
        self.workdir = Path(tempfile.mkdtemp(prefix="dbtest-pg-"))
        self.datadir = self.workdir / "data"
        self.port = _free_port()

    def _as_postgres(self, *argv, input_text=None):
        cmd = ["runuser", "-u", "postgres", "--"] + [str(a) for a in argv]
        return subprocess.run(
            cmd, input=input_text, capture_output=True, text=True, check=True, cwd="/"
        )

    def start(self):
        shutil.chown(self.workdir, user="postgres")
        os.chmod(self.workdir, 0o700)
        pwfile = self.workdir / "pwfile"
        pwfile.write_text(self.password + "\n")
        os.chmod(pwfile, 0o600)
        shutil.chown(pwfile, user="postgres")
        try:
            self._as_postgres(
                PG_BIN / "initdb", "-D", self.datadir, "-U", self.user, "--pwfile=%s" % pwfile,
                "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8",
                "--locale=C.UTF-8",
            )
        finally:
            pwfile.unlink()
        self._as_postgres(
            PG_BIN / "pg_ctl", "-D", self.datadir, "-w", "-l", self.workdir / "log",
            "-o", "-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s %s"
            % (self.port, self.workdir, self.extra_opts), "start",
        )
        self.psql("CREATE DATABASE %s" % self.database, database="postgres")
        return self

    def stop(self):
        try:
            self._as_postgres(PG_BIN / "pg_ctl", "-D", self.datadir, "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.workdir, ignore_errors=True)

    @property
    def env(self):
        return {"PGPASSWORD": self.password}

    def psql(self, sql, database=None):
        """Run SQL over TCP with the password; returns unaligned tuples-only output."""
        env = dict(os.environ, PGPASSWORD=self.password)
        out = subprocess.run(
            [str(PG_BIN / "psql"), "-X", "-At", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
             "-p", str(self.port), "-U", self.user, "-d", database or self.database, "-c", sql],
            capture_output=True, text=True, env=env, check=True,
        )
        return out.stdout.strip()

    def reset(self):
        self.psql("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")


def wait_for(predicate, timeout=60.0, interval=0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


# Fixture SQL: a small schema in the messaging service's style, three versions.
FIXTURE_SQL = {
    "V1.0.0__base_version.sql": (
        "-- schema 1.0.0, new install\n"
        "CREATE TABLE command (\n"
        "    id bigserial PRIMARY KEY,\n"
        "    client_id text NOT NULL,\n"
        "    body jsonb NOT NULL,\n"
        "    created timestamptz NOT NULL DEFAULT now()\n"
        ");\n"
    ),
    "V1.1.0__base_version.sql": (
        "-- schema 1.1.0, new install\r\n"
        "CREATE TABLE command (\r\n"
        "    id bigserial PRIMARY KEY,\r\n"
        "    client_id text NOT NULL,\r\n"
        "    body jsonb NOT NULL,\r\n"
        "    created timestamptz NOT NULL DEFAULT now(),\r\n"
        "    expires_at timestamptz\r\n"
        ");\r\n"
        "CREATE TABLE device (id text PRIMARY KEY, public_key text NOT NULL);\r\n"
    ),
    "V1.1.0__add_expiry_and_devices.sql": (
        "ALTER TABLE command ADD COLUMN expires_at timestamptz;\n"
        "CREATE TABLE device (id text PRIMARY KEY, public_key text NOT NULL);\n"
        "UPDATE command SET expires_at = created + interval '5 minutes';\n"
    ),
    "V1.2.0__index_commands_by_client.sql": (
        "CREATE INDEX command_client_idx ON command (client_id);\n"
        "-- no semicolon on the last statement: psql must still end it\n"
        "COMMENT ON TABLE command IS 'commands; it''s fine'"
    ),
    "V1.10.0__device_label.sql": "ALTER TABLE device ADD COLUMN label text;\n",
    "V1.9.0__device_seen.sql": "ALTER TABLE device ADD COLUMN last_seen timestamptz;\n",
}


def write_fixture_sql(directory, names=None, extra=None):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    files = dict(FIXTURE_SQL)
    if names is not None:
        files = {n: FIXTURE_SQL[n] for n in names}
    files.update(extra or {})
    for name, text in files.items():
        (directory / name).write_bytes(text.encode("utf-8"))
    return directory

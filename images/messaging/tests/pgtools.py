"""Test helpers: a throwaway PostgreSQL cluster, and applying a schema the way the
bundle's migration tool does (SQL file + flyway_schema_history row)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import zlib
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent.parent / "sql" / "postgresql"

HISTORY_DDL = """
CREATE TABLE IF NOT EXISTS flyway_schema_history (
    installed_rank integer NOT NULL PRIMARY KEY,
    version        varchar(50),
    description    varchar(200) NOT NULL,
    type           varchar(20)  NOT NULL,
    script         varchar(1000) NOT NULL,
    checksum       integer,
    installed_by   varchar(100) NOT NULL,
    installed_on   timestamp    NOT NULL DEFAULT now(),
    execution_time integer      NOT NULL,
    success        boolean      NOT NULL
)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pg_bin() -> str:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if not found:
        raise RuntimeError("no PostgreSQL server binaries in /usr/lib/postgresql/*/bin")
    return os.path.dirname(found[-1])


class Cluster:
    """initdb + pg_ctl in a temp dir on a free loopback port, run as user postgres when root."""

    def __init__(self, fsync: bool = False, extra_opts: str = ""):
        self.bin = _pg_bin()
        # More server settings (-c name=value ...), e.g. ssl=on with a test certificate.
        self.extra_opts = extra_opts
        self.port = free_port()
        self.tmp = tempfile.mkdtemp(prefix="hermod-pg-")
        self.data = os.path.join(self.tmp, "data")
        self.fsync = fsync
        self._as = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if os.geteuid() == 0:
            shutil.chown(self.tmp, "postgres", "postgres")

    def _run(self, *cmd, **kw):
        return subprocess.run([*self._as, *cmd], check=True, capture_output=True, text=True, **kw)

    def start(self) -> "Cluster":
        self._run(f"{self.bin}/initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--no-instructions")
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.tmp} "
                f"-c max_connections=300 -c shared_buffers=128MB -c fsync={'on' if self.fsync else 'off'} "
                f"-c synchronous_commit={'on' if self.fsync else 'off'} "
                f"-c full_page_writes={'on' if self.fsync else 'off'} {self.extra_opts}")
        self._opts = opts
        self.resume()
        return self

    def halt(self) -> None:
        """Shut the server down (fast: every session is terminated), keeping its data."""
        self._run(f"{self.bin}/pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        self._run(f"{self.bin}/pg_ctl", "-D", self.data, "-l", os.path.join(self.tmp, "log"), "-o", self._opts,
                  "-w", "-t", "60", "start")

    def dsn(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        try:
            self._run(f"{self.bin}/pg_ctl", "-D", self.data, "-m", "immediate", "-w", "stop")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.tmp, ignore_errors=True)


def create_database(admin_dsn: str, name: str) -> str:
    import psycopg

    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return admin_dsn.rsplit("/", 1)[0] + "/" + name


def apply(dsn: str, filename: str, version: str | None = None) -> None:
    """Run one SQL file and record it in flyway_schema_history, as the migration tool does."""
    import psycopg

    path = SQL_DIR / filename
    text = path.read_text()
    version = version or filename[1:].split("__", 1)[0]
    description = filename.split("__", 1)[1].rsplit(".", 1)[0].replace("_", " ")
    with psycopg.connect(dsn) as conn:
        start = time.monotonic()
        conn.execute(text)
        conn.execute(HISTORY_DDL)
        rank = conn.execute("SELECT coalesce(max(installed_rank), 0) + 1 FROM flyway_schema_history").fetchone()[0]
        checksum = zlib.crc32(text.encode()) - (1 << 32 if zlib.crc32(text.encode()) >= 1 << 31 else 0)
        conn.execute("INSERT INTO flyway_schema_history VALUES (%s, %s, %s, 'SQL', %s, %s, current_user, now(), %s, true)",
                     (rank, version, description, filename, checksum, int((time.monotonic() - start) * 1000)))

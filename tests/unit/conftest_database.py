"""Helpers for the database tests (imported explicitly; tests/conftest.py belongs to the lead).

- `load_database_module_utils()` makes `ansible.module_utils.database_*` importable from
  plugins/module_utils, as the module's AnsiballZ payload would.
- `PostgresCluster`: a throwaway PostgreSQL 15 cluster run as user postgres with the host's
  /usr/lib/postgresql/15/bin, listening on 127.0.0.1 with scram-sha-256 auth.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULE_UTILS = ROOT / "plugins" / "module_utils"
PG_BIN = Path(os.environ.get("DBTEST_PG_BIN", "/usr/lib/postgresql/15/bin"))


def load_database_module_utils():
    import ansible.module_utils as mu

    if str(MODULE_UTILS) not in list(mu.__path__):
        mu.__path__.append(str(MODULE_UTILS))


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresCluster:
    """initdb + pg_ctl start in a temp dir; `stop()` removes everything it made."""

    user = "dbtest"
    password = "dbtest-S3cret-pw"
    database = "dbtest"

    def __init__(self):
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
        self._as_postgres(
            PG_BIN / "initdb", "-D", self.datadir, "-U", self.user, "--pwfile=/dev/stdin",
            "--auth-local=trust", "--auth-host=scram-sha-256", "--encoding=UTF8",
            "--locale=C.UTF-8", input_text=self.password + "\n",
        )
        self._as_postgres(
            PG_BIN / "pg_ctl", "-D", self.datadir, "-w", "-l", self.workdir / "log",
            "-o", "-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s"
            % (self.port, self.workdir), "start",
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

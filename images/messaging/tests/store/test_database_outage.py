"""The service while its PostgreSQL is away: commands are answered 503 with Retry-After (not
stored, safe to send again), and accepted again once the database is back, with no restart."""

from __future__ import annotations

import time
import uuid

import pgtools
from helpers import make_home


def ping():
    return {"pingCommand": {"nonce": "nonce-0123456789", "userid": "alice", "responseformat": "jws"}}


def test_commands_get_503_while_the_database_is_down_and_202_after(receiver, services, tmp_path):
    cluster = pgtools.Cluster().start()
    try:
        dsn = pgtools.create_database(cluster.dsn(), f"hermod_t_{uuid.uuid4().hex[:10]}")
        pgtools.apply(dsn, "V1.1.0__base_version.sql")
        proc = services(make_home(tmp_path / "home", dsn, receiver.url))
        assert proc.command("ping", ping()).status_code == 202

        cluster.halt()
        down = proc.command("ping", ping())
        assert down.status_code == 503, down.text
        assert down.headers["Retry-After"] == "1"
        assert down.json()["message"] == "service temporarily unavailable"

        cluster.resume()
        deadline = time.monotonic() + 30
        while (status := proc.command("ping", ping()).status_code) != 202 and time.monotonic() < deadline:
            assert status == 503
            time.sleep(0.5)
        assert status == 202
        assert "Answering 503: a dependency is unavailable" in proc.log_path.read_text()
    finally:
        cluster.stop()

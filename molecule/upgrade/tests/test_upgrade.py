"""After converge: schema 1.1.0 reached by upgrade from 1.0.0, data kept, a pre-upgrade dump."""

from __future__ import annotations

import json

HOME = "/opt/dbtest-molecule-upgrade"
CONTAINER = "dbtest-mu-database"


def psql(host, sql):
    cmd = host.run("docker exec %s psql -X -At -U hermod -d hermod -c %s", CONTAINER, sql)
    assert cmd.rc == 0, cmd.stderr
    return cmd.stdout.strip()


def test_history_shows_base_install_then_incremental_upgrade(host):
    rows = psql(host, "SELECT installed_rank || ' ' || version || ' ' || script || ' ' || type || ' ' || success"
                      " FROM flyway_schema_history ORDER BY installed_rank").splitlines()
    assert rows == [
        "1 1.0.0 V1.0.0__base_version.sql SQL true",
        "2 1.1.0 V1.1.0__callback_attempts.sql SQL true",
    ]


def test_rows_written_at_1_0_0_survive_the_upgrade(host):
    assert psql(host, "SELECT count(*) FROM hermod_command WHERE client_id = 'idm'") == "25"
    assert psql(host, "SELECT to_regclass('hermod_callback_attempt') IS NOT NULL") == "t"


def test_a_dump_of_the_1_0_0_database_was_taken(host):
    dumps = host.run("ls %s/backups", HOME).stdout.split()
    pre = [d for d in dumps if d.startswith("database-hermod-") and d.endswith("-schema-1.0.0.dump")]
    assert len(pre) == 1
    dump = host.file("%s/backups/%s" % (HOME, pre[0]))
    assert dump.mode == 0o600 and dump.size > 1000
    # A custom-format dump starts with PGDMP.
    assert host.run("head -c 5 %s", dump.path).stdout == "PGDMP"


def test_container_healthy_on_the_network_with_alias(host):
    info = json.loads(host.check_output("docker inspect %s", CONTAINER))[0]
    assert info["State"]["Health"]["Status"] == "healthy"
    assert info["Config"]["User"] == "postgres"
    network = info["NetworkSettings"]["Networks"]["dbtest-molecule-upgrade"]
    assert "database" in network["Aliases"]
    assert not any(e.startswith("POSTGRES_PASSWORD=") for e in info["Config"]["Env"])


def test_password_file_is_private(host):
    secret = host.file("%s/docker/compose/database/secrets/database_password" % HOME)
    assert secret.mode == 0o640 and secret.user == "root"
    assert host.file("%s/docker/compose/database/docker-compose.yml" % HOME).exists


def test_network_peers_need_the_password(host):
    wrong = host.run("docker exec -e PGPASSWORD=wrong-password %s psql -X -w -h 127.0.0.1 -U hermod -d hermod"
                     " -c 'SELECT 1'", CONTAINER)
    assert wrong.rc != 0 and "password authentication failed" in wrong.stderr

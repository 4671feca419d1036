"""Callback delivery: retries, restart without loss, TLS against cacerts, several nodes,
upgrade 1.0.0 -> 1.1.0 with data written by 1.0.0."""

import ssl
import time

import psycopg
import pytest
import requests

from certs import key_pem, make_ca, make_leaf, pem
from helpers import ReceiverThread, make_home
import pgtools

BODY = {"pingCommand": {"nonce": "nonce-0123456789", "userid": "alice", "responseformat": "json"}}


def lifecycle(proc, answer=True):
    r = proc.command("ping", BODY)
    assert r.status_code == 202, r.text
    acc = r.json()
    assert requests.get(acc["deviceUrl"], timeout=5).status_code == 200
    if answer:
        r = requests.post(acc["deviceUrl"] + "/response", json={"nonce": "nonce-0123456789", "response": {"n": 1}},
                          timeout=5)
        assert r.status_code == 202, r.text
    return acc["messageId"]


def callback_states(dsn):
    with psycopg.connect(dsn) as conn:
        return dict(conn.execute("SELECT state, count(*) FROM hermod_callback GROUP BY state").fetchall())


def wait_states(dsn, expected, timeout=5):
    end = time.monotonic() + timeout
    while callback_states(dsn) != expected and time.monotonic() < end:
        time.sleep(0.05)
    return callback_states(dsn)


def test_retries_with_backoff_until_delivered(service, receiver):
    receiver.receiver.fail_remaining = 3
    mid = lifecycle(service)
    cbs = receiver.wait_for(lambda c: len(c) == 1, timeout=15)
    assert cbs[0]["body"]["messageId"] == mid and cbs[0]["attempt"] == "4"
    assert wait_states(service.dsn, {"delivered": 1}) == {"delivered": 1}
    with psycopg.connect(service.dsn) as conn:
        attempts = conn.execute("SELECT attempt, http_status, error FROM hermod_callback_attempt ORDER BY attempt").fetchall()
    assert attempts == [(1, 503, "HTTP 503"), (2, 503, "HTTP 503"), (3, 503, "HTTP 503"), (4, 204, None)]


def test_wrong_basic_auth_is_retried_then_given_up(database, services, tmp_path):
    strict = ReceiverThread(basic_auth="cbuser:another-password")
    try:
        dsn = database("V1.1.0__base_version.sql")
        home = make_home(tmp_path / "home", dsn, strict.url, extra={"hermod.callback.max-age": 1})
        proc = services(home)
        lifecycle(proc)
        end = time.monotonic() + 10
        while callback_states(dsn).get("failed") != 1 and time.monotonic() < end:
            time.sleep(0.1)
        assert callback_states(dsn) == {"failed": 1}
        assert strict.receiver.unauthorized >= 1 and strict.callbacks == []
        text = requests.get(f"{proc.url}/actuator/prometheus", timeout=5).text
        assert "hermod_callbacks_failed_total 1.0" in text and "hermod_callbacks_given_up 1" in text
    finally:
        strict.stop()


def test_restart_loses_nothing(database, services, tmp_path):
    port = pgtools.free_port()
    dsn = database("V1.1.0__base_version.sql")
    home = make_home(tmp_path / "home", dsn, f"http://127.0.0.1:{port}")
    proc = services(home)
    ids = {lifecycle(proc) for _ in range(20)}
    time.sleep(0.5)  # the receiver is down: every callback is failing and backing off
    proc.stop()
    assert callback_states(dsn) == {"pending": 20}
    receiver = ReceiverThread(basic_auth="cbuser:cb-secret-pw", port=port)
    try:
        services(home)
        cbs = receiver.wait_for(lambda c: len(c) >= 20, timeout=15)
        assert {c["body"]["messageId"] for c in cbs} == ids and receiver.receiver.duplicates == 0
    finally:
        receiver.stop()


@pytest.mark.parametrize("trusted", [True, False])
def test_https_callback_verified_against_cacerts(database, services, tmp_path, trusted):
    ca_key, ca = make_ca("Callback CA")
    leaf_key, leaf = make_leaf(ca_key, ca)
    (tmp_path / "leaf.pem").write_bytes(pem(leaf) + pem(ca))
    (tmp_path / "leaf.key").write_bytes(key_pem(leaf_key))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tmp_path / "leaf.pem", tmp_path / "leaf.key")
    receiver = ReceiverThread(basic_auth="cbuser:cb-secret-pw", ssl_context=ctx)
    try:
        dsn = database("V1.1.0__base_version.sql")
        home = make_home(tmp_path / "home", dsn, receiver.url,
                         extra={"hermod.callback.trust-system-cas": False})
        if trusted:
            (home / "cacerts" / "callback-ca.cer").write_bytes(pem(ca))
        proc = services(home)
        lifecycle(proc)
        if trusted:
            receiver.wait_for(lambda c: len(c) == 1)
        else:
            time.sleep(1.5)
            assert receiver.callbacks == []
            with psycopg.connect(dsn) as conn:
                errors = {r[0] for r in conn.execute("SELECT error FROM hermod_callback_attempt")}
            assert errors and all(e.startswith("TLS") for e in errors)
    finally:
        receiver.stop()


def test_two_nodes_one_database_deliver_each_callback_once(database, receiver, services, tmp_path):
    dsn = database("V1.1.0__base_version.sql")
    nodes = [services(make_home(tmp_path / f"home{i}", dsn, receiver.url, workers=2)) for i in range(2)]
    ids = set()
    for i in range(60):
        ids.add(lifecycle(nodes[i % 2]))
    cbs = receiver.wait_for(lambda c: len(c) >= 60, timeout=20)
    time.sleep(0.5)
    assert {c["body"]["messageId"] for c in receiver.callbacks} == ids
    assert receiver.receiver.duplicates == 0 and len(receiver.callbacks) == 60
    with psycopg.connect(dsn) as conn:
        nodes_used = conn.execute("SELECT count(DISTINCT node) FROM hermod_callback_attempt").fetchone()[0]
    assert nodes_used >= 2 and wait_states(dsn, {"delivered": 60}) == {"delivered": 60}


def test_claims_never_overlap(database):
    """The claim statement itself, from many connections at once (SKIP LOCKED + lease)."""
    import asyncio

    import asyncpg

    from hermod_ref.store import queries

    dsn = database("V1.1.0__base_version.sql")
    with psycopg.connect(dsn) as conn:
        conn.execute("""INSERT INTO hermod_command (id, client_id, client_group, command_type, reference, nonce,
                        userid, response_format, payload, timeout_seconds, expires_at, state)
                        SELECT gen_random_uuid(), 'idm', 'g', 'ping', md5(i::text), 'n', 'u', 'json', '{}', 1, now(),
                               'answered' FROM generate_series(1, 2000) i""")
        conn.execute("""INSERT INTO hermod_callback (id, command_id, client_id, callback_type, body)
                        SELECT gen_random_uuid(), id, 'idm', 'ping', '{}' FROM hermod_command""")

    async def claimer(name):
        conn = await asyncpg.connect(dsn)
        got = []
        while True:
            rows = await conn.fetch(queries.CLAIM, name, 60, 37)
            if not rows:
                break
            got += [r["id"] for r in rows]
        await conn.close()
        return got

    async def main():
        return await asyncio.gather(*(claimer(f"node{i}") for i in range(8)))

    results = asyncio.run(main())
    everything = [i for r in results for i in r]
    assert len(everything) == 2000 and len(set(everything)) == 2000
    assert sum(1 for r in results if r) >= 2


def test_upgrade_from_1_0_0_delivers_what_1_0_0_left(database, services, tmp_path):
    port = pgtools.free_port()
    dsn = database("V1.0.0__base_version.sql")
    home = make_home(tmp_path / "home", dsn, f"http://127.0.0.1:{port}")
    old = services(home, release="1.0.0")
    ids = {lifecycle(old) for _ in range(5)}
    open_cmd = old.command("ping", BODY).json()
    old.stop()
    pgtools.apply(dsn, "V1.1.0__callback_attempts.sql")
    receiver = ReceiverThread(basic_auth="cbuser:cb-secret-pw", port=port)
    try:
        new = services(home, release="1.1.0")
        receiver.wait_for(lambda c: len(c) >= 5, timeout=15)
        assert {c["body"]["messageId"] for c in receiver.callbacks} == ids
        # a command created by 1.0.0 is still served by 1.1.0
        assert requests.get(open_cmd["deviceUrl"], timeout=5).status_code == 200
        end = time.monotonic() + 5  # outcomes are recorded just after the receiver answered
        while callback_states(dsn) != {"delivered": 5} and time.monotonic() < end:
            time.sleep(0.05)
        assert callback_states(dsn) == {"delivered": 5}
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT count(*) FROM hermod_callback_attempt").fetchone()[0] >= 5
        assert new.proc.poll() is None
    finally:
        receiver.stop()


def test_base_1_1_0_equals_base_1_0_0_plus_upgrade(database):
    query = """SELECT table_name, column_name, data_type, is_nullable, column_default
                 FROM information_schema.columns WHERE table_schema = 'public' AND table_name LIKE 'hermod%'
                ORDER BY 1, 2"""
    index_query = "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1"
    fresh = database("V1.1.0__base_version.sql")
    upgraded = database("V1.0.0__base_version.sql", "V1.1.0__callback_attempts.sql")
    shapes = []
    for dsn in (fresh, upgraded):
        with psycopg.connect(dsn) as conn:
            shapes.append((conn.execute(query).fetchall(), conn.execute(index_query).fetchall()))
    assert shapes[0] == shapes[1]


def test_base_files_write_no_history(database):
    for f in ("V1.0.0__base_version.sql", "V1.1.0__base_version.sql", "V1.1.0__callback_attempts.sql"):
        text = (pgtools.SQL_DIR / f).read_text().lower()
        assert "flyway_schema_history" not in text.replace("-- the migration tool records the\n", "") or \
            "insert" not in text
    dsn = database()
    with psycopg.connect(dsn) as conn:
        conn.execute((pgtools.SQL_DIR / "V1.1.0__base_version.sql").read_text())
        assert conn.execute("SELECT to_regclass('flyway_schema_history')").fetchone()[0] is None


def test_lease_renewed_while_delivering_and_free_soon_after_the_holder_dies(database):
    """A delivery outlasting the lease keeps it (renewed by its holder); once the holder stops
    renewing (a killed process), another node claims the callback within one lease."""
    import asyncio
    import types

    import asyncpg

    from hermod_ref.delivery.dispatcher import Dispatcher
    from hermod_ref.store import queries as store

    dsn = database("V1.1.0__base_version.sql")
    with psycopg.connect(dsn) as conn:
        conn.execute("""INSERT INTO hermod_command (id, client_id, client_group, command_type, reference, nonce,
                        userid, response_format, payload, timeout_seconds, expires_at, state)
                        VALUES (gen_random_uuid(), 'idm', 'g', 'ping', 'ref-renew', 'n', 'u', 'json', '{}', 1, now(),
                                'answered')""")
        conn.execute("""INSERT INTO hermod_callback (id, command_id, client_id, callback_type, body)
                        SELECT gen_random_uuid(), id, 'idm', 'ping', '{}' FROM hermod_command""")
    lease = 3

    async def main():
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
        try:
            claimed = await pool.fetch(store.CLAIM, "node-a", lease, 10)
            assert len(claimed) == 1
            holder = types.SimpleNamespace(cfg=types.SimpleNamespace(callback_lease=lease), pool=pool,
                                           node="node-a", _held={claimed[0]["id"]})
            renewer = asyncio.create_task(Dispatcher._renew_loop(holder))
            await asyncio.sleep(2 * lease)  # twice the lease: without renewal node-b would get it
            assert await pool.fetch(store.CLAIM, "node-b", lease, 10) == []
            renewer.cancel()  # the holder dies: nothing renews any more
            t0 = time.monotonic()
            while not (taken := await pool.fetch(store.CLAIM, "node-b", lease, 10)):
                await asyncio.sleep(0.1)
            assert [r["id"] for r in taken] == [claimed[0]["id"]] and taken[0]["attempts"] == 2
            return time.monotonic() - t0
        finally:
            await pool.close()

    assert asyncio.run(main()) <= lease + 0.5

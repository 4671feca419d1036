"""Faults under load through Traefik, on the scenario's three replicas: (a) kill -9 of one
replica's process, (b) a rolling update to a new image tag, (c) a PostgreSQL restart.

The load is an open loop of complete lifecycles (provision command with X-Api-Key, device fetch,
signed answer), a new connection each, as separate clients and phones make them. Accounting:
every command the stack accepted (202) comes back as a callback, answered or expired; a command
called back more than once carries the same Idempotency-Key each time (delivery is
at-least-once, and the key is how a client drops the repeat). The rolling update fails no
request at all. The figures at a higher rate, with the command that reruns them, are in
bench/swarm.md (bench/swarm_lifecycle.py)."""
import asyncio
import base64
import collections
import os
import ssl
import time

from test_swarm import (  # noqa: F401 - callback_receiver is a fixture
    COMPOSE,
    IDM_KEY,
    MESSAGING,
    PREFIX,
    PUBLIC,
    RECEIVER,
    REPLICAS,
    callback_receiver,
    callback_receiver_records,
    docker,
    replicas,
)

DATABASE = PREFIX + "database_database"
RATE = 10            # lifecycles started per second
SETTLE = 4           # seconds of load after the fault has completed
# A command whose device fetch or answer was lost in the fault expires (lifespan for an unfetched
# command, timeout once fetched) and is called back then with status timeout.
LIFESPAN = 20
COMMAND_TIMEOUT = 10


def kill9():
    cid = next(iter(replicas().values()))
    os.kill(int(docker("inspect", "-f", "{{.State.Pid}}", cid).stdout.strip()), 9)


def rolling_update():
    image = docker("service", "inspect", MESSAGING, "--format",
                   "{{.Spec.TaskTemplate.ContainerSpec.Image}}").stdout.strip().partition("@")[0]
    new = image + "-roll"
    docker("tag", image, new)
    # start-first, one replica at a time, each monitored before the next (the stack's update_config).
    docker("service", "update", "--detach=false", "--image", new, MESSAGING)
    state = docker("service", "inspect", MESSAGING, "--format", "{{.UpdateStatus.State}}").stdout.strip()
    assert state == "completed", state
    return new


def pg_restart():
    # The swarm's own restart of the task: PostgreSQL shuts down cleanly, a new task starts on
    # the same node and volume.
    docker("service", "update", "--force", "--detach=false", DATABASE)


def run_under_load(fault, after=3.0):
    """Lifecycles at RATE/s from before the fault until SETTLE s after it; what each one got."""
    import aiohttp  # noqa: PLC0415
    from hermod_ref.tools.devicesim import Device  # noqa: PLC0415

    api_key = base64.b64encode(b"idm:" + IDM_KEY.encode()).decode()
    ctx = ssl.create_default_context(cafile=COMPOSE + "/traefik/ca/smartid-local-ca.crt")
    outcome = {"accepted": [], "failed": collections.Counter(), "fault_result": None}

    async def lifecycle(n):
        timeout = aiohttp.ClientTimeout(total=30)
        try:
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx, force_close=True),
                                             timeout=timeout) as session:
                body = {"commandHeader": {"lifespan": LIFESPAN, "timeout": COMMAND_TIMEOUT},
                        "provCommand": {"nonce": "fault-nonce-%05d" % n, "userid": "user%05d" % n,
                                        "responseformat": "jws",
                                        "profile": {"keys": [{"type": "EC", "curve": "P-256"}]}}}
                async with session.post(PUBLIC + "/command/provision", json=body,
                                        headers={"X-Api-Key": api_key}) as r:
                    if r.status != 202:
                        outcome["failed"]["command %d" % r.status] += 1
                        return
                    accepted = await r.json()
                outcome["accepted"].append(accepted["messageId"])
                status = await Device(session).handle(accepted["deviceUrl"])
                if status != 202:
                    outcome["failed"]["device %d" % status] += 1
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            outcome["failed"][type(exc).__name__] += 1

    async def main():
        loop = asyncio.get_running_loop()
        start = loop.time()
        fault_task = None
        settle_until = None
        tasks = []
        n = 0
        while settle_until is None or loop.time() < settle_until:
            if fault_task is None and loop.time() - start >= after:
                fault_task = asyncio.ensure_future(asyncio.to_thread(fault))
            if settle_until is None and fault_task is not None and fault_task.done():
                settle_until = loop.time() + SETTLE
            tasks.append(asyncio.ensure_future(lifecycle(n)))
            n += 1
            await asyncio.sleep(max(0.0, start + n / RATE - loop.time()))
        await asyncio.gather(*tasks)
        outcome["fault_result"] = fault_task.result()
        outcome["started"] = n

    asyncio.run(main())
    return outcome


def assert_every_accepted_command_called_back(accepted):
    deadline = time.monotonic() + LIFESPAN + 60
    while True:
        records = callback_receiver_records(RECEIVER)
        keys = collections.defaultdict(set)
        for record in records:
            keys[record["body"]["messageId"]].add(record["idempotencyKey"])
        missing = [m for m in accepted if m not in keys]
        if not missing or time.monotonic() > deadline:
            break
        time.sleep(2)
    assert not missing, "%d of %d accepted commands never called back: %s" % (len(missing), len(accepted),
                                                                             missing[:5])
    # At-least-once: a repeat carries the key of the first delivery.
    assert all(len(keys[m]) == 1 for m in accepted), {m: keys[m] for m in accepted if len(keys[m]) != 1}
    ours = set(accepted)
    return [r for r in records if r["body"]["messageId"] in ours]


def test_kill9_of_a_replica_loses_no_accepted_command(callback_receiver):
    outcome = run_under_load(kill9)
    assert len(outcome["accepted"]) > RATE * 3, outcome
    assert_every_accepted_command_called_back(outcome["accepted"])
    # The swarm replaces the killed task.
    deadline = time.monotonic() + 60
    while len(replicas()) < REPLICAS and time.monotonic() < deadline:
        time.sleep(2)
    assert len(replicas()) == REPLICAS


def test_rolling_update_to_a_new_tag_fails_no_request(callback_receiver):
    # The service stays on the new tag (the same image): the tests after this one use it, and the
    # scenario's cleanup removes the tag.
    outcome = run_under_load(rolling_update)
    new = outcome["fault_result"]
    assert not outcome["failed"], outcome["failed"]
    assert len(outcome["accepted"]) == outcome["started"]
    records = assert_every_accepted_command_called_back(outcome["accepted"])
    assert all(r["body"]["status"] == "answered" for r in records), collections.Counter(
        r["body"]["status"] for r in records)
    running = {docker("inspect", "-f", "{{.Config.Image}}", cid).stdout.strip() for cid in replicas().values()}
    assert running == {new}, running


def test_postgresql_restart_loses_no_accepted_command(callback_receiver):
    outcome = run_under_load(pg_restart)
    assert len(outcome["accepted"]) > RATE * 3, outcome
    # Refusals while the database is away are 503 (Retry-After), never 500.
    assert not [k for k in outcome["failed"] if k.endswith(" 500")], outcome["failed"]
    assert_every_accepted_command_called_back(outcome["accepted"])

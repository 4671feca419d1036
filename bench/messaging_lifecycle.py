#!/usr/bin/env python3
"""Benchmark: complete Smart ID Messaging lifecycles against the reference service.

command accepted -> device fetch -> signed response -> callback delivered and persisted.
Starts a throwaway PostgreSQL (or uses --dsn), the service as a real process (N workers),
and in this process: the client load, the device simulator and the callback receiver.
Bounded by --count and --duration; loopback only. Prints a JSON summary.

    .venv/bin/python bench/messaging_lifecycle.py --count 20000 --duration 60
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MSG = ROOT / "images" / "messaging"
sys.path[:0] = [str(MSG / "src"), str(MSG / "tests")]

import aiohttp  # noqa: E402
import psycopg  # noqa: E402
import uvloop  # noqa: E402
import yaml  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

import pgtools  # noqa: E402
from hermod_ref import apikey, jws  # noqa: E402
from hermod_ref.tools.callbackreceiver import Receiver, start as start_receiver  # noqa: E402

KEY = "5a" * 32
HEADERS = {"X-Api-Key": apikey.header_for("bench", KEY), "Content-Type": "application/json"}


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else None


def write_home(home: Path, dsn: str, port: int, cb_port: int, workers: int) -> None:
    for sub in ("config", "cacerts", "certificates"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    url, user = dsn.replace("postgresql://", "").split("@")[1], dsn.split("//")[1].split("@")[0]
    conf = {
        "server": {"port": port, "address": "127.0.0.1"},
        "spring": {"datasource": {"url": f"jdbc:postgresql://{url}", "username": user}},
        "public-url": f"http://127.0.0.1:{port}/ms",
        "hermod": {"workers": workers, "database": {"pool-size": 20}},
        "allowed-clients": [{"client-id": "bench", "key": KEY, "group": "bench",
                             "callback-url": f"http://127.0.0.1:{cb_port}", "callback-basic-auth": "cb:bench-pw"}],
    }
    (home / "config" / "hermod-conf.yml").write_text(yaml.safe_dump(conf))


async def run_load(base: str, count: int, duration: float, concurrency: int, users: int, fmt: str,
                   receiver: Receiver) -> dict:
    connector = aiohttp.TCPConnector(limit=concurrency * 2)
    async with aiohttp.ClientSession(connector=connector) as session:
        keys = {}

        async def lifecycle(kind: str, userid: str, nonce: str, latencies=None) -> str:
            body = {"commandHeader": {"lifespan": 120, "timeout": 60},
                    ("provCommand" if kind == "provision" else "signCommand"):
                        {"nonce": nonce, "userid": userid, "responseformat": fmt if kind != "provision" else "jws",
                         "data": "aGVsbG8gd29ybGQ="}}
            t0 = time.perf_counter()
            async with session.post(f"{base}/command/{kind}", data=json.dumps(body), headers=HEADERS) as r:
                accepted = await r.json()
                assert r.status == 202, accepted
            if latencies is not None:
                latencies.append(time.perf_counter() - t0)
            url = accepted["deviceUrl"]
            async with session.get(url) as r:
                command = await r.json()
            if kind == "provision":
                key = keys[userid] = ec.generate_private_key(ec.SECP256R1())
                response = jws.sign({"nonce": nonce}, key, {"jwk": jws.public_jwk(key.public_key())})
            elif fmt == "jws":
                response = jws.sign({"nonce": command["nonce"]}, keys[userid])
            else:
                response = {"nonce": command["nonce"], "result": "OK"}
            async with session.post(url + "/response", data=json.dumps({"nonce": nonce, "response": response}),
                                    headers={"Content-Type": "application/json"}) as r:
                await r.read()
                assert r.status == 202, (r.status, await r.text())
            return accepted["messageId"]

        # devices first (not measured)
        await asyncio.gather(*(lifecycle("provision", f"user{u}", f"prov-nonce-{u:08d}") for u in range(users)))
        while len(receiver.seen) < users:
            await asyncio.sleep(0.01)
        receiver_base = len(receiver.seen)

        latencies: list[float] = []
        sent: list[str] = []
        errors = 0
        next_i = 0
        deadline = time.monotonic() + duration
        t_start = time.monotonic()

        async def worker():
            nonlocal next_i, errors
            while next_i < count and time.monotonic() < deadline:
                i = next_i
                next_i += 1
                try:
                    sent.append(await lifecycle("sign", f"user{i % users}", f"nonce-{i:010d}", latencies))
                except Exception:  # counted, and the run goes on
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        t_sent = time.monotonic()
        # wait for the callbacks still in flight (bounded)
        wait_end = time.monotonic() + 30
        while len(receiver.seen) - receiver_base < len(sent) and time.monotonic() < wait_end:
            await asyncio.sleep(0.01)
        t_done = time.monotonic()
        got = {cb for cb in receiver.seen}
        return {"sent": len(sent), "errors": errors, "latencies": latencies,
                "callbacks": len(receiver.seen) - receiver_base, "duplicates": receiver.duplicates,
                "send_seconds": t_sent - t_start, "total_seconds": t_done - t_start, "_got": got}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=20000, help="lifecycles to run (upper bound)")
    p.add_argument("--duration", type=float, default=60, help="seconds of load (upper bound)")
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--workers", type=int, default=2, help="service worker processes (hermod.workers)")
    p.add_argument("--users", type=int, default=50, help="provisioned devices")
    p.add_argument("--format", choices=["jws", "json"], default="jws")
    p.add_argument("--fsync", action="store_true", help="durable PostgreSQL (fsync and synchronous_commit on)")
    p.add_argument("--dsn", help="admin DSN of an existing PostgreSQL instead of a throwaway cluster")
    args = p.parse_args(argv)

    cluster = None if args.dsn else pgtools.Cluster(fsync=args.fsync).start()
    admin = args.dsn or cluster.dsn()
    dsn = pgtools.create_database(admin, "hermod_bench")
    pgtools.apply(dsn, "V1.1.0__base_version.sql")
    port, cb_port = pgtools.free_port(), pgtools.free_port()
    tmp = Path(tempfile.mkdtemp(prefix="hermod-bench-"))
    write_home(tmp, dsn, port, cb_port, args.workers)
    log = open(tmp / "service.log", "w")
    env = dict(os.environ, PYTHONPATH=str(MSG / "src"))
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    service = subprocess.Popen([sys.executable, "-m", "hermod_ref", "--home", str(tmp)], stdout=log,
                               stderr=subprocess.STDOUT, env=env)
    try:
        async def go():
            receiver = Receiver("cb:bench-pw", keep=False)
            runner = await start_receiver(receiver, "127.0.0.1", cb_port)
            base = f"http://127.0.0.1:{port}"
            async with aiohttp.ClientSession() as s:
                for _ in range(200):
                    try:
                        async with s.get(f"{base}/actuator/health/readiness") as r:
                            if r.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.1)
            try:
                return await run_load(base, args.count, args.duration, args.concurrency, args.users,
                                      args.format, receiver)
            finally:
                await runner.cleanup()

        res = uvloop.run(go())
        with psycopg.connect(dsn) as conn:
            delivered = conn.execute("SELECT count(*) FROM hermod_callback WHERE state = 'delivered'").fetchone()[0]
            commands = conn.execute("SELECT count(*) FROM hermod_command").fetchone()[0]
        lat = res.pop("latencies")
        res.pop("_got")
        summary = {
            "lifecycles": res["sent"], "callbacks_received": res["callbacks"], "duplicates": res["duplicates"],
            "lost": res["sent"] - res["callbacks"], "errors": res["errors"],
            "delivered_in_db": delivered - args.users, "commands_in_db": commands - args.users,
            "lifecycles_per_s": round(res["callbacks"] / res["total_seconds"], 1),
            "accept_p50_ms": round(percentile(lat, 50) * 1000, 2) if lat else None,
            "accept_p99_ms": round(percentile(lat, 99) * 1000, 2) if lat else None,
            "seconds": round(res["total_seconds"], 2), "workers": args.workers, "concurrency": args.concurrency,
            "format": args.format, "fsync": args.fsync, "cpus": os.cpu_count(),
        }
        print(json.dumps(summary, indent=2))
        return 0 if summary["lost"] == 0 and summary["errors"] == 0 else 1
    finally:
        service.terminate()
        try:
            service.wait(20)
        except subprocess.TimeoutExpired:
            service.kill()
        log.close()
        if cluster:
            cluster.stop()


if __name__ == "__main__":
    sys.exit(main())

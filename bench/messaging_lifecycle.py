#!/usr/bin/env python3
"""Benchmark: complete Smart ID Messaging lifecycles against the reference service.

command accepted (POST /command/sign, X-Api-Key) -> device fetch (GET /ms/command/<ref>)
-> ES256-signed response (POST .../response) -> callback delivered (POST /callback/sign,
basic auth) and marked delivered in PostgreSQL.

Processes (all on 127.0.0.1):
  * a throwaway PostgreSQL 15 cluster (or --dsn), durable by default (fsync and
    synchronous_commit on; --no-fsync turns both off to measure CPU only),
  * the service as a real process (--workers),
  * --loadgens load generator processes: raw HTTP/1.1 over keep-alive connections, one
    per virtual client; each lifecycle is client + device in sequence. Device keys are
    provisioned and every signed JWS response is made before the clock starts,
  * one callback receiver process (raw HTTP/1.1): checks basic auth, parses every
    callback, records messageId and Idempotency-Key.

Bounded by --count and --duration; the run fails (exit 1) if a callback is lost,
duplicated, unexpected, or a lifecycle failed. Prints a JSON summary (lifecycles/s,
p50/p99 accept latency, CPU-seconds per lifecycle per process group, load average) and
writes it to bench/results/messaging_lifecycle-<time>.json; --record also appends a row
to bench/messaging_lifecycle.md.

    .venv/bin/python bench/messaging_lifecycle.py --count 20000 --duration 30 --record
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hmac
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MSG = ROOT / "images" / "messaging"
RESULTS = ROOT / "bench" / "results"
REPORT = ROOT / "bench" / "messaging_lifecycle.md"
sys.path[:0] = [str(MSG / "src"), str(MSG / "tests"), str(ROOT / "collections")]

# hermod_ref/rules.py is the collection's messaging_rules.py, copied in before the package loads.
from ansible_collections.smartid.hermod.plugins.module_utils.images_build import images_sync_shared  # noqa: E402

images_sync_shared(str(MSG))

import orjson  # noqa: E402
import psycopg  # noqa: E402
import uvloop  # noqa: E402
import yaml  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

import pgtools  # noqa: E402
from hermod_ref.api import apikey, jws  # noqa: E402

KEY = "5a" * 32
CB_AUTH = "cb:bench-pw"
TICK = os.sysconf("SC_CLK_TCK")

def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else None


# --------------------------------------------------------------------------- raw HTTP/1.1


class HttpError(Exception):
    pass


def _parse_head(buf: bytearray):
    """(status or method line, headers dict lower-case, header length) or None if incomplete."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buf[:end]).split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers, end + 4


def _take_message(buf: bytearray):
    """(first line, headers, body) of the first complete message in buf, removed from it; or None."""
    head = _parse_head(buf)
    if head is None:
        return None
    first, headers, hlen = head
    length = int(headers.get(b"content-length", b"0"))
    if len(buf) < hlen + length:
        return None
    body = bytes(buf[hlen:hlen + length])
    del buf[:hlen + length]
    return first, headers, body


class ClientConn(asyncio.Protocol):
    """One keep-alive connection, one request at a time (responses carry Content-Length)."""

    def __init__(self):
        self.buf = bytearray()
        self.waiter: asyncio.Future | None = None
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buf += data
        if self.waiter is None:
            return
        message = _take_message(self.buf)
        if message is None:
            return
        first, _, body = message
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((int(first.split(b" ", 2)[1]), body))

    def connection_lost(self, exc):
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(HttpError(f"connection lost: {exc}"))

    async def request(self, raw: bytes):
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await self.waiter


def post(path: str, host: str, body: bytes, extra: str = "") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def get(path: str, host: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


# --------------------------------------------------------------------------- load generator


def loadgen(index: int, nproc: int, port: int, count: int, duration: float, concurrency: int, users: int,
            ready, start_at, out) -> None:
    """One load-generator process: provision its devices, pre-sign, then run lifecycles."""
    host = f"127.0.0.1:{port}"
    api = f"X-Api-Key: {apikey.header_for('bench', KEY)}\r\n"
    my_users = [u for u in range(users) if u % nproc == index]
    keys = {u: ec.generate_private_key(ec.SECP256R1()) for u in my_users}

    async def connect():
        loop = asyncio.get_running_loop()
        return (await loop.create_connection(ClientConn, "127.0.0.1", port))[1]

    async def one(conn, kind, userid, nonce, response_for, latencies=None):
        key = "provCommand" if kind == "provision" else "signCommand"
        body = (f'{{"commandHeader":{{"lifespan":120,"timeout":60}},"{key}":{{"nonce":"{nonce}",'
                f'"userid":"{userid}","responseformat":"jws","data":"aGVsbG8gd29ybGQ="}}}}').encode()
        t0 = time.perf_counter()
        status, resp = await conn.request(post(f"/command/{kind}", host, body, api))
        if status != 202:
            raise HttpError(f"command {status} {resp[:200]!r}")
        if latencies is not None:
            latencies.append(time.perf_counter() - t0)
        accepted = orjson.loads(resp)
        path = "/ms/" + accepted["deviceUrl"].split("/ms/", 1)[1]
        status, resp = await conn.request(get(path, host))
        if status != 200 or orjson.loads(resp)["nonce"] != nonce:
            raise HttpError(f"fetch {status} {resp[:200]!r}")
        status, resp = await conn.request(post(path + "/response", host, response_for(nonce)))
        if status != 202:
            raise HttpError(f"response {status} {resp[:200]!r}")
        return accepted["messageId"]

    async def run():
        conns = [await connect() for _ in range(concurrency)]
        provisioned = []
        for n, u in enumerate(my_users):
            k = keys[u]
            jwk = {"jwk": jws.public_jwk(k.public_key())}
            provisioned.append(await one(conns[n % len(conns)], "provision", f"user{u}", f"prov-nonce-{u:08d}",
                                         lambda nonce, k=k, jwk=jwk: json.dumps(
                                             {"nonce": nonce, "response": jws.sign({"nonce": nonce}, k, jwk)}
                                         ).encode()))
        # Everything the device signs, signed now: the clock measures the service, not ES256.
        mine = count // nproc + (1 if index < count % nproc else 0)
        plan = []
        for i in range(mine):
            u = my_users[i % len(my_users)]
            nonce = f"n{index}-{i:010d}"
            body = json.dumps({"nonce": nonce, "response": jws.sign({"nonce": nonce}, keys[u])}).encode()
            plan.append((f"user{u}", nonce, body))
        ready.set()
        while time.time() < start_at.value:
            await asyncio.sleep(0.001)
        deadline = time.monotonic() + duration
        latencies, sent, errors = [], [], []
        next_i = 0
        presigned = {nonce: body for _, nonce, body in plan}

        async def client(conn):
            nonlocal next_i
            while next_i < len(plan) and time.monotonic() < deadline:
                userid, nonce, _ = plan[next_i]
                next_i += 1
                try:
                    sent.append(await one(conn, "sign", userid, nonce, presigned.__getitem__, latencies))
                except Exception as exc:  # counted; the run goes on with a fresh connection
                    errors.append(f"{type(exc).__name__}: {exc}"[:300])
                    conn.transport.close()
                    conn = await connect()

        await asyncio.gather(*(client(c) for c in conns))
        t_sent = time.time()
        for c in conns:
            c.transport.close()
        out.put({"index": index, "provisioned": provisioned, "sent": sent, "latencies": latencies,
                 "errors": errors, "t_sent": t_sent})

    uvloop.run(run())


# --------------------------------------------------------------------------- callback receiver


def receiver(port: int, basic_auth: str, ready) -> None:
    expected = b"Basic " + base64.b64encode(basic_auth.encode())
    seen: dict[str, float] = {}  # Idempotency-Key -> arrival (time.time())
    message_ids: dict[str, str] = {}  # Idempotency-Key -> messageId
    stats = {"duplicates": 0, "unauthorized": 0, "bad": 0, "not_answered": 0}

    class Server(asyncio.Protocol):
        def connection_made(self, transport):
            self.transport = transport
            self.buf = bytearray()

        def data_received(self, data):
            self.buf += data
            while (message := _take_message(self.buf)) is not None:
                self.transport.write(self.handle(*message))

        def handle(self, first, headers, body):
            method, path = first.split(b" ")[:2]
            if method == b"GET" and path == b"/stats":
                return self.reply(200, json.dumps({"unique": len(seen), **stats}).encode())
            if method == b"GET" and path == b"/dump":
                return self.reply(200, json.dumps({"seen": seen, "ids": message_ids}).encode())
            if not hmac.compare_digest(headers.get(b"authorization", b""), expected):
                stats["unauthorized"] += 1
                return self.reply(401, b"")
            try:
                doc = orjson.loads(body)
                mid = doc["messageId"]
            except (ValueError, KeyError, TypeError):
                stats["bad"] += 1
                return self.reply(400, b"")
            if doc.get("status") != "answered":
                stats["not_answered"] += 1
            key = headers.get(b"idempotency-key", b"").decode()
            if key in seen:
                stats["duplicates"] += 1
            else:
                seen[key] = time.time()
                message_ids[key] = mid
            return b"HTTP/1.1 204 No Content\r\n\r\n"

        @staticmethod
        def reply(status, body):
            return (f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}"
                    f"\r\n\r\n").encode() + body

    async def run():
        loop = asyncio.get_running_loop()
        await loop.create_server(Server, "127.0.0.1", port, backlog=1024)
        ready.set()
        await asyncio.Event().wait()

    uvloop.run(run())


# --------------------------------------------------------------------------- accounting


def cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime
    except (OSError, IndexError, ValueError):
        return 0.0


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def tree(pid: int) -> list[int]:
    out = [pid]
    for child in children(pid):
        out += tree(child)
    return out


def postmaster_pid(data_dir: str | None) -> int | None:
    if not data_dir:
        return None
    try:
        return int(Path(data_dir, "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


class CpuMeter:
    """CPU-seconds per process group between start() and stop() (per-pid deltas)."""

    def __init__(self, groups: dict[str, callable]):
        self.groups = groups  # name -> function returning the group's pids now

    def sample(self) -> dict[str, dict[int, float]]:
        return {name: {pid: cpu_seconds(pid) for pid in pids()} for name, pids in self.groups.items()}

    def start(self):
        self.before = self.sample()

    def stop(self) -> dict[str, float]:
        after = self.sample()
        return {name: round(sum(v - self.before[name].get(pid, 0.0) for pid, v in after[name].items()), 2)
                for name in after}


def loadavg() -> list[float]:
    return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]


def http_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as r:
        return json.loads(r.read())


# --------------------------------------------------------------------------- main


def write_home(home: Path, dsn: str, port: int, cb_port: int, workers: int, pool_size: int) -> None:
    for sub in ("config", "cacerts", "certificates"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    url, user = dsn.replace("postgresql://", "").split("@")[1], dsn.split("//")[1].split("@")[0]
    conf = {
        "server": {"port": port, "address": "127.0.0.1"},
        "spring": {"datasource": {"url": f"jdbc:postgresql://{url}", "username": user}},
        "public-url": f"http://127.0.0.1:{port}/ms",
        "hermod": {"workers": workers, "database": {"pool-size": pool_size}},
        "allowed-clients": [{"client-id": "bench", "key": KEY, "group": "bench",
                             "callback-url": f"http://127.0.0.1:{cb_port}", "callback-basic-auth": CB_AUTH}],
    }
    (home / "config" / "hermod-conf.yml").write_text(yaml.safe_dump(conf))


# What a lifecycle costs the database: transactions and rows from pg_stat_database, WAL from the
# write position (exact), storage from the tables' size with their indexes and TOAST. Backends publish their counters at most once a second and an idle one
# within 10 s, so the second reading waits for that before it is taken.
DB_WRITES_SQL = ("SELECT xact_commit, tup_inserted, tup_updated, tup_deleted,"
                 " pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint,"
                 " (SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c"
                 "  WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace)"
                 " FROM pg_stat_database WHERE datname = current_database()")
DB_WRITES_KEYS = ("commits", "rows_inserted", "rows_updated", "rows_deleted", "wal_bytes", "table_bytes")
STATS_FLUSH_SECONDS = 11


def db_counters(dsn: str) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return dict(zip(DB_WRITES_KEYS, conn.execute(DB_WRITES_SQL).fetchone()))


def db_writes_per_lifecycle(before: dict[str, int], after: dict[str, int], lifecycles: int) -> dict[str, float]:
    """Per complete lifecycle; the readings' own transactions (two) are left in, a rounding error."""
    return {k: round((after[k] - before[k]) / max(1, lifecycles), 2) for k in DB_WRITES_KEYS}


def record_row(summary: dict, note: str) -> None:
    """Append one row to the table at the end of bench/messaging_lifecycle.md."""
    s = summary
    ms = s["cpu_ms_per_lifecycle"]
    row = (f"| {s['started'][:16].replace('T', ' ')} | {note} | {s['workers']}w/{s['loadgens']}lg c={s['concurrency']}"
           f"{'' if s['fsync'] else ' **no-fsync**'} | {s['loadavg_start'][0]:.1f}→{s['loadavg_end'][0]:.1f} "
           f"| {s['lifecycles']} | {s['lost']} | {s['duplicates']} | **{s['lifecycles_per_s']}** "
           f"| {s['accept_p50_ms']} | {s['accept_p99_ms']} | {ms['service']} | {ms['loadgen']} "
           f"| {ms['receiver']} | {ms['postgres']} | {ms['total']} |\n")
    text = REPORT.read_text()
    if not text.endswith("\n"):
        text += "\n"
    REPORT.write_text(text + row)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=20000, help="lifecycles to run (upper bound)")
    p.add_argument("--duration", type=float, default=30, help="seconds of load (upper bound)")
    p.add_argument("--concurrency", type=int, default=64, help="lifecycles in flight (all load generators)")
    p.add_argument("--loadgens", type=int, default=2, help="load generator processes")
    p.add_argument("--workers", type=int, default=2, help="service worker processes (hermod.workers)")
    p.add_argument("--pool-size", type=int, default=10, help="hermod.database.pool-size per worker")
    p.add_argument("--users", type=int, default=50, help="provisioned devices")
    p.add_argument("--no-fsync", dest="fsync", action="store_false",
                   help="UNSAFE, CPU-only: throwaway cluster with fsync, synchronous_commit and full_page_writes "
                        "off. Default: durable (all three on; every accepted command and answer is on disk "
                        "before its 202, batched statements share one WAL flush)")
    p.add_argument("--dsn", help="admin DSN of an existing PostgreSQL instead of a throwaway cluster")
    p.add_argument("--service-src", default=str(MSG / "src"),
                   help="hermod_ref source tree to run (e.g. an older commit's, for before/after figures)")
    p.add_argument("--record", metavar="NOTE", nargs="?", const="",
                   help="append a row to bench/messaging_lifecycle.md")
    p.add_argument("--results", default=str(RESULTS), help="folder for the JSON result")
    args = p.parse_args(argv)
    if args.concurrency < args.loadgens:
        p.error("--concurrency must be at least --loadgens")

    cluster = None if args.dsn else pgtools.Cluster(fsync=args.fsync).start()
    admin = args.dsn or cluster.dsn()
    dsn = pgtools.create_database(admin, "hermod_bench")
    pgtools.apply(dsn, "V1.1.0__base_version.sql")
    port, cb_port = pgtools.free_port(), pgtools.free_port()
    tmp = Path(tempfile.mkdtemp(prefix="hermod-bench-"))
    write_home(tmp, dsn, port, cb_port, args.workers, args.pool_size)
    log = open(tmp / "service.log", "w")
    env = dict(os.environ, PYTHONPATH=args.service_src)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    service = subprocess.Popen([sys.executable, "-m", "hermod_ref", "--home", str(tmp)], stdout=log,
                               stderr=subprocess.STDOUT, env=env)
    ctx = mp.get_context("fork")
    procs = []
    ok = False
    try:
        for _ in range(300):
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/actuator/health/readiness", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if service.poll() is not None:
                raise SystemExit(f"service exited: {(tmp / 'service.log').read_text()[-2000:]}")
            time.sleep(0.1)
        rcv_ready = ctx.Event()
        rcv = ctx.Process(target=receiver, args=(cb_port, CB_AUTH, rcv_ready), daemon=True)
        rcv.start()
        procs.append(rcv)
        rcv_ready.wait(10)
        start_at = ctx.Value("d", 1e18)
        out = ctx.Queue()
        gens = []
        for k in range(args.loadgens):
            ready = ctx.Event()
            share = args.concurrency // args.loadgens + (1 if k < args.concurrency % args.loadgens else 0)
            g = ctx.Process(target=loadgen, args=(k, args.loadgens, port, args.count, args.duration, share,
                                                  args.users, ready, start_at, out), daemon=True)
            g.start()
            gens.append((g, ready))
            procs.append(g)
        for g, ready in gens:
            if not ready.wait(120):
                raise SystemExit("a load generator did not get ready")
        # provisioning callbacks first (not measured)
        end = time.monotonic() + 30
        while http_json(f"http://127.0.0.1:{cb_port}/stats")["unique"] < args.users and time.monotonic() < end:
            time.sleep(0.05)
        pg_pid = postmaster_pid(cluster.data if cluster else None)
        meter = CpuMeter({
            "service": lambda: tree(service.pid),
            "loadgen": lambda: [g.pid for g, _ in gens],
            "receiver": lambda: [rcv.pid],
            "postgres": lambda: tree(pg_pid) if pg_pid else [],
        })
        time.sleep(STATS_FLUSH_SECONDS)
        db_before = db_counters(dsn)
        load_start = loadavg()
        meter.start()
        t0 = time.time() + 0.2
        start_at.value = t0
        results = [out.get(timeout=args.duration + 120) for _ in gens]
        t_sent = max(r["t_sent"] for r in results)
        sent = [m for r in results for m in r["sent"]]
        provisioned = [m for r in results for m in r["provisioned"]]
        expected = len(provisioned) + len(sent)
        end = time.monotonic() + 30
        while time.monotonic() < end:
            st = http_json(f"http://127.0.0.1:{cb_port}/stats")
            if st["unique"] >= expected:
                break
            time.sleep(0.02)
        cpu = meter.stop()
        load_end = loadavg()
        time.sleep(STATS_FLUSH_SECONDS)
        db_after = db_counters(dsn)
        dump = http_json(f"http://127.0.0.1:{cb_port}/dump")
        st = http_json(f"http://127.0.0.1:{cb_port}/stats")
        arrived = {dump["ids"][k]: t for k, t in dump["seen"].items()}
        timed = set(sent)
        got = set(arrived)
        lost = len(timed - got)
        unexpected = len(got - timed - set(provisioned))
        last = max((arrived[m] for m in timed if m in arrived), default=t0)
        seconds = max(1e-9, last - t0)
        with psycopg.connect(dsn) as conn:
            delivered = conn.execute("SELECT count(*) FROM hermod_callback WHERE state = 'delivered'").fetchone()[0]
            commands = conn.execute("SELECT count(*) FROM hermod_command").fetchone()[0]
        latencies = [x for r in results for x in r["latencies"]]
        errors = [e for r in results for e in r["errors"]]
        done = len(timed & got)
        cpu["total"] = round(sum(cpu.values()), 2)
        summary = {
            "started": datetime.fromtimestamp(t0, timezone.utc).isoformat(timespec="seconds"),
            "lifecycles": len(sent), "callbacks_received": done, "lost": lost, "duplicates": st["duplicates"],
            "unexpected": unexpected, "unauthorized": st["unauthorized"], "not_answered": st["not_answered"],
            "errors": len(errors), "error_samples": errors[:5],
            "delivered_in_db": delivered - len(provisioned), "commands_in_db": commands - len(provisioned),
            "lifecycles_per_s": round(done / seconds, 1),
            "send_seconds": round(t_sent - t0, 2), "seconds": round(seconds, 2),
            "accept_p50_ms": round(percentile(latencies, 50) * 1000, 2) if latencies else None,
            "accept_p99_ms": round(percentile(latencies, 99) * 1000, 2) if latencies else None,
            "cpu_seconds": cpu,
            "cpu_ms_per_lifecycle": {k: round(v * 1000 / max(1, done), 3) for k, v in cpu.items()},
            "database_per_lifecycle": db_writes_per_lifecycle(db_before, db_after, len(sent)),
            "loadavg_start": load_start, "loadavg_end": load_end,
            "workers": args.workers, "pool_size": args.pool_size, "loadgens": args.loadgens,
            "concurrency": args.concurrency, "users": args.users, "fsync": args.fsync,
            "durability": "fsync+synchronous_commit on" if args.fsync else "OFF (fsync/synchronous_commit off, CPU-only)",
            "cpus": os.cpu_count(),
            "service_src": os.path.relpath(args.service_src, ROOT),
            "command": "bench/messaging_lifecycle.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        }
        ok = (lost == 0 and not errors and st["duplicates"] == 0 and unexpected == 0
              and summary["delivered_in_db"] == len(sent) and summary["commands_in_db"] == len(sent))
        summary["ok"] = ok
        print(json.dumps(summary, indent=2))
        Path(args.results).mkdir(parents=True, exist_ok=True)
        stamp = datetime.fromtimestamp(t0, timezone.utc).strftime("%Y%m%dT%H%M%SZ")
        (Path(args.results) / f"messaging_lifecycle-{stamp}.json").write_text(json.dumps(summary, indent=2) + "\n")
        if args.record is not None:
            record_row(summary, args.record)
        return 0 if ok else 1
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.terminate()
                proc.join(5)
        service.terminate()
        try:
            service.wait(20)
        except subprocess.TimeoutExpired:
            service.kill()
        log.close()
        if cluster:
            cluster.stop()
        if ok:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print(f"service home and log kept in {tmp}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())

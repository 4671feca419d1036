#!/usr/bin/env python3
"""Traefik benchmark: command throughput through Traefik vs direct, and certificate rotation
under load, in one run. Writes bench/results/traefik_rotation.json and bench/traefik_rotation.md.

  .venv/bin/python bench/traefik_rotation.py [--duration 15] [--concurrency 16] [--rotations 4]

It deploys its own Traefik test instance with the traefik role (names trtest-*, see
tests/tls/stack.py) in front of the backend stand-in (tests/tls/fixtures/standin_backend.py)
and removes it afterwards (--keep leaves it running). Phases:
  1. direct   POST <base>/command/ping straight to the backend container (HTTP keep-alive)
  2. traefik  the same through Traefik over HTTPS (keep-alive), to Traefik's container address
              (Traefik alone) and to the published port (what a client on the host sees:
              docker-proxy + Traefik)
  3. rotation keep-alive and fresh-handshake clients through the published port while
              playbooks/rotate_certs.yml rotates the certificate --rotations times, alternating an
              operator certificate (signed by the bundle CA) and a renewed generated one.
              Pass: zero failed requests, every new certificate seen by fresh handshakes,
              Traefik's container not restarted.
Exit status 1 when the rotation phase fails.

  .venv/bin/python bench/traefik_rotation.py --target stack [--duration 15] [--rounds 3]
      [--concurrency 8] [--loadgens 1] [--count 200000] [--rotations 2]

--target stack measures the stack deployed by `make deploy` (inventories/local) instead: POST
/command/ping with a valid X-Api-Key (answer 202) direct to the service (http://127.0.0.1:20400)
and through Traefik (https://localhost:443, TLS verified with the bundle CA), in interleaved
slices, then renews the generated certificate --rotations times with playbooks/rotate_certs.yml
under load through Traefik (zero failed requests required). Writes
bench/results/traefik_stack-<time>.json and the target-stack section of bench/traefik_rotation.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import multiprocessing as mp
import os
import platform
import socket
import ssl
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "tls"))
# The bundle's collection, imported as Ansible does (ansible_collections.smartid.hermod).
sys.path.insert(0, str(REPO / "collections"))

# pylint: disable=wrong-import-position
import stack  # noqa: E402
from cryptography import x509  # noqa: E402
from ansible_collections.smartid.hermod.plugins.module_utils.messaging_keys import (  # noqa: E402
    api_key_header,
    derive_client_key,
)
from loadgen import run_load  # noqa: E402

RESULTS = REPO / "bench" / "results" / "traefik_rotation.json"
REPORT = REPO / "bench" / "traefik_rotation.md"


async def rotation_phase(inst, args, workdir):
    ep = inst.endpoint
    url = f"https://{ep.hostname}:{ep.port}{ep.base_path}/command/ping"
    before_state = stack.container_state(inst.container)
    served = [stack.served_serial(ep)]
    timings = []
    stop = asyncio.Event()
    load = asyncio.create_task(run_load(url, duration=None, keepalive=args.concurrency // 2,
                                        fresh=args.concurrency // 2, ca_file=ep.ca_file, connect=ep.connect,
                                        stop_event=stop))
    await asyncio.sleep(2)
    for index in range(args.rotations):
        started = time.perf_counter()
        if index % 2 == 0:
            directory = workdir / f"op{index}"
            directory.mkdir()
            cert, key, _ = stack.issue(inst, directory, ep.hostname)
            await asyncio.to_thread(inst.rotate, traefik_tls_cert_file=cert, traefik_tls_key_file=key,
                                    traefik_tls_trust_file=str(inst.ca_cert))
        else:
            await asyncio.to_thread(inst.rotate, traefik_generated_cert_force_renew=True)
        timings.append(round(time.perf_counter() - started, 1))
        served.append(stack.served_serial(ep))
        await asyncio.sleep(1)
    await asyncio.sleep(1)
    stop.set()
    result = await load
    restarted = stack.container_state(inst.container) != before_state
    unseen = [s for s in served if s not in result.serials]
    return {
        "load": result.summary(),
        "duration_s": round(result.duration, 1),
        "rotations": args.rotations,
        "distinct_certificates_served": len(set(served)),
        "certificates_not_seen_by_fresh_handshakes": len(unseen),
        "playbook_seconds": timings,
        "traefik_restarted": restarted,
        "passed": result.failed == 0 and not restarted and not unseen and len(set(served)) == args.rotations + 1,
    }


async def throughput_phase(inst, args):
    backend_ip = stack.container_ip(stack.BACKEND, stack.NET)
    traefik_ip = stack.container_ip(inst.container, stack.NET)
    ep = inst.endpoint
    path = f"{ep.base_path}/command/ping"
    runs = {
        "direct": dict(url=f"http://{backend_ip}:20400{path}"),
        "traefik_container": dict(url=f"https://{ep.hostname}:8443{path}", ca_file=ep.ca_file, connect=traefik_ip),
        "traefik_published": dict(url=f"https://{ep.hostname}:{ep.port}{path}", ca_file=ep.ca_file,
                                  connect=ep.connect),
    }
    out = {}
    for name, kw in runs.items():
        await run_load(duration=2, keepalive=args.concurrency, **kw)  # warm-up
        out[name] = (await run_load(duration=args.duration, keepalive=args.concurrency, **kw)).summary()
    direct = out["direct"]["rps"] or float("nan")
    out["ratio_traefik_container_to_direct"] = round(out["traefik_container"]["rps"] / direct, 3)
    out["ratio_traefik_published_to_direct"] = round(out["traefik_published"]["rps"] / direct, 3)
    return out


def report(figures):
    t, r = figures["throughput"], figures["rotation"]
    row = "| {name} | {rps} | {p50_ms} | {p99_ms} | {ok} | {failed} |"
    lines = [
        "# Traefik: throughput and certificate rotation",
        "",
        "Produced by `bench/traefik_rotation.py` (rerun: `.venv/bin/python bench/traefik_rotation.py`);",
        "raw figures in `bench/results/traefik_rotation.json`.",
        "",
        f"- When: {figures['when']}; host: {figures['host']}, {os.cpu_count()} cores, load average at start "
        f"{figures['loadavg']}",
        f"- Backend: {figures['backend']}; client: Python asyncio (aiohttp keep-alive + raw fresh-handshake"
        " workers) on the same host.",
        f"- Load: {figures['args']['concurrency']} concurrent clients, {figures['args']['duration']} s per"
        " throughput run, closed loop, every response checked (status 200, TLS verified against the bundle CA).",
        "",
        "## Command throughput: through Traefik vs direct",
        "",
        "`POST /command/ping`, HTTP/1.1 keep-alive.",
        "",
        "| path | req/s | p50 ms | p99 ms | ok | failed |",
        "|---|---:|---:|---:|---:|---:|",
        row.format(name="direct to the backend (HTTP)", **t["direct"]),
        row.format(name="Traefik container address (HTTPS)", **t["traefik_container"]),
        row.format(name="Traefik published port (HTTPS, docker-proxy)", **t["traefik_published"]),
        "",
        f"**Ratio through Traefik / direct: {t['ratio_traefik_container_to_direct']}** (Traefik alone), "
        f"{t['ratio_traefik_published_to_direct']} (via the published port).",
        "",
        "## Certificate rotation under load",
        "",
        f"{r['rotations']} rotations with `playbooks/rotate_certs.yml` (alternating an operator certificate and a"
        f" renewed generated one) during {r['duration_s']} s of load through the published port: half the clients"
        " keep-alive, half a new TCP+TLS handshake per request.",
        "",
        "| requests ok | failed | certificates served | not seen by fresh handshakes | Traefik restarted |"
        " playbook s per rotation |",
        "|---:|---:|---:|---:|---|---|",
        f"| {r['load']['ok']} | {r['load']['failed']} | {r['distinct_certificates_served']} |"
        f" {r['certificates_not_seen_by_fresh_handshakes']} | {r['traefik_restarted']} |"
        f" {', '.join(map(str, r['playbook_seconds']))} |",
        "",
        f"Result: **{'PASS' if r['passed'] else 'FAIL'}** (zero failed requests, no restart, every new"
        " certificate served).",
        "",
        "## Reading the figures",
        "",
        "- All parts share 2 cores: the client, Traefik, the backend and ansible-playbook (during rotation).",
        "  The ratio is therefore a lower bound for Traefik's overhead on a host where the client is remote.",
        "- The backend here is the single-process stand-in (test fixture); point the bench at the reference",
        "  service to measure the real stack. A faster backend makes the ratio smaller, because Traefik's",
        "  fixed per-request cost (TLS record crypto, routing, access log) weighs more.",
        "- The published port goes through docker-proxy (userland proxy) for connections from the host itself;",
        "  clients from the network are DNATed by iptables and do not pay that cost.",
        "- Rotation: the certificate files get new content-hashed names, then tls.yml is replaced by rename;",
        "  Traefik's file provider reloads the TLS store, existing connections keep their session, new",
        "  handshakes get the new certificate. The playbook waits until the new certificate is served before",
        "  removing the old files.",
        "",
    ]
    previous = REPORT.read_text() if REPORT.exists() else ""
    text = "\n".join(lines)
    if STACK_BEGIN in previous and STACK_END in previous:  # keep the --target stack section
        text += "\n" + STACK_BEGIN + previous.split(STACK_BEGIN, 1)[1].split(STACK_END, 1)[0] + STACK_END + "\n"
    REPORT.write_text(text)


async def main_async(args):
    inst = stack.create_test_instance()
    try:
        figures = {
            "when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "host": f"{platform.system()} {platform.release()}",
            "loadavg": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "backend": "stand-in test fixture (Python ThreadingHTTPServer, tests/tls/fixtures/standin_backend.py)",
            "args": vars(args),
        }
        figures["throughput"] = await throughput_phase(inst, args)
        with tempfile.TemporaryDirectory(prefix="trtest-bench-") as workdir:
            figures["rotation"] = await rotation_phase(inst, args, Path(workdir))
    finally:
        if not args.keep:
            stack.destroy_test_instance(inst)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps(figures, indent=2) + "\n")
    report(figures)
    print(json.dumps({"throughput": figures["throughput"], "rotation": figures["rotation"]}, indent=2))
    return 0 if figures["rotation"]["passed"] else 1


# =========================================================================== --target stack
# The deployed stack (make deploy, inventories/local): no test instance, the real messaging
# service and its database. Raw HTTP/1.1 client (as bench/messaging_lifecycle.py), one
# request in flight per connection, every response checked for 202.

STACK_CA = Path("/opt/smartid/docker/compose/traefik/ca/smartid-local-ca.crt")
STACK_SECRET = REPO / "inventories" / "local" / ".secrets" / "messaging_client_key_secret"
STACK_TRAEFIK = "smartid-traefik"
STACK_CLIENTS = ("idm", "da")
STACK_RESULTS = REPO / "bench" / "results"
STACK_BEGIN, STACK_END = "<!-- target-stack:begin -->", "<!-- target-stack:end -->"
STACK_PATHS = {
    "direct": {"host": "127.0.0.1", "port": 20400, "tls": False, "host_header": "127.0.0.1:20400"},
    "traefik": {"host": "127.0.0.1", "port": 443, "tls": True, "host_header": "localhost"},
}


def _api_key_headers() -> list[str]:
    """X-Api-Key header values; the secret and the keys stay in memory only."""
    secret = STACK_SECRET.read_bytes().strip()
    # The keys the messaging role derives for the clients (messaging_client_key_secret).
    return [api_key_header(client, derive_client_key(secret, client)) for client in STACK_CLIENTS]


class _RawConn(asyncio.Protocol):
    """One keep-alive connection, one request at a time; responses must carry Content-Length."""

    def __init__(self):
        self.buf = bytearray()
        self.waiter = None
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        lines = bytes(self.buf[:end]).split(b"\r\n")
        length = None
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length is None:
            self._fail(ValueError("response without Content-Length"))
            return
        if len(self.buf) < end + 4 + length:
            return
        del self.buf[:end + 4 + length]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result(int(lines[0].split(b" ", 2)[1]))

    def _fail(self, exc):
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)
        self.transport.close()

    def connection_lost(self, exc):
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    async def request(self, raw: bytes) -> int:
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await asyncio.wait_for(self.waiter, 15)


def _ping(host_header: str, api_key: str, nonce: str, userid: str, close=False) -> bytes:
    body = (f'{{"commandHeader":{{"lifespan":60,"timeout":30}},"pingCommand":{{"nonce":"{nonce}",'
            f'"userid":"{userid}","responseformat":"jws"}}}}').encode()
    return (f"POST /command/ping HTTP/1.1\r\nHost: {host_header}\r\nX-Api-Key: {api_key}\r\n"
            f"Content-Type: application/json\r\n{'Connection: close' + chr(13) + chr(10) if close else ''}"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def _stack_loadgen(index, path, keepalive, fresh, duration, count, stop, out):
    """One load-generator process: `keepalive` connections and `fresh` handshake-per-request workers."""
    try:
        import uvloop  # noqa: PLC0415
        new_loop = uvloop.new_event_loop
    except ImportError:
        new_loop = asyncio.new_event_loop
    spec = STACK_PATHS[path]
    keys = _api_key_headers()
    ssl_ctx = ssl.create_default_context(cafile=str(STACK_CA)) if spec["tls"] else None
    sni = "localhost" if spec["tls"] else None
    res = {"ok": 0, "failed": 0, "errors": {}, "latencies": [], "serials": [], "duration": 0.0}
    seq = [0]
    tag = f"{os.getpid():x}{index}"

    def err(exc):
        res["failed"] += 1
        name = f"{type(exc).__name__}: {str(exc)[:80]}"
        res["errors"][name] = res["errors"].get(name, 0) + 1

    def more(deadline):
        return seq[0] < count and time.monotonic() < deadline and not stop.is_set()

    def next_request(worker, close=False):
        seq[0] += 1
        return _ping(spec["host_header"], keys[worker % len(keys)], f"bench-{tag}-{seq[0]:010d}",
                     f"bench-user-{worker % 32}", close)

    async def connect():
        loop = asyncio.get_running_loop()
        return (await asyncio.wait_for(loop.create_connection(
            _RawConn, spec["host"], spec["port"], ssl=ssl_ctx, server_hostname=sni), 15))[1]

    async def keepalive_worker(worker, deadline):
        conn = None
        while more(deadline):
            raw = next_request(worker)
            t0 = time.perf_counter()
            try:
                if conn is None or conn.transport.is_closing():
                    conn = await connect()
                status = await conn.request(raw)
            except (OSError, ssl.SSLError, ValueError, asyncio.TimeoutError, ConnectionError) as exc:
                err(exc)
                if conn is not None:
                    conn.transport.close()
                conn = None
                continue
            if status != 202:
                err(RuntimeError(f"HTTP {status}"))
                continue
            res["ok"] += 1
            res["latencies"].append(time.perf_counter() - t0)
        if conn is not None:
            conn.transport.close()

    async def fresh_worker(worker, deadline):
        serials = set()
        while more(deadline):
            raw = next_request(worker, close=True)
            t0 = time.perf_counter()
            writer = None
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(
                    spec["host"], spec["port"], ssl=ssl_ctx, server_hostname=sni), 15)
                tls = writer.get_extra_info("ssl_object")
                if tls is not None:
                    serials.add(x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number)
                writer.write(raw)
                response = await asyncio.wait_for(reader.read(), 15)
                status = int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else 0
            except (OSError, ssl.SSLError, ValueError, IndexError, asyncio.TimeoutError) as exc:
                err(exc)
                continue
            finally:
                if writer is not None:
                    writer.close()
            if status != 202:
                err(RuntimeError(f"HTTP {status}"))
                continue
            res["ok"] += 1
            res["latencies"].append(time.perf_counter() - t0)
        res["serials"] += [f"{s:x}" for s in serials]

    async def run():
        started = time.perf_counter()
        deadline = time.monotonic() + duration
        await asyncio.gather(*[keepalive_worker(w, deadline) for w in range(keepalive)],
                             *[fresh_worker(keepalive + w, deadline) for w in range(fresh)])
        res["duration"] = time.perf_counter() - started

    loop = new_loop()
    try:
        loop.run_until_complete(run())
    finally:
        loop.close()
    out.put(res)


def _merge(parts) -> dict:
    lat = sorted(x for p in parts for x in p["latencies"])
    errors = {}
    for p in parts:
        for k, v in p["errors"].items():
            errors[k] = errors.get(k, 0) + v
    ok = sum(p["ok"] for p in parts)
    duration = max((p["duration"] for p in parts), default=0.0)

    def pct(q):
        return round(lat[min(len(lat) - 1, int(len(lat) * q / 100))] * 1000, 2) if lat else None

    return {"ok": ok, "failed": sum(p["failed"] for p in parts), "seconds": round(duration, 2),
            "rps": round(ok / duration, 1) if duration else 0.0, "p50_ms": pct(50), "p99_ms": pct(99),
            "errors": dict(sorted(errors.items(), key=lambda kv: -kv[1])[:5]),
            "serials": sorted({s for p in parts for s in p["serials"]}), "_latencies": lat}


class _StackLoad:
    """--loadgens processes against one path; run() blocks, start()/finish() for the rotation phase."""

    def __init__(self, path, args, keepalive, fresh=0, duration=None, count=None):
        self.ctx = mp.get_context("fork")
        self.stop = self.ctx.Event()
        self.out = self.ctx.Queue()
        n = args.loadgens
        self.procs = [self.ctx.Process(
            target=_stack_loadgen, daemon=True,
            args=(i, path, keepalive // n + (i < keepalive % n), fresh // n + (i < fresh % n),
                  duration if duration is not None else 1e9, (count or 10 ** 12) // n + 1, self.stop, self.out))
            for i in range(n)]

    def start(self):
        for p in self.procs:
            p.start()
        return self

    def finish(self, timeout=120):
        self.stop.set()
        return self.collect(timeout)

    def collect(self, timeout):
        parts = [self.out.get(timeout=timeout) for _ in self.procs]
        for p in self.procs:
            p.join(5)
        return _merge(parts)

    def run(self, duration):
        self.start()
        return self.collect(duration + 60)


def _loadavg():
    return [round(x, 2) for x in os.getloadavg()]


def _other_containers():
    names = stack.docker("ps", "--format", "{{.Names}}").stdout.split()
    return sorted(n for n in names if not n.startswith("smartid-"))


def _served_serial():
    ctx = ssl.create_default_context(cafile=str(STACK_CA))
    with socket.create_connection(("127.0.0.1", 443), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            return f"{x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number:x}"


def stack_throughput(args) -> dict:
    """Interleaved slices direct/traefik (order alternating) so drift in the host's load hits both."""
    for path in STACK_PATHS:  # warm-up: connections, JIT-less but caches, DB pool
        _StackLoad(path, args, args.concurrency, duration=2).run(2)
    slices = {path: [] for path in STACK_PATHS}
    per_slice = args.duration / args.rounds
    count = args.count // args.rounds if args.count else None
    for r in range(args.rounds):
        for path in (("direct", "traefik") if r % 2 == 0 else ("traefik", "direct")):
            slices[path].append(_StackLoad(path, args, args.concurrency, duration=per_slice, count=count).run(per_slice))
    out = {}
    for path, parts in slices.items():
        lat = sorted(x for p in parts for x in p.pop("_latencies"))
        ok, secs = sum(p["ok"] for p in parts), sum(p["seconds"] for p in parts)

        def pct(q, lat=lat):
            return round(lat[min(len(lat) - 1, int(len(lat) * q / 100))] * 1000, 2) if lat else None

        errors = {}
        for p in parts:
            for k, v in p["errors"].items():
                errors[k] = errors.get(k, 0) + v
        out[path] = {"ok": ok, "failed": sum(p["failed"] for p in parts), "seconds": round(secs, 2),
                     "rps": round(ok / secs, 1) if secs else 0.0, "p50_ms": pct(50), "p99_ms": pct(99),
                     "errors": errors, "slice_rps": [p["rps"] for p in parts]}
    out["ratio_traefik_to_direct"] = round(out["traefik"]["rps"] / out["direct"]["rps"], 3) \
        if out["direct"]["rps"] else None
    return out


def stack_rotation(args) -> dict:
    """Load through Traefik (keep-alive + fresh handshakes) while rotate_certs.yml renews the certificate."""
    before = stack.container_state(STACK_TRAEFIK)
    served = [_served_serial()]
    fresh = max(1, args.concurrency // 2)
    load = _StackLoad("traefik", args, args.concurrency - fresh, fresh=fresh).start()
    time.sleep(2)
    timings, failures = [], []
    env = dict(stack.ansible_env(), ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    playbook = Path(sys.executable).with_name("ansible-playbook")
    try:
        for _ in range(args.rotations):
            t0 = time.perf_counter()
            proc = stack.run(playbook, "-i", REPO / "inventories" / "local", "-e",
                             "traefik_generated_cert_force_renew=true", REPO / "playbooks" / "rotate_certs.yml",
                             check=False, env=env)
            timings.append(round(time.perf_counter() - t0, 1))
            if proc.returncode != 0:
                failures.append(proc.stdout[-1500:])
                break
            served.append(_served_serial())
            time.sleep(1)
        time.sleep(1)
    finally:
        result = load.finish()
    result.pop("_latencies")
    restarted = stack.container_state(STACK_TRAEFIK) != before
    unseen = [s for s in served if s not in result["serials"]]
    return {
        "load": {k: v for k, v in result.items() if k != "serials"},
        "clients": {"keepalive": args.concurrency - fresh, "fresh_handshake": fresh},
        "rotations": args.rotations,
        "playbook": "playbooks/rotate_certs.yml -e traefik_generated_cert_force_renew=true (inventories/local)",
        "playbook_failures": failures,
        "served_serials": served,
        "distinct_certificates_served": len(set(served)),
        "certificates_not_seen_by_fresh_handshakes": len(unseen),
        "certificates_seen_by_fresh_handshakes": len(result["serials"]),
        "playbook_seconds": timings,
        "traefik_restarted": restarted,
        "passed": (result["failed"] == 0 and not failures and not restarted and not unseen
                   and len(set(served)) == args.rotations + 1),
    }


def stack_report():
    """The target-stack section of bench/traefik_rotation.md, one row per bench/results/traefik_stack-*.json."""
    runs = [json.loads(p.read_text()) for p in sorted(STACK_RESULTS.glob("traefik_stack-*.json"))]
    lines = [
        STACK_BEGIN,
        "## Deployed stack (`--target stack`): the real messaging service",
        "",
        "Rerun: `.venv/bin/python bench/traefik_rotation.py --target stack` (stack deployed by `make deploy`;",
        "options `--duration --rounds --concurrency --loadgens --count --rotations`). One JSON per run:",
        "`bench/results/traefik_stack-<time>.json`; this section is rebuilt from them.",
        "",
        "- `POST /command/ping` (valid X-Api-Key, clients idm and da alternating, unique nonce per request),",
        "  every response must be 202. Raw HTTP/1.1 keep-alive client (uvloop), one request in flight per",
        "  connection, in `--loadgens` processes on the same host.",
        "- direct: `http://127.0.0.1:20400` (service's published port); Traefik: `https://localhost:443`",
        "  (TLS verified against `smartid-local-ca.crt`; docker-proxy + Traefik + the service).",
        "- The `--duration` per path is cut into `--rounds` slices taken alternately (direct, Traefik,",
        "  Traefik, direct, ...) so that a change in the host's load hits both paths alike.",
        "- Rotation: while half the clients use keep-alive and half a new TCP+TLS handshake per request",
        "  through Traefik, `playbooks/rotate_certs.yml -e traefik_generated_cert_force_renew=true` renews",
        "  the generated certificate `--rotations` times. Pass: zero non-202 / failed requests, every",
        "  new certificate seen by fresh handshakes, `smartid-traefik` not restarted.",
        "",
        "| run (UTC) | load avg start→end | other containers | c / loadgens | direct req/s (p50/p99 ms) |"
        " Traefik req/s (p50/p99 ms) | **ratio** | per-slice ratios | failed d/T | rotation: req ok / failed / certs / playbook s"
        " | result |",
        "|---|---|---:|---|---:|---:|---:|---|---|---|---|",
    ]
    for f in runs:
        t, r = f["throughput"], f.get("rotation")
        rot = "skipped" if not r else (
            f"{r['load']['ok']} / {r['load']['failed']} / {r['distinct_certificates_served']} /"
            f" {', '.join(map(str, r['playbook_seconds']))}")
        verdict = "—" if not r else ("**PASS**" if r["passed"] else "**FAIL**")
        lines.append(
            f"| {f['when']} | {' '.join(map(str, f['loadavg_start']))} → {' '.join(map(str, f['loadavg_end']))}"
            f" | {len(f['other_containers'])} | {f['args']['concurrency']} / {f['args']['loadgens']}"
            f" | {t['direct']['rps']} ({t['direct']['p50_ms']}/{t['direct']['p99_ms']})"
            f" | {t['traefik']['rps']} ({t['traefik']['p50_ms']}/{t['traefik']['p99_ms']})"
            f" | **{t['ratio_traefik_to_direct']}** | {_round_ratios(t)} | {t['direct']['failed']}/{t['traefik']['failed']}"
            f" | {rot}"
            f" | {verdict} |")
    lines += [
        "",
        "Reading: client, docker-proxy, Traefik, the service and PostgreSQL share the 2 cores, and other",
        "containers (another CI run: `other containers`) may be using them too; compare the ratio of one",
        "run, not absolute rates across runs. The direct path also goes through docker-proxy (published",
        "port 127.0.0.1:20400), so the ratio isolates Traefik + TLS. The per-slice ratios (adjacent",
        "direct/Traefik slices) show how far the host's load moved during a run: when they scatter, the",
        "run's ratio is not a property of Traefik. Playbook seconds include ansible-playbook competing",
        "for the same cores; the rotation load is half fresh TCP+TLS handshakes, hence its lower rate.",
        STACK_END,
        "",
    ]
    return "\n".join(lines)


def _round_ratios(t) -> str:
    """Traefik/direct of each pair of adjacent slices: shows how much the host's load moved."""
    pairs = zip(t["direct"]["slice_rps"], t["traefik"]["slice_rps"])
    return ", ".join(f"{tr / d:.2f}" if d else "-" for d, tr in pairs)


def write_stack_section():
    text = REPORT.read_text() if REPORT.exists() else ""
    block = stack_report()
    if STACK_BEGIN in text and STACK_END in text:
        head, rest = text.split(STACK_BEGIN, 1)
        tail = rest.split(STACK_END, 1)[1].lstrip("\n")
        text = head + block + tail
    else:
        text = text.rstrip("\n") + "\n\n" + block
    REPORT.write_text(text)


def main_stack(args) -> int:
    if not STACK_CA.exists() or not STACK_SECRET.exists():
        raise SystemExit("the deployed stack (make deploy, inventories/local) is not here")
    figures = {
        "when": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "host": f"{platform.system()} {platform.release()}, {os.cpu_count()} cores",
        "loadavg_start": _loadavg(),
        "other_containers": _other_containers(),
        "target": "stack: smartid-messaging (reference service) direct 127.0.0.1:20400 vs Traefik localhost:443",
        "args": vars(args),
        "command": ".venv/bin/python bench/traefik_rotation.py " + " ".join(sys.argv[1:]),
    }
    figures["throughput"] = stack_throughput(args)
    figures["rotation"] = stack_rotation(args) if args.rotations else None
    figures["loadavg_end"] = _loadavg()
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    STACK_RESULTS.mkdir(exist_ok=True)
    (STACK_RESULTS / f"traefik_stack-{stamp}.json").write_text(json.dumps(figures, indent=2) + "\n")
    write_stack_section()
    print(json.dumps(figures, indent=2))
    return 0 if (figures["rotation"] is None or figures["rotation"]["passed"]) else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", choices=("standin", "stack"), default="standin",
                        help="standin: own trtest- Traefik + stand-in backend (default); stack: the deployed"
                             " stack (make deploy), real messaging service, direct :20400 vs Traefik :443")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per throughput run (per path)")
    parser.add_argument("--concurrency", type=int, help="concurrent clients (default 16; stack: 8)")
    parser.add_argument("--rotations", type=int, help="certificate rotations under load (default 4; stack: 2;"
                                                      " 0 skips the rotation phase)")
    parser.add_argument("--keep", action="store_true", help="leave the test instance running (standin)")
    parser.add_argument("--rounds", type=int, default=3, help="stack: interleaved slices per path")
    parser.add_argument("--loadgens", type=int, default=1, help="stack: load-generator processes")
    parser.add_argument("--count", type=int, default=200000, help="stack: at most this many requests per path")
    args = parser.parse_args()
    if args.target == "stack":
        args.concurrency = args.concurrency or 8
        args.rotations = 2 if args.rotations is None else args.rotations
        return main_stack(args)
    args.concurrency = args.concurrency or 16
    args.rotations = 4 if args.rotations is None else args.rotations
    return asyncio.run(main_async(args))


if __name__ == "__main__":
    sys.exit(main())

#!/usr/bin/env python3
"""Traefik benchmark: command throughput through Traefik vs direct, and certificate rotation
under load, in one run. Writes bench/results/traefik_rotation.json and bench/traefik_rotation.md.

  .venv/bin/python bench/traefik_rotation.py [--duration 15] [--concurrency 16] [--rotations 4]

It deploys its own Traefik test instance with roles/traefik (names trtest-*, see
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
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "tls"))

# pylint: disable=wrong-import-position
import stack  # noqa: E402
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
    REPORT.write_text("\n".join(lines))


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


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per throughput run")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent clients")
    parser.add_argument("--rotations", type=int, default=4, help="certificate rotations under load")
    parser.add_argument("--keep", action="store_true", help="leave the test instance running")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())

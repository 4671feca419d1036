#!/usr/bin/env python3
"""Benchmark: CPU per request of the reference service's HTTP/1.1 server, two source trees in one run.

The server (`hermod_ref.http.server`) runs alone in its own process on uvloop, one worker, with
the routes of a trivial handler: `GET /ping` (a small JSON answer) and `POST /echo` (reads a
200-byte JSON body, answers it). Load generators (raw HTTP/1.1 over keep-alive connections,
one request in flight per connection, no client framework) send a 50/50 mix for --duration
seconds; the server process's CPU-seconds (utime + stime from /proc over the timed window)
divided by the requests answered is the figure. Trees alternate round by round (A, B, A, B,
...) so that a change of load on the machine hits both; the median of the rounds is reported.

    .venv/bin/python bench/http_server.py --baseline-src /tmp/before/images/messaging/src --rounds 5 --record "note"

Writes bench/results/http_server-<UTC time>.json; --record appends a row to bench/http_server.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "images" / "messaging" / "src"
RESULTS = ROOT / "bench" / "results"
REPORT = ROOT / "bench" / "http_server.md"
TICK = os.sysconf("SC_CLK_TCK")

# The server process: the tree's own HttpServer, Router and json_response, nothing else.
SERVER = r"""
import asyncio, sys, uvloop
from hermod_ref.http.messages import json_response
from hermod_ref.http.routing import Router
from hermod_ref.http.server import HttpProtocol, HttpServer

async def main():
    router = Router()
    pong = {"status": "UP"}
    async def ping(request):
        return json_response(pong)
    async def echo(request):
        return json_response({"length": len(request.body), "path": request.path})
    router.add("GET", "/ping", ping)
    router.add("POST", "/echo", echo)
    server = HttpServer(router, 65536)
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(lambda: HttpProtocol(server), "127.0.0.1", 0, backlog=2048)
    sweep = loop.create_task(server.sweep())
    print(listener.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()

uvloop.run(main())
"""

BODY = json.dumps({"pingCommand": {"nonce": "nonce-0123456789", "userid": "alice", "pad": "x" * 120}}).encode()
REQUESTS = (b"GET /ping HTTP/1.1\r\nHost: bench\r\n\r\n",
            b"POST /echo HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


class Client(asyncio.Protocol):
    """One keep-alive connection, one request in flight; counts complete answers."""

    def __init__(self, done: asyncio.Future, stop_at: float):
        self.done, self.stop_at = done, stop_at
        self.count = 0
        self.buffer = b""
        self.turn = 0

    def connection_made(self, transport):
        self.transport = transport
        self._send()

    def _send(self):
        self.transport.write(REQUESTS[self.turn & 1])
        self.turn += 1

    def data_received(self, data):
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            length_at = self.buffer.find(b"Content-Length: ", 0, end)
            length = int(self.buffer[length_at + 16:self.buffer.find(b"\r\n", length_at)])
            if len(self.buffer) < end + 4 + length:
                return
            if not self.buffer.startswith(b"HTTP/1.1 200 "):
                raise RuntimeError(self.buffer[:200])
            self.buffer = self.buffer[end + 4 + length:]
            self.count += 1
            if time.monotonic() >= self.stop_at:
                self.transport.close()
                if not self.done.done():
                    self.done.set_result(None)
                return
            self._send()


def loadgen(port: int, connections: int, start_at: float, duration: float, out) -> None:
    import uvloop

    async def main():
        while time.time() < start_at:
            await asyncio.sleep(0.005)
        loop = asyncio.get_running_loop()
        stop_at = time.monotonic() + duration
        clients = []
        for _ in range(connections):
            done = loop.create_future()
            _, proto = await loop.create_connection(lambda done=done: Client(done, stop_at), "127.0.0.1", port)
            clients.append(proto)
        await asyncio.gather(*(c.done for c in clients))
        return sum(c.count for c in clients)

    out.put(uvloop.run(main()))


def one_round(src: str, args) -> dict:
    env = dict(os.environ, PYTHONPATH=src)
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, env=env, text=True)
    try:
        port = int(server.stdout.readline())
        ctx = mp.get_context("fork")
        out = ctx.Queue()
        start_at = time.time() + 0.5
        per = max(1, args.connections // args.loadgens)
        procs = [ctx.Process(target=loadgen, args=(port, per, start_at, args.duration, out))
                 for _ in range(args.loadgens)]
        for proc in procs:
            proc.start()
        while time.time() < start_at:
            time.sleep(0.001)
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        requests = sum(out.get(timeout=args.duration + 60) for _ in procs)
        cpu1, t1 = cpu_seconds(server.pid), time.monotonic()
        for proc in procs:
            proc.join(10)
        return {"requests": requests, "seconds": round(t1 - t0, 2), "requests_per_s": round(requests / (t1 - t0)),
                "server_cpu_s": round(cpu1 - cpu0, 3), "cpu_us_per_request": round((cpu1 - cpu0) * 1e6 / requests, 2)}
    finally:
        server.terminate()
        server.wait(10)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--src", default=str(SRC), help="tree measured (default: this checkout)")
    p.add_argument("--baseline-src", required=True,
                   help="tree compared against, e.g. an older commit's images/messaging/src")
    p.add_argument("--baseline-label", default="baseline")
    p.add_argument("--rounds", type=int, default=5, help="rounds per tree (alternating)")
    p.add_argument("--duration", type=float, default=8, help="seconds of load per round")
    p.add_argument("--connections", type=int, default=32, help="keep-alive connections (all load generators)")
    p.add_argument("--loadgens", type=int, default=1, help="load generator processes")
    p.add_argument("--record", metavar="NOTE", nargs="?", const="", help="append a row to bench/http_server.md")
    p.add_argument("--results", default=str(RESULTS))
    args = p.parse_args(argv)

    trees = {"this": args.src, args.baseline_label: args.baseline_src}
    rounds: dict[str, list[dict]] = {name: [] for name in trees}
    load = os.getloadavg()[0]
    for index in range(args.rounds):
        order = list(trees) if index % 2 == 0 else list(trees)[::-1]
        for name in order:
            result = one_round(trees[name], args)
            rounds[name].append(result)
            print(f"round {index + 1} {name}: {result}", flush=True)
    summary = {name: {"cpu_us_per_request_median": statistics.median(r["cpu_us_per_request"] for r in runs),
                      "cpu_us_per_request_min": min(r["cpu_us_per_request"] for r in runs),
                      "requests_per_s_median": statistics.median(r["requests_per_s"] for r in runs)}
               for name, runs in rounds.items()}
    this, base = summary["this"], summary[args.baseline_label]
    change = (this["cpu_us_per_request_median"] / base["cpu_us_per_request_median"] - 1) * 100
    now = datetime.now(timezone.utc)
    doc = {"time": now.isoformat(timespec="seconds"), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
           "trees": trees, "connections": args.connections, "loadgens": args.loadgens, "duration": args.duration,
           "load_at_start": round(load, 2), "load_at_end": round(os.getloadavg()[0], 2), "cpus": os.cpu_count(),
           "summary": summary, "change_percent": round(change, 1), "rounds": rounds}
    Path(args.results).mkdir(parents=True, exist_ok=True)
    out = Path(args.results) / f"http_server-{now.strftime('%Y%m%dT%H%M%SZ')}.json"
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(json.dumps({k: doc[k] for k in ("summary", "change_percent", "load_at_start", "load_at_end")}, indent=2))
    if args.record is not None:
        with REPORT.open("a") as fh:
            fh.write(f"| {now.strftime('%Y-%m-%d %H:%M')} | {args.record} | {args.rounds}×{args.duration:g} s, "
                     f"c={args.connections} | {doc['load_at_start']}→{doc['load_at_end']} | "
                     f"{base['cpu_us_per_request_median']} | {this['cpu_us_per_request_median']} | "
                     f"**{change:+.1f} %** | {base['requests_per_s_median']} | {this['requests_per_s_median']} |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Closed-loop HTTP(S) load for the rotation test and bench/traefik_rotation.py.

Every response is checked (status, and for HTTPS full certificate verification against the CA
file and the host name). Two kinds of workers:
  keepalive  reuse pooled connections (throughput);
  fresh      a new TCP connection and TLS handshake per request, so that each request sees
             whatever certificate Traefik serves at that moment (rotation).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import socket
import ssl
import time
import urllib.parse

import aiohttp
from aiohttp.abc import AbstractResolver
from cryptography import x509


class StaticResolver(AbstractResolver):
    """Resolve the service host name to a fixed address (it may not be in DNS here)."""

    def __init__(self, address: str):
        self.address = address

    async def resolve(self, host, port=0, family=socket.AF_INET):
        return [{"hostname": host, "host": self.address, "port": port, "family": socket.AF_INET,
                 "proto": 0, "flags": socket.AI_NUMERICHOST}]

    async def close(self):
        return None


@dataclasses.dataclass
class LoadResult:
    duration: float = 0.0
    ok: int = 0
    failed: int = 0
    errors: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    serials: set = dataclasses.field(default_factory=set)  # certificates seen by fresh handshakes
    latencies: list = dataclasses.field(default_factory=list)

    @property
    def rps(self) -> float:
        return self.ok / self.duration if self.duration else 0.0

    def percentile(self, pct: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))]

    def summary(self) -> dict:
        return {"ok": self.ok, "failed": self.failed, "rps": round(self.rps, 1),
                "p50_ms": round(self.percentile(50) * 1000, 2), "p99_ms": round(self.percentile(99) * 1000, 2),
                "errors": dict(self.errors.most_common(5)), "certificates_seen": len(self.serials)}


async def _worker(session, url, method, body, headers, result, stop):
    """Keep-alive worker: pooled connections through aiohttp."""
    while not stop.is_set():
        start = time.perf_counter()
        try:
            async with session.request(method, url, data=body, headers=headers) as resp:
                await resp.read()
                if resp.status != 200:
                    result.failed += 1
                    result.errors[f"HTTP {resp.status}"] += 1
                    continue
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ssl.SSLError) as exc:
            result.failed += 1
            result.errors[type(exc).__name__ + ": " + str(exc)[:80]] += 1
            continue
        result.ok += 1
        result.latencies.append(time.perf_counter() - start)


async def _fresh_worker(url, connect, method, body, headers, ssl_ctx, result, stop):
    """One TCP connection and TLS handshake per request; records the certificate served."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    host_header = parts.hostname if port in (80, 443) else f"{parts.hostname}:{port}"
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host_header}", "Connection: close",
             f"Content-Length: {len(body or b'')}"] + [f"{k}: {v}" for k, v in headers.items()]
    raw_request = ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b"")
    while not stop.is_set():
        start = time.perf_counter()
        writer = None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                connect or parts.hostname, port, ssl=ssl_ctx or None,
                server_hostname=parts.hostname if ssl_ctx else None), timeout=15)
            ssl_object = writer.get_extra_info("ssl_object")
            if ssl_object is not None:
                der = ssl_object.getpeercert(binary_form=True)
                result.serials.add(x509.load_der_x509_certificate(der).serial_number)
            writer.write(raw_request)
            await writer.drain()
            response = await asyncio.wait_for(reader.read(), timeout=15)
            status = int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/") else 0
        except (asyncio.TimeoutError, OSError, ssl.SSLError, ValueError, IndexError) as exc:
            result.failed += 1
            result.errors[type(exc).__name__ + ": " + str(exc)[:80]] += 1
            continue
        finally:
            if writer is not None:
                writer.close()
        if status != 200:
            result.failed += 1
            result.errors[f"HTTP {status}"] += 1
            continue
        result.ok += 1
        result.latencies.append(time.perf_counter() - start)


async def run_load(url, *, duration, keepalive=16, fresh=0, method="POST", body=b"{}", headers=None,
                   ca_file=None, connect=None, stop_event=None):
    """Load `url` for `duration` seconds (or until stop_event is set); returns a LoadResult."""
    ssl_ctx = ssl.create_default_context(cafile=ca_file) if url.startswith("https") else False
    resolver = StaticResolver(connect) if connect else None
    headers = dict(headers or {}, **({"Content-Type": "application/json"} if body else {}))
    timeout = aiohttp.ClientTimeout(total=15)
    stop = stop_event or asyncio.Event()
    result = LoadResult()
    sessions = []
    try:
        ka = aiohttp.TCPConnector(ssl=ssl_ctx, limit=keepalive, resolver=resolver)
        sessions = [aiohttp.ClientSession(connector=ka, timeout=timeout)]
        tasks = [asyncio.create_task(_worker(sessions[0], url, method, body, headers, result, stop))
                 for _ in range(keepalive)]
        tasks += [asyncio.create_task(_fresh_worker(url, connect, method, body, headers, ssl_ctx, result, stop))
                  for _ in range(fresh)]
        started = time.perf_counter()
        if stop_event is None:
            await asyncio.sleep(duration)
            stop.set()
        else:
            await stop.wait()
        await asyncio.gather(*tasks)
        result.duration = time.perf_counter() - started
    finally:
        for session in sessions:
            await session.close()
    return result

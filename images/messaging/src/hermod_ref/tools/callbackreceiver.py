"""Callback receiver for smoke tests and benchmarks.

Accepts `POST [<prefix>]/callback/<type>` (any prefix, so that one receiver stands in for the
guide's callback URLs, e.g. `https://<IDM-HOST>/ws/hermod`), checks HTTP basic auth when
configured, records every callback with the host and path it was sent to (JSON lines file and/or
in memory) and counts duplicates by Idempotency-Key. `GET /stats` returns the counters.

    hermod-callback-receiver --port 18080 --basic-auth user:secret --record callbacks.jsonl
    hermod-callback-receiver --port 443 --basic-auth-file /run/secrets/auth --tls-cert c.pem --tls-key k.pem
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hmac
import json
import ssl
import sys

from aiohttp import web


class Receiver:
    def __init__(self, basic_auth: str | None = None, record_path: str | None = None, keep: bool = True,
                 fail_first: int = 0):
        self.expected = ("Basic " + base64.b64encode(basic_auth.encode()).decode()) if basic_auth else None
        self.record = open(record_path, "a", encoding="utf-8") if record_path else None
        self.keep = keep
        self.callbacks: list[dict] = []
        self.seen: set[str] = set()
        self.duplicates = 0
        self.unauthorized = 0
        # answer 503 to the first N callbacks: exercises the service's retries
        self.fail_remaining = fail_first
        self.arrived = asyncio.Condition() if keep else None

    async def handle(self, request: web.Request) -> web.Response:
        if self.expected is not None:
            got = request.headers.get("Authorization", "")
            if not hmac.compare_digest(got.encode(), self.expected.encode()):
                self.unauthorized += 1
                return web.Response(status=401, headers={"WWW-Authenticate": 'Basic realm="callbacks"'})
        body = await request.read()
        if self.fail_remaining > 0:
            self.fail_remaining -= 1
            return web.Response(status=503)
        try:
            doc = json.loads(body)
        except ValueError:
            return web.Response(status=400, text="not JSON")
        key = request.headers.get("Idempotency-Key", "")
        if key in self.seen:
            self.duplicates += 1
        else:
            self.seen.add(key)
        entry = {"type": request.match_info["type"], "host": request.host, "path": request.path,
                 "idempotencyKey": key,
                 "attempt": request.headers.get("X-Hermod-Attempt"), "body": doc}
        if self.record:
            self.record.write(json.dumps(entry) + "\n")
            self.record.flush()
        if self.keep:
            self.callbacks.append(entry)
            async with self.arrived:
                self.arrived.notify_all()
        return web.Response(status=204)

    async def stats(self, request: web.Request) -> web.Response:
        return web.json_response({"unique": len(self.seen), "duplicates": self.duplicates,
                                  "unauthorized": self.unauthorized})

    async def wait_for(self, predicate, timeout: float) -> list[dict]:
        """Wait until predicate(callbacks) is true; returns the matching callbacks."""
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: predicate(self.callbacks)), timeout)
        return self.callbacks

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.add_routes([web.post("/callback/{type}", self.handle),
                        web.post("/{prefix:.+}/callback/{type}", self.handle),
                        web.get("/stats", self.stats)])
        return app


async def start(receiver: Receiver, host: str, port: int, ssl_context: ssl.SSLContext | None = None,
                reuse_port: bool = False) -> web.AppRunner:
    runner = web.AppRunner(receiver.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=ssl_context, reuse_port=reuse_port).start()
    return runner


def basic_auth_from(value: str | None, path: str | None) -> str | None:
    """The user:password pair, from the file when one is given (its line end dropped)."""
    if path:
        with open(path, encoding="utf-8") as fh:
            return fh.read().rstrip("\r\n")
    return value


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="hermod-callback-receiver", description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=18080)
    p.add_argument("--basic-auth", help="user:password the callbacks must carry")
    p.add_argument("--basic-auth-file", help="file holding user:password (keeps it off the command line)")
    p.add_argument("--record", help="append callbacks as JSON lines to this file")
    p.add_argument("--tls-cert", help="PEM certificate (chain) to serve HTTPS")
    p.add_argument("--tls-key", help="PEM private key for --tls-cert")
    args = p.parse_args(argv)
    args.basic_auth = basic_auth_from(args.basic_auth, args.basic_auth_file)
    ctx = None
    if args.tls_cert:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls_cert, args.tls_key)

    async def run():
        receiver = Receiver(args.basic_auth, args.record, keep=False)
        await start(receiver, args.host, args.port, ctx)
        print(f"callback receiver on {'https' if ctx else 'http'}://{args.host}:{args.port}/callback/<type>",
              flush=True)
        await asyncio.Event().wait()

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

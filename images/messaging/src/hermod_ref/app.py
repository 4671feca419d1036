"""One worker: the HTTP server and its routes, the database pool and the background loops."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

from . import metrics
from .api import admin, commands, device
from .config import Config
from .delivery.dispatcher import Dispatcher, Sweeper
from .http.routing import Router
from .http.server import HttpProtocol, HttpServer
from .release import Release
from .store import db, queries

log = logging.getLogger("hermod")


@dataclass
class Service:
    cfg: Config
    release: Release
    pool: object = None
    commands: queries.Commands | None = None
    dispatcher: Dispatcher | None = None


def build_router(service: Service) -> Router:
    router = Router()
    # The device routes are patterns: added first, they are tried first.
    device.add_routes(router, service)
    commands.add_routes(router, service)
    admin.add_routes(router, service)
    return router


async def serve(cfg: Config, release: Release, client_ssl, server_ssl, node: str, ready=None) -> None:
    """Run one worker until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pool = await db.create_pool(cfg.database)
    service = Service(cfg, release, pool, queries.Commands(pool))
    service.dispatcher = Dispatcher(cfg, pool, release, client_ssl, node)
    sweeper = Sweeper(cfg, pool, service.dispatcher)
    http = HttpServer(build_router(service), cfg.max_body_size)
    # SO_REUSEPORT: every worker binds the same port and the kernel spreads connections.
    listener = await loop.create_server(lambda: HttpProtocol(http), cfg.address, cfg.port, ssl=server_ssl,
                                        reuse_port=True, backlog=2048)
    published = asyncio.Event()
    http_sweep = asyncio.create_task(http.sweep())
    background = [asyncio.create_task(service.dispatcher.run()), asyncio.create_task(sweeper.run())]
    publisher = asyncio.create_task(metrics.publisher(published))
    if ready:
        ready()
    await stop.wait()
    listener.close()
    await http.shutdown(timeout=10)
    http_sweep.cancel()
    service.dispatcher.stop()
    sweeper.stop()
    # let a delivery batch in flight finish and record its outcome
    await asyncio.wait(background, timeout=cfg.callback_timeout + 2)
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    published.set()
    await publisher
    await pool.close()

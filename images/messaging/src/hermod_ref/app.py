"""One worker: the aiohttp application, its database pool and background loops."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

from aiohttp import web

from . import api_admin, api_commands, api_device, db, metrics, store
from .config import Config
from .dispatcher import Dispatcher, Sweeper
from .http import errors_as_json
from .release import Release

log = logging.getLogger("hermod")


@dataclass
class Service:
    cfg: Config
    release: Release
    pool: object = None
    commands: store.Commands | None = None
    dispatcher: Dispatcher | None = None


def build_app(service: Service) -> web.Application:
    app = web.Application(client_max_size=service.cfg.max_body_size, middlewares=[errors_as_json])
    app.add_routes(api_commands.routes(service))
    app.add_routes(api_device.routes(service))
    app.add_routes(api_admin.routes(service))
    return app


async def serve(cfg: Config, release: Release, client_ssl, server_ssl, node: str, ready=None) -> None:
    """Run one worker until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pool = await db.create_pool(cfg.database)
    service = Service(cfg, release, pool, store.Commands(pool))
    service.dispatcher = Dispatcher(cfg, pool, release, client_ssl, node)
    sweeper = Sweeper(cfg, pool, service.dispatcher)
    runner = web.AppRunner(build_app(service), access_log=None, handle_signals=False)
    await runner.setup()
    # SO_REUSEPORT: every worker binds the same port and the kernel spreads connections.
    site = web.TCPSite(runner, cfg.address, cfg.port, ssl_context=server_ssl, reuse_port=True, backlog=2048)
    await site.start()
    published = asyncio.Event()
    background = [asyncio.create_task(service.dispatcher.run()), asyncio.create_task(sweeper.run())]
    publisher = asyncio.create_task(metrics.publisher(published))
    if ready:
        ready()
    await stop.wait()
    service.dispatcher.stop()
    sweeper.stop()
    await runner.cleanup()
    # let a delivery batch in flight finish and record its outcome
    await asyncio.wait(background, timeout=cfg.callback_timeout + 2)
    for task in background:
        task.cancel()
    await asyncio.gather(*background, return_exceptions=True)
    published.set()
    await publisher
    await pool.close()

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
from .http import proxy
from .http.routing import Router
from .http.server import HttpProtocol, HttpServer
from .release import Release
from .store import db, queries
from .store.availability import database_unavailable

log = logging.getLogger("hermod")


@dataclass
class Service:
    cfg: Config
    release: Release
    pool: object = None
    commands: queries.Commands | None = None
    dispatcher: Dispatcher | None = None
    # Set on SIGTERM while hermod.shutdown.drain-delay runs: readiness answers DOWN, requests
    # are still served.
    draining: bool = False


def build_routers(service: Service) -> tuple[Router, Router | None]:
    """The main listener's routes, and the operator listener's (None: on the main listener)."""
    router = Router()
    # The device routes are patterns: added first, they are tried first.
    device.add_routes(router, service)
    commands.add_routes(router, service)
    if service.cfg.management_port is None:
        admin.add_routes(router, service)
        return router, None
    operator = Router()
    admin.add_routes(operator, service)
    return router, operator


def http_server(cfg: Config, router: Router) -> HttpServer:
    return HttpServer(router, cfg.max_body_size, idle_timeout=cfg.http_idle_timeout,
                      head_timeout=cfg.http_head_timeout, body_timeout=cfg.http_body_timeout,
                      max_connections=cfg.http_max_connections, unavailable=database_unavailable)


async def serve(cfg: Config, release: Release, client_ssl, server_ssl, node: str, ready=None) -> None:
    """Run one worker until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    pool = await db.create_pool(cfg.database, prepare=queries.hot_statements(release.records_attempts))
    service = Service(cfg, release, pool, queries.Commands(pool))
    service.dispatcher = Dispatcher(cfg, pool, release, client_ssl, node)
    sweeper = Sweeper(cfg, pool, service.dispatcher)
    router, operator_router = build_routers(service)
    servers = [(http_server(cfg, router), cfg.address, cfg.port)]
    if operator_router is not None:
        servers.append((http_server(cfg, operator_router), cfg.management_address, cfg.management_port))
    listeners = []
    for http, address, port in servers:
        # SO_REUSEPORT: every worker binds the same port and the kernel spreads connections.
        listeners.append(await loop.create_server(lambda http=http: HttpProtocol(http), address, port,
                                                  ssl=server_ssl, reuse_port=True, backlog=2048))
    main_http = servers[0][0]
    proxied = None
    if cfg.proxy_protocol_port is not None:
        proxied = await proxy.serve(lambda client: HttpProtocol(main_http, peer=client), cfg.proxy_protocol_address,
                                    cfg.proxy_protocol_port, server_ssl, cfg.http_head_timeout,
                                    cfg.http_max_connections)
    published = asyncio.Event()
    http_sweeps = [asyncio.create_task(http.sweep()) for http, _, _ in servers]
    background = [asyncio.create_task(service.dispatcher.run()), asyncio.create_task(sweeper.run())]
    publisher = asyncio.create_task(metrics.publisher(published))
    if ready:
        ready()
    await stop.wait()
    if cfg.shutdown_drain_delay > 0:
        # Behind a balancer that discovers replicas (Traefik's swarm provider polls, its health
        # check probes readiness), a replica that stopped listening at once would refuse the
        # requests still routed to it until the balancer notices; it reports DOWN and keeps
        # serving for the delay instead, then stops as usual.
        service.draining = True
        log.info("draining for %ss before closing the listeners", cfg.shutdown_drain_delay)
        await asyncio.sleep(cfg.shutdown_drain_delay)
    for listener in listeners:
        listener.close()
    if proxied is not None:
        proxied.cancel()
    await asyncio.gather(*(http.shutdown(timeout=10) for http, _, _ in servers))
    for sweep in http_sweeps:
        sweep.cancel()
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

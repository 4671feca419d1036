"""Start-up: trust store lines, banner, configuration, TLS, schema check, workers.

Exit codes: 2 bad configuration or keystore, 3 database unusable (unreachable or
schema too old), 1 a worker died.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import ssl
import sys

from . import banner, config, logsetup, metrics, release as releases
from .delivery import truststore
from .http import tls
from .store import db, schema

log = logging.getLogger("hermod")


def _args(argv):
    p = argparse.ArgumentParser(prog="hermod-ref", description="Smart ID Messaging reference service")
    p.add_argument("--home", default=os.environ.get("HERMOD_HOME") or os.getcwd(),
                   help="home directory holding config/, cacerts/, certificates/ (default: cwd)")
    p.add_argument("--config", default=os.environ.get("HERMOD_CONFIG"),
                   help="configuration file (default: <home>/config/hermod-conf.yml)")
    p.add_argument("--db-wait", type=float, default=float(os.environ.get("HERMOD_DB_WAIT", "60")),
                   help="seconds to wait for the database at start-up")
    return p.parse_args(argv)


async def _check_schema(cfg, rel, wait):
    conn = await db.connect_with_retry(cfg.database, wait)
    try:
        return await schema.check(conn, rel.schema_version)
    finally:
        await conn.close()


def _database_error(exc: BaseException) -> str:
    """The reason a database connection failed, for the log. Only the exception's type, except
    for a failed TLS verification, whose reason (unknown CA, host name mismatch) is what the
    operator must fix and carries no secret."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS verification of the server failed: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or type(exc).__name__}"
    if isinstance(exc, ConnectionError) and "rejected SSL upgrade" in str(exc):
        return "the server does not offer TLS (sslmode requires it)"
    return type(exc).__name__


def _run_worker(cfg, rel, trust, server_ssl, index: int) -> None:
    import uvloop

    from . import app

    metrics.attach(index)
    node = f"{socket.gethostname()}-{os.getpid()}"[:64]
    client_ssl = trust.ssl_context(cfg.trust_system_cas)
    uvloop.run(app.serve(cfg, rel, client_ssl, server_ssl, node,
                         ready=lambda: log.debug("Worker %d (%s) listening", index, node)))


def main(argv=None) -> int:
    args = _args(argv)
    logsetup.setup()
    home = os.path.abspath(args.home)
    try:
        rel = releases.current()
    except ValueError as exc:
        log.error("%s", exc)
        return 2
    try:
        trust = truststore.load(os.path.join(home, "cacerts"))
    except truststore.CacertsError as exc:
        log.error("Invalid cacerts: %s", exc)
        return 2
    sys.stdout.write(banner.render(rel.version))
    sys.stdout.flush()
    config_path = args.config or os.path.join(home, "config", "hermod-conf.yml")
    try:
        cfg = config.load(config_path)
    except config.ConfigError as exc:
        log.error("Invalid configuration %s: %s", config_path, exc)
        return 2
    logging.getLogger().setLevel(cfg.log_level)
    for key in cfg.unknown_keys:
        log.warning("Configuration key %s is not used by the reference service", key)
    if not cfg.clients:
        log.warning("allowed-clients is empty: every command will be refused")
    server_ssl = None
    if cfg.ssl.enabled:
        try:
            server_ssl = tls.server_context(home, cfg.ssl)
        except tls.KeystoreError as exc:
            log.error("Invalid configuration: %s", exc)
            return 2
    try:
        installed = asyncio.run(_check_schema(cfg, rel, args.db_wait))
    except schema.SchemaError as exc:
        log.error("%s", exc)
        return 3
    except Exception as exc:  # unreachable, bad credentials, TLS refused, ...
        log.error("Cannot use database %s:%s/%s (sslmode %s): %s", cfg.database.host, cfg.database.port,
                  cfg.database.name, cfg.database.sslmode, _database_error(exc))
        return 3
    # Per-worker metrics, summed at scrape time through a shared memory map (metrics.py).
    metrics.init_shared(cfg.workers)
    log.info("Starting Smart ID Messaging reference %s (database schema %s) on %s:%d%s, %d worker(s), "
             "base path '%s', public URL %s", rel.version, installed, cfg.address, cfg.port,
             " (HTTPS)" if server_ssl else "", cfg.workers, cfg.base_path, cfg.public_url)
    if cfg.proxy_protocol_port is not None:
        log.info("Connections relayed with the PROXY protocol on %s:%d", cfg.proxy_protocol_address,
                 cfg.proxy_protocol_port)
    if cfg.management_port is not None:
        log.info("Operator endpoints (actuator, API docs, Swagger UI, generateclient) on %s:%d",
                 cfg.management_address, cfg.management_port)
    return _supervise(cfg, rel, trust, server_ssl)


def _supervise(cfg, rel, trust, server_ssl) -> int:
    """Fork the workers; stop them all on a signal, or when one of them dies."""
    children: dict[int, int] = {}
    for index in range(cfg.workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _run_worker(cfg, rel, trust, server_ssl, index)
            except OSError as exc:
                log.error("Worker %d cannot serve on %s:%d: %s", index, cfg.address, cfg.port, exc.strerror or exc)
                code = 1
            except BaseException as exc:  # noqa: BLE001 - the worker must not return into the parent's code
                log.error("Worker %d failed: %s: %s", index, type(exc).__name__, exc)
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        children[pid] = index
    stopping = False

    def forward(signum, _frame):
        nonlocal stopping
        stopping = True
        for pid in children:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    status = 0
    while children:
        try:
            pid, code = os.wait()
        except ChildProcessError:
            break
        children.pop(pid, None)
        if not stopping:
            log.error("A worker exited unexpectedly (status %s); stopping the service", code)
            status = 1
            forward(signal.SIGTERM, None)
    return status


if __name__ == "__main__":
    sys.exit(main())

"""Client side: `POST <base>/command/<type>` with X-Api-Key."""

from __future__ import annotations

import logging
import secrets
import time
import uuid

from aiohttp import web

from . import apikey, commands, metrics, store
from .http import error

log = logging.getLogger("hermod.commands")


def routes(service) -> list[web.RouteDef]:
    cfg = service.cfg
    limits = commands.Limits(cfg.default_lifespan, cfg.max_lifespan, cfg.default_timeout, cfg.max_timeout)
    device_base = f"{cfg.public_url}/command/"

    accepted = {t: metrics.ACCEPTED.labels(t) for t in commands.COMMAND_KEYS}
    unauthorized = metrics.REJECTED.labels("unauthorized")
    invalid = metrics.REJECTED.labels("invalid")

    async def accept(request: web.Request) -> web.Response:
        start = time.perf_counter()
        client = apikey.authenticate(request.headers.get("X-Api-Key"), cfg.clients)
        if client is None:
            unauthorized.inc()
            return error(request, 401, "missing, malformed or unknown X-Api-Key",
                         headers={"WWW-Authenticate": 'ApiKey header="X-Api-Key"'})
        command_type = request.match_info["type"]
        try:
            cmd = commands.parse(command_type, await request.read(), limits)
        except commands.BadCommand as exc:
            invalid.inc()
            return error(request, 400, str(exc))
        message_id = uuid.uuid4()
        reference = secrets.token_urlsafe(32)
        expires = await service.commands.insert(
            message_id, client.client_id, client.group, command_type, reference, cmd.nonce, cmd.userid,
            cmd.response_format, cmd.payload, cmd.timeout, cmd.lifespan)
        accepted[command_type].inc()
        metrics.ACCEPT_LATENCY.observe(time.perf_counter() - start)
        return web.json_response({
            "messageId": str(message_id),
            "deviceReference": reference,
            "deviceUrl": device_base + reference,
            "expiresAt": expires.isoformat(),
            "lifespan": cmd.lifespan,
            "timeout": cmd.timeout,
        }, status=202)

    base = cfg.base_path
    return [web.post(f"{base}/command/{{type:{t}}}", accept) for t in commands.COMMAND_KEYS]

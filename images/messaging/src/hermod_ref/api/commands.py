"""Client side: `POST <base>/command/<type>` with X-Api-Key."""

from __future__ import annotations

import logging
import secrets
import time

from .. import metrics
from ..ids import uuid7
from ..http.messages import Request, Response, error, json_response
from ..http.routing import allow_sources
from . import apikey, command_body

log = logging.getLogger("hermod.commands")


def add_routes(router, service) -> None:
    cfg = service.cfg
    limits = command_body.Limits(cfg.default_lifespan, cfg.max_lifespan, cfg.default_timeout, cfg.max_timeout)
    device_base = f"{cfg.public_url}/command/"

    accepted = {t: metrics.ACCEPTED.labels(t) for t in command_body.COMMAND_KEYS}
    unauthorized = metrics.REJECTED.labels("unauthorized")
    invalid = metrics.REJECTED.labels("invalid")

    async def accept(request: Request, command_type: str) -> Response:
        start = time.perf_counter()
        client = apikey.authenticate(request.headers.get("x-api-key"), cfg.clients)
        if client is None:
            unauthorized.inc()
            return error(request, 401, "missing, malformed or unknown X-Api-Key",
                         headers={"WWW-Authenticate": 'ApiKey header="X-Api-Key"'})
        try:
            cmd = command_body.parse(command_type, request.body, limits)
        except command_body.BadCommand as exc:
            invalid.inc()
            return error(request, 400, str(exc))
        message_id = uuid7()  # time-ordered: the primary key index is a time index (ids.py)
        reference = secrets.token_urlsafe(32)
        expires = await service.commands.insert(
            message_id, client.client_id, client.group, command_type, reference, cmd.nonce, cmd.userid,
            cmd.response_format, cmd.payload, cmd.timeout, cmd.lifespan)
        accepted[command_type].inc()
        metrics.ACCEPT_LATENCY.observe(time.perf_counter() - start)
        return json_response({
            "messageId": str(message_id),
            "deviceReference": reference,
            "deviceUrl": device_base + reference,
            "expiresAt": expires.isoformat(),
            "lifespan": cmd.lifespan,
            "timeout": cmd.timeout,
        }, status=202)

    for command_type in command_body.COMMAND_KEYS:
        router.add("POST", f"{cfg.base_path}/command/{command_type}",
                   allow_sources(lambda request, command_type=command_type: accept(request, command_type),
                                 cfg.command_sources))

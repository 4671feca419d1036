"""Operator endpoints, outside the base path: generateclient, actuator, API docs, Swagger UI.

On the main listener, or on a listener of their own (`management.server.port`)."""

from __future__ import annotations

import asyncio
import json

import yaml

from .. import metrics
from ..store import queries
from ..config import valid_client_id
from ..http.messages import Response, error, json_response, text_response
from ..http.routing import allow_sources
from . import apikey, openapi

try:
    from swagger_ui_bundle import swagger_ui_path
except ImportError:  # the UI is optional; the spec is always served
    swagger_ui_path = None

SWAGGER_INDEX = """<!DOCTYPE html>
<html lang="en"><head><meta charset="UTF-8"><title>Smart ID Messaging reference API</title>
<link rel="stylesheet" href="swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="swagger-ui-bundle.js"></script>
<script src="swagger-ui-standalone-preset.js"></script>
<script src="swagger-init.js"></script>
</body></html>
"""
# Kept in its own file so that a strict Content-Security-Policy (no inline script) works.
SWAGGER_INIT = """window.onload = function () {
  window.ui = SwaggerUIBundle({url: "/v3/api-docs", dom_id: "#swagger-ui",
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset], layout: "StandaloneLayout"});
};
"""


def client_snippet(client_id: str) -> str:
    key = apikey.new_key()
    # An id such as 0, true or 1e3 would be read back as a number or boolean: quote it then.
    shown = client_id if yaml.safe_load(client_id) == client_id else json.dumps(client_id)
    return (f"# X-Api-Key: {apikey.header_for(client_id, key)}\n"
            f"- client-id: {shown}\n"
            f"  key: {key}\n"
            f"  # group: <same group for clients that share devices, e.g. idm and da>\n"
            f"  # callback-url: https://<client host>/<callback base>\n"
            f"  # callback-basic-auth: <user>:<password>\n")


def add_routes(router, service) -> None:
    async def generate_client(request):
        client_id = request.match_info["client_id"]
        if not valid_client_id(client_id):
            return error(request, 400, "client-id: 1-64 of letters, digits, '.', '_', '-'")
        return text_response(client_snippet(client_id), "application/yaml", headers={"Cache-Control": "no-store"})

    async def liveness(request):
        return json_response({"status": "UP"})

    async def readiness(request):
        if service.draining:
            return json_response({"status": "DOWN", "components": {"shutdown": {"status": "DRAINING"}}}, status=503)
        try:
            async with asyncio.timeout(2):
                await service.pool.fetchval("SELECT 1")
        except Exception:
            return json_response({"status": "DOWN", "components": {"db": {"status": "DOWN"}}}, status=503)
        return json_response({"status": "UP", "components": {"db": {"status": "UP"}}})

    async def prometheus(request):
        gauges = None
        try:
            async with asyncio.timeout(2):
                row = await service.pool.fetchrow(queries.CALLBACK_GAUGES)
            gauges = {
                "hermod_callbacks_pending": (row["pending"], "Callbacks not yet delivered (cluster-wide)"),
                "hermod_callbacks_retrying": (row["retrying"], "Callbacks waiting for a retry (cluster-wide)"),
                "hermod_callbacks_given_up": (row["failed"], "Callbacks given up after max-age (cluster-wide)"),
            }
        except Exception:
            pass  # the process metrics are still worth a scrape
        return Response(200, metrics.exposition(gauges), "text/plain; version=0.0.4; charset=utf-8")

    spec = json_response(openapi.spec(service.cfg.base_path, service.release.version))

    async def api_docs(request):
        return spec

    router.add("GET", "/util/generateclient/{client_id}", allow_sources(generate_client, service.cfg.util_sources))
    router.add("GET", "/actuator/health", readiness)
    router.add("GET", "/actuator/health/liveness", liveness)
    router.add("GET", "/actuator/health/readiness", readiness)
    router.add("GET", "/actuator/prometheus", prometheus)
    router.add("GET", "/v3/api-docs", api_docs)
    if service.cfg.swagger_ui and swagger_ui_path is not None:
        index = text_response(SWAGGER_INDEX, "text/html")
        init = text_response(SWAGGER_INIT, "application/javascript")
        to_index = Response(302, b"", "text/plain", {"Location": "/swagger-ui/index.html"})
        for path, response in (("/swagger-ui", to_index), ("/swagger-ui/", to_index), ("/swagger-ui.html", to_index),
                               ("/swagger-ui/index.html", index), ("/swagger-ui/swagger-init.js", init)):
            router.add("GET", path, lambda request, response=response: _constant(response))
        router.static("/swagger-ui", str(swagger_ui_path))


async def _constant(response: Response) -> Response:
    return response

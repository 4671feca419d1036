"""Small HTTP helpers shared by the handlers: Spring-style error bodies."""

from __future__ import annotations

from http import HTTPStatus

from aiohttp import web


def error(request: web.Request, status: int, message: str, headers=None) -> web.Response:
    return web.json_response(
        {"status": status, "error": HTTPStatus(status).phrase, "message": message, "path": request.path},
        status=status, headers=headers)


@web.middleware
async def errors_as_json(request: web.Request, handler):
    """Every error the framework raises (404, 405, 413, ...) as the same JSON shape."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message = exc.text if exc.text and not exc.text.startswith(f"{exc.status}:") else exc.reason
        return error(request, exc.status, message, headers={k: v for k, v in exc.headers.items()
                                                           if k.lower() in ("allow",)})

"""Requests, responses and Spring-style error bodies, shared by the handlers and the server."""

from __future__ import annotations

from http import HTTPStatus

import orjson


class Request:
    """One parsed request. Header names are lower-case; `path` is percent-decoded."""

    __slots__ = ("method", "path", "headers", "body", "match_info", "keep_alive", "http_10", "peer")

    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes, keep_alive: bool,
                 http_10: bool = False, peer: str = ""):
        self.method = method
        self.path = path
        self.headers = headers
        self.body = body
        self.match_info: dict[str, str] = {}
        self.keep_alive = keep_alive
        self.http_10 = http_10  # an HTTP/1.0 client keeps the connection only when told so
        self.peer = peer  # the client's address as the connection shows it


class Response:
    __slots__ = ("status", "body", "content_type", "headers")

    def __init__(self, status: int = 200, body: bytes = b"", content_type: str = "application/json",
                 headers: dict[str, str] | None = None):
        self.status = status
        self.body = body
        self.content_type = content_type
        self.headers = headers


class HttpError(Exception):
    """Raised by the router (404, 405) and the protocol (400, 413, 431): sent as error()."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers


def json_response(obj, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status, orjson.dumps(obj), "application/json", headers)


def text_response(text: str, content_type: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status, text.encode(), content_type, headers)


def error(request: Request | None, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return json_response({"status": status, "error": HTTPStatus(status).phrase, "message": message,
                          "path": request.path if request is not None else ""}, status, headers)

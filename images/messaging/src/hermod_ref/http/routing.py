"""Routing: exact paths, path patterns with named parts, and static folders."""

from __future__ import annotations

import functools
import ipaddress
import mimetypes
import os
import re

from .messages import HttpError, Response, error


def _path_regex(path: str) -> str:
    """'/a/{name}/b/{ref:[a-z]{2,4}}' -> a regex with named groups (a pattern may hold braces)."""
    out, i = [], 0
    while i < len(path):
        if path[i] != "{":
            out.append(re.escape(path[i]))
            i += 1
            continue
        depth, j = 1, i + 1
        while depth:
            depth += {"{": 1, "}": -1}.get(path[j], 0)
            j += 1
        name, _, pattern = path[i + 1:j - 1].partition(":")
        out.append(f"(?P<{name}>{pattern or '[^/]+'})")
        i = j
    return "".join(out)


class Router:
    """Exact paths first (a dict lookup), then patterns ({name} or {name:regex}), then static folders."""

    def __init__(self):
        self._exact: dict[str, dict[str, object]] = {}
        self._patterns: list[tuple[re.Pattern, dict[str, object]]] = []
        self._static: list[tuple[str, str]] = []
        self._files: dict[str, Response] = {}

    def add(self, method: str, path: str, handler, head: bool = True) -> None:
        """A route; a GET route answers HEAD too unless head=False (a GET that changes state,
        such as a one-time fetch, must not be consumed by a HEAD: 405 then)."""
        entries = {method: handler}
        if method == "GET" and not head:
            entries["HEAD"] = None
        if "{" not in path:
            self._exact.setdefault(path, {}).update(entries)
            return
        regex = _path_regex(path)
        for pattern, methods in self._patterns:
            if pattern.pattern == regex:
                methods.update(entries)
                return
        self._patterns.append((re.compile(regex), entries))

    def static(self, prefix: str, folder: str) -> None:
        """GET <prefix>/<file> from the files directly inside `folder`."""
        self._static.append((prefix.rstrip("/") + "/", os.path.realpath(folder)))

    def resolve(self, method: str, path: str):
        """(handler, match_info); HttpError 404 or 405 (with Allow)."""
        match_info: dict[str, str] = {}
        methods = self._exact.get(path)
        if methods is None:
            for pattern, candidates in self._patterns:
                found = pattern.fullmatch(path)
                if found:
                    methods, match_info = candidates, found.groupdict()
                    break
        if methods is None:
            methods = self._static_methods(path)
        if methods is None:
            raise HttpError(404, "Not Found")
        handler = methods.get(method)
        if handler is None and method == "HEAD" and "HEAD" not in methods:
            handler = methods.get("GET")
        if handler is None:
            allowed = {name for name, found in methods.items() if found}
            if "GET" in methods and "HEAD" not in methods:
                allowed.add("HEAD")
            raise HttpError(405, "Method Not Allowed", {"Allow": ", ".join(sorted(allowed))})
        return handler, match_info

    def _static_methods(self, path: str):
        for prefix, folder in self._static:
            name = path[len(prefix):] if path.startswith(prefix) else ""
            # Only plain file names: no sub-folders, no '..', nothing hidden.
            if name and "/" not in name and not name.startswith(".") \
                    and os.path.isfile(os.path.join(folder, name)):
                return {"GET": lambda request, file=os.path.join(folder, name): self._file(file)}
        return None

    async def _file(self, file: str) -> Response:
        response = self._files.get(file)
        if response is None:  # a handful of small assets: read once per worker
            with open(file, "rb") as handle:
                content_type = mimetypes.guess_type(file)[0] or "application/octet-stream"
                response = self._files[file] = Response(200, handle.read(), content_type,
                                                        {"Cache-Control": "max-age=3600"})
        return response


def allow_sources(handler, networks):
    """`handler` for clients whose address is in `networks` (CIDR ranges), 403 for others.

    The address is the connection's peer (an IPv4 client on a dual-stack socket as IPv4):
    headers such as X-Forwarded-For are not trusted. No ranges: everyone."""
    if not networks:
        return handler

    @functools.lru_cache(maxsize=4096)
    def allowed(peer: str) -> bool:
        try:
            address = ipaddress.ip_address(peer)
        except ValueError:
            return False
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address in network for network in networks if network.version == address.version)

    async def guarded(request):
        if not allowed(request.peer):
            return error(request, 403, "source address not allowed")
        return await handler(request)

    return guarded

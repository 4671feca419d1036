"""A small HTTPS client for the TLS tests: connect to an address, verify against a CA file,
and send SNI/Host of the service's host name (which may not resolve on this machine)."""

from __future__ import annotations

import dataclasses
import http.client
import socket
import ssl
import warnings


@dataclasses.dataclass(frozen=True)
class Endpoint:
    hostname: str  # SNI, Host header, certificate name
    connect: str  # address to connect to
    port: int
    ca_file: str
    base_path: str = ""


@dataclasses.dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes
    tls_version: str | None = None
    cipher: str | None = None


def context(ca_file: str | None, *, minimum=None, maximum=None, ciphers: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=ca_file)
    with warnings.catch_warnings():  # TLS 1.0/1.1 are deprecated: that is what the tests probe
        warnings.simplefilter("ignore", DeprecationWarning)
        if minimum is not None:
            ctx.minimum_version = minimum
        if maximum is not None:
            ctx.maximum_version = maximum
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    return ctx


def handshake(endpoint: Endpoint, ctx: ssl.SSLContext, timeout=5.0):
    """(TLS version, cipher name) of a completed handshake; raises ssl.SSLError when refused."""
    with socket.create_connection((endpoint.connect, endpoint.port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=endpoint.hostname) as tls:
            return tls.version(), tls.cipher()[0]


def request(endpoint: Endpoint, path: str, method="GET", headers=None, body=None, ctx=None,
            timeout=10.0) -> Response:
    ctx = ctx or context(endpoint.ca_file)
    raw = socket.create_connection((endpoint.connect, endpoint.port), timeout=timeout)
    tls = ctx.wrap_socket(raw, server_hostname=endpoint.hostname)
    conn = http.client.HTTPConnection(endpoint.hostname, endpoint.port, timeout=timeout)
    conn.sock = tls
    try:
        hdrs = {"Host": endpoint.hostname if endpoint.port == 443 else f"{endpoint.hostname}:{endpoint.port}"}
        hdrs.update(headers or {})
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        return Response(resp.status, resp.headers, resp.read(), tls.version(), tls.cipher()[0])
    finally:
        conn.close()


def plain_request(connect: str, port: int, hostname: str, path: str, timeout=10.0) -> Response:
    conn = http.client.HTTPConnection(connect, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": hostname if port == 80 else f"{hostname}:{port}"})
        resp = conn.getresponse()
        return Response(resp.status, resp.headers, resp.read())
    finally:
        conn.close()

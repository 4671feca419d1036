"""The service's HTTP/1.1 server over real loopback sockets: routing, limits, keep-alive, pipelining."""

from __future__ import annotations

import asyncio
import json

import pytest

from hermod_ref.http.messages import json_response
from hermod_ref.http.routing import Router
from hermod_ref.http.server import HttpProtocol, HttpServer


def make_router(static_dir=None) -> Router:
    router = Router()

    async def echo(request):
        await asyncio.sleep(0.01 if request.body == b"slow" else 0)
        return json_response({"path": request.path, "body": request.body.decode(), "ref": request.match_info.get("ref"),
                              "key": request.headers.get("x-api-key")})

    async def boom(request):
        raise RuntimeError("handler bug")

    router.add("POST", "/command/ping", echo)
    router.add("GET", "/ms/command/{ref:[a-z]{3,5}}", echo)
    router.add("POST", "/ms/command/{ref:[a-z]{3,5}}/response", echo)
    router.add("GET", "/boom", boom)
    if static_dir:
        router.static("/assets", str(static_dir))
    return router


async def exchange(port: int, data: bytes, until_close: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    try:
        async with asyncio.timeout(5):
            return await reader.read() if until_close else await reader.read(65536)
    finally:
        writer.close()


def serve_and(scenario, static_dir=None, max_body=100, **server_args):
    async def main():
        server = HttpServer(make_router(static_dir), max_body, **server_args)
        listener = await asyncio.get_running_loop().create_server(lambda: HttpProtocol(server), "127.0.0.1", 0)
        sweep = asyncio.create_task(server.sweep())
        try:
            return await scenario(listener.sockets[0].getsockname()[1], server)
        finally:
            sweep.cancel()
            listener.close()
            await server.shutdown(timeout=1)

    return asyncio.run(main())


def responses(raw: bytes) -> list[tuple[int, dict, bytes]]:
    """Split a byte stream of responses with Content-Length."""
    out = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        lines = head.decode().split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        length = int(headers["content-length"])
        out.append((int(lines[0].split()[1]), headers, rest[:length]))
        raw = rest[length:]
    return out


def test_routes_match_info_headers_and_pipelined_order():
    requests = (b"POST /command/ping HTTP/1.1\r\nHost: x\r\nX-Api-Key: k1\r\nContent-Length: 4\r\n\r\nslow"
                b"GET /ms/command/abcd HTTP/1.1\r\nHost: x\r\n\r\n"
                b"POST /ms/command/abc/response HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                b"2\r\nhi\r\n0\r\n\r\n"
                b"GET /ms/command/ab%63 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    got = responses(serve_and(lambda port, _: exchange(port, requests)))
    bodies = [json.loads(body) for _, _, body in got]
    assert [status for status, _, _ in got] == [200, 200, 200, 200]
    assert bodies[0] == {"path": "/command/ping", "body": "slow", "ref": None, "key": "k1"}
    assert bodies[1]["ref"] == "abcd" and bodies[2] == {"path": "/ms/command/abc/response", "body": "hi",
                                                        "ref": "abc", "key": None}
    assert bodies[3]["ref"] == "abc"  # percent-decoded before matching
    assert got[3][1]["connection"] == "close" and "date" in got[0][1]


@pytest.mark.parametrize("request_bytes, status, extra", [
    (b"GET /nowhere HTTP/1.1\r\nHost: x\r\n\r\n", 404, None),
    (b"GET /ms/command/toolongref HTTP/1.1\r\nHost: x\r\n\r\n", 404, None),
    (b"GET /command/ping HTTP/1.1\r\nHost: x\r\n\r\n", 405, ("allow", "POST")),
    (b"DELETE /ms/command/abc HTTP/1.1\r\nHost: x\r\n\r\n", 405, ("allow", "GET, HEAD")),
    (b"GET /boom HTTP/1.1\r\nHost: x\r\n\r\n", 500, None),
])
def test_errors_are_json_with_the_path(request_bytes, status, extra):
    async def scenario(port, _):
        return await exchange(port, request_bytes, until_close=False)

    got_status, headers, body = responses(serve_and(scenario))[0]
    assert got_status == status
    doc = json.loads(body)
    assert doc["status"] == status and doc["path"] == request_bytes.split(b" ")[1].decode()
    if extra:
        assert headers[extra[0]] == extra[1]


@pytest.mark.parametrize("request_bytes, status", [
    (b"POST /command/ping HTTP/1.1\r\nHost: x\r\nContent-Length: 101\r\n\r\n", 413),
    (b"POST /command/ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
     + b"40\r\n" + b"a" * 64 + b"\r\n" + b"40\r\n" + b"a" * 64 + b"\r\n0\r\n\r\n", 413),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 17000 + b"\r\n\r\n", 431),
    (b"GET /" + b"u" * 17000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"NOT HTTP AT ALL\r\n\r\n", 400),
    (b"POST /command/ping HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    (b"GET /ms/command/%ff HTTP/1.1\r\nHost: x\r\n\r\n", 400),
])
def test_limits_and_malformed_requests_are_refused_and_closed(request_bytes, status):
    raw = serve_and(lambda port, _: exchange(port, request_bytes))
    got = responses(raw)
    assert len(got) == 1 and got[0][0] == status and got[0][1]["connection"] == "close"


def test_expect_100_continue_and_head():
    async def scenario(port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /command/ping HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        interim = await reader.readuntil(b"\r\n\r\n")
        writer.write(b"ok")
        final = await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HEAD /ms/command/abc HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readexactly(int(final.split(b"Content-Length: ")[1].split(b"\r\n")[0]))
        head = await reader.readuntil(b"\r\n\r\n")
        writer.close()
        return interim, final, head

    interim, final, head = serve_and(scenario)
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert final.startswith(b"HTTP/1.1 200 ")
    assert head.startswith(b"HTTP/1.1 200 ") and b"Content-Length: " in head


def test_static_files_only_plain_names_inside_the_folder(tmp_path):
    (tmp_path / "app.js").write_text("console.log(1)")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x.js").write_text("x")

    async def scenario(port, _):
        out = {}
        for path in ("/assets/app.js", "/assets/sub/x.js", "/assets/..%2Fapp.js", "/assets/.hidden", "/assets/"):
            raw = await exchange(port, f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            out[path] = responses(raw)[0]
        return out

    got = serve_and(scenario, static_dir=tmp_path)
    assert got["/assets/app.js"][0] == 200 and got["/assets/app.js"][2] == b"console.log(1)"
    assert "javascript" in got["/assets/app.js"][1]["content-type"]
    assert {path: status for path, (status, _, _) in got.items() if path != "/assets/app.js"} == {
        "/assets/sub/x.js": 404, "/assets/..%2Fapp.js": 404, "/assets/.hidden": 404, "/assets/": 404}


def test_idle_and_stuck_connections_are_closed_by_the_sweep():
    async def scenario(port, server):
        idle_r, idle_w = await asyncio.open_connection("127.0.0.1", port)
        stuck_r, stuck_w = await asyncio.open_connection("127.0.0.1", port)
        stuck_w.write(b"POST /command/ping HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
        async with asyncio.timeout(5):
            idle = await idle_r.read()
            stuck = await stuck_r.read()
        idle_w.close()
        stuck_w.close()
        return idle, stuck

    idle, stuck = serve_and(scenario, idle_timeout=0.5, body_timeout=0.5)
    assert idle == b""
    assert responses(stuck)[0][0] == 408


def test_shutdown_lets_a_request_in_progress_finish_with_connection_close():
    async def scenario(port, server):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /command/ping HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nslow")
        await asyncio.sleep(0.001)
        await server.shutdown(timeout=2)
        raw = await reader.read()
        writer.close()
        return raw

    got = responses(serve_and(scenario))
    assert got[0][0] == 200 and got[0][1]["connection"] == "close"


def test_http_10_keep_alive_is_confirmed_and_plain_http_10_is_closed():
    async def scenario(port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ms/command/abc HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        kept = await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(int(kept.split(b"Content-Length: ")[1].split(b"\r\n")[0]))
        writer.write(b"GET /ms/command/abc HTTP/1.0\r\n\r\n")
        closed = await reader.read()
        writer.close()
        return kept, closed

    kept, closed = serve_and(scenario)
    assert b"Connection: keep-alive" in kept
    assert responses(closed)[0][1]["connection"] == "close"

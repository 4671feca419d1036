"""Regression tests of the server's bounds over real loopback sockets: each sends the raw bytes of
a hostile client and checks the answer and the resource the server holds (head bytes, write
buffer, connections, time to the error)."""

from __future__ import annotations

import asyncio
import json
import time

from test_server import exchange, responses, serve_and

from hermod_ref.http.server import MAX_HEAD, MAX_PIPELINED, WRITE_HIGH_WATER


async def read_response(reader) -> tuple[int, dict, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return int(lines[0].split()[1]), headers, body


def test_an_endless_header_line_gets_431_as_soon_as_it_passes_the_limit():
    """Finding 1: the head is counted as it arrives, not when a header line is complete."""
    async def scenario(port, server):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /ms/command/abc HTTP/1.1\r\nHost: x\r\nX-Big: ")
        started = time.monotonic()
        sent = 0
        answer = asyncio.create_task(reader.read())
        chunk = b"b" * 65536
        try:
            while not answer.done() and sent < 16 * 1024 * 1024:  # the old code buffered it all
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
                await asyncio.sleep(0)
        except ConnectionError:
            pass  # the server closed after its answer
        async with asyncio.timeout(5):
            raw = await answer
        writer.close()
        return raw, sent, time.monotonic() - started

    raw, sent, elapsed = serve_and(scenario)
    got = responses(raw)
    assert got and got[0][0] == 431, raw[:200]
    # Refused within a few reads of the limit (a read is at most 256 KiB), not at a line end.
    assert sent <= MAX_HEAD + 2 * 1024 * 1024, sent
    assert elapsed < 3, elapsed


def test_a_peer_that_does_not_read_stops_the_output_and_is_aborted(tmp_path):
    """Finding 2: 64 pipelined requests for a large file, answers never read."""
    size = 1024 * 1024
    (tmp_path / "big.js").write_bytes(b"x" * size)

    async def scenario(port, server):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /assets/big.js HTTP/1.1\r\nHost: x\r\n\r\n" * 64)
        await asyncio.sleep(1.0)
        buffered = max(conn.transport.get_write_buffer_size() for conn in server.connections)
        queued = max(len(conn.queue) for conn in server.connections)
        # Stale after idle_timeout (1 s) with output pending: aborted, not left to drain forever.
        async with asyncio.timeout(8):
            while server.connections:
                await asyncio.sleep(0.1)
        writer.transport.abort()
        return buffered, queued

    buffered, queued = serve_and(scenario, static_dir=tmp_path, idle_timeout=1.0)
    # One response in the buffer at most (the one being written when the peer stopped reading),
    # where the old code buffered every one of the 64 (64 MiB).
    assert buffered <= size + WRITE_HIGH_WATER + 4096, buffered
    assert queued <= MAX_PIPELINED


def test_trailer_fields_are_not_merged_into_the_headers():
    """Finding 5: an X-Api-Key sent only in the trailer of a chunked body counts for nothing."""
    request = (b"POST /command/ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
               b"2\r\nhi\r\n0\r\nX-Api-Key: k1\r\n\r\n")
    got = responses(serve_and(lambda port, _: exchange(port, request)))
    assert got[0][0] == 200
    assert json.loads(got[0][2]) == {"path": "/command/ping", "body": "hi", "ref": None, "key": None}


def test_100_continue_follows_the_responses_to_earlier_pipelined_requests():
    """Finding 8: the interim response must not overtake the answer to the request before it."""
    async def scenario(port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /command/ping HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nslow"
                     b"POST /command/ping HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\n")
        async with asyncio.timeout(5):
            first = await read_response(reader)
            interim = await reader.readuntil(b"\r\n\r\n")
            writer.write(b"ok")
            second = await read_response(reader)
        writer.close()
        return first, interim, second

    first, interim, second = serve_and(scenario)
    assert first[0] == 200 and json.loads(first[2])["body"] == "slow"
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
    assert second[0] == 200 and json.loads(second[2])["body"] == "ok"


def test_upgrade_h2c_is_ignored_and_the_request_answered():
    """Finding 8: a request with Upgrade: h2c got no response at all."""
    request = (b"GET /ms/command/abc HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n"
               b"Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n")
    got = responses(serve_and(lambda port, _: exchange(port, request)))
    assert len(got) == 1 and got[0][0] == 200
    assert json.loads(got[0][2])["ref"] == "abc"
    assert got[0][1]["connection"] == "close"


def test_upgrade_after_pipelined_requests_answers_all_of_them_in_order():
    request = (b"GET /ms/command/abc HTTP/1.1\r\nHost: x\r\n\r\n"
               b"GET /ms/command/abcd HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
               b"GET /ms/command/abcde HTTP/1.1\r\nHost: x\r\n\r\n")
    got = responses(serve_and(lambda port, _: exchange(port, request)))
    assert [json.loads(body)["ref"] for _, _, body in got] == ["abc", "abcd"]
    assert "connection" not in got[0][1] and got[1][1]["connection"] == "close"


def test_upgrade_with_a_body_is_refused_rather_than_answered_without_it():
    """llhttp treats what follows an upgrade request's head as the new protocol's bytes."""
    request = (b"POST /command/ping HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
               b"Content-Length: 2\r\n\r\nhi")
    got = responses(serve_and(lambda port, _: exchange(port, request)))
    assert len(got) == 1 and got[0][0] == 400 and got[0][1]["connection"] == "close"


def test_connections_over_the_cap_get_503():
    """Finding 9: a configurable connection cap (per worker and listener)."""
    async def scenario(port, server):
        held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
        await asyncio.sleep(0.1)
        refused = await exchange(port, b"GET /ms/command/abc HTTP/1.1\r\nHost: x\r\n\r\n")
        for _, writer in held:
            writer.close()
        return refused, len(server.connections)

    refused, open_connections = serve_and(scenario, max_connections=2)
    assert responses(refused)[0][0] == 503
    assert open_connections == 2


def test_slow_head_gets_408_after_the_head_timeout():
    """Finding 9: the head timeout runs from the first byte of the request."""
    async def scenario(port, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        writer.write(b"GET /ms/command/abc HTTP/1.1\r\n")
        answer = asyncio.create_task(reader.read())
        for _ in range(40):  # one header byte every 100 ms: never idle, never done
            if answer.done():
                break
            writer.write(b"X")
            await asyncio.sleep(0.1)
        async with asyncio.timeout(5):
            raw = await answer
        writer.close()
        return raw, time.monotonic() - started

    raw, elapsed = serve_and(scenario, head_timeout=1.0, idle_timeout=30)
    assert responses(raw)[0][0] == 408
    assert 1.0 <= elapsed < 2.5, elapsed

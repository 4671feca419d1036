"""The callback client against a real asyncio server on loopback (plain and TLS)."""

from __future__ import annotations

import asyncio
import gc
import socket
import ssl

import pytest

import certs
from hermod_ref.delivery.callback_client import CallbackClient, CallbackError, Target


class Peer:
    """A scripted HTTP/1.1 server: records requests, answers each with `reply(request_bytes)`."""

    def __init__(self, reply, ssl_context=None):
        self.reply = reply
        self.ssl_context = ssl_context
        self.requests: list[bytes] = []
        self.connections = 0
        self.writers: list[asyncio.StreamWriter] = []

    async def handle(self, reader, writer):
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                request = head + await reader.readexactly(length)
                self.requests.append(request)
                answer = self.reply(request)
                if answer is None:  # hang
                    await asyncio.sleep(3600)
                writer.write(answer)
                await writer.drain()
                if b"Connection: close" in answer:
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        for writer in self.writers:
            writer.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def run(coro):
    return asyncio.run(coro)


def post_several(answer: bytes, count: int, path_prefix: str = "", authorization=None):
    """POST `count` callbacks to a peer that always answers `answer`: (peer, statuses)."""
    async def scenario():
        async with Peer(lambda req: answer) as peer:
            client = CallbackClient(None, timeout=5)
            target = Target(f"http://127.0.0.1:{peer.port}{path_prefix}", authorization)
            statuses = [await client.post(target, "/callback/sign", b'{"a":1}', {"Idempotency-Key": f"id-{i}"})
                        for i in range(count)]
            client.close()
            return peer, statuses

    return run(scenario())


def test_posts_with_headers_and_reuses_one_connection():
    peer, statuses = post_several(OK, 3, "/hooks/", "Basic dTpw")
    assert statuses == [200, 200, 200]
    assert peer.connections == 1
    first = peer.requests[0]
    assert first.startswith(b"POST /hooks/callback/sign HTTP/1.1\r\n")
    assert f"Host: 127.0.0.1:{peer.port}".encode() in first
    for header in (b"Authorization: Basic dTpw", b"Content-Type: application/json", b"Content-Length: 7",
                   b"Idempotency-Key: id-0"):
        assert header in first
    assert first.endswith(b'\r\n\r\n{"a":1}')


def test_chunked_error_response_gives_its_status():
    peer, statuses = post_several(b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nbusy\r\n0\r\n\r\n", 2)
    assert statuses == [503, 503]
    assert peer.connections == 1


def test_connection_close_opens_a_new_connection():
    peer, statuses = post_several(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", 3)
    assert statuses == [200, 200, 200]
    assert peer.connections == 3


def test_idle_connection_closed_by_the_peer_is_replaced_once():
    async def scenario():
        async with Peer(lambda req: OK) as peer:
            client = CallbackClient(None, timeout=5)
            target = Target(f"http://127.0.0.1:{peer.port}")
            assert await client.post(target, "/callback/ping", b"{}", {}) == 200
            for writer in peer.writers:  # the peer drops its keep-alive connection
                writer.close()
            await asyncio.sleep(0.05)
            status = await client.post(target, "/callback/ping", b"{}", {})
            client.close()
            return peer, status

    peer, status = run(scenario())
    assert status == 200
    assert peer.connections == 2
    assert len(peer.requests) == 2


def test_a_peer_that_does_not_answer_times_out():
    async def scenario():
        async with Peer(lambda req: None) as peer:
            client = CallbackClient(None, timeout=0.3)
            with pytest.raises(CallbackError, match="^timeout$"):
                await client.post(Target(f"http://127.0.0.1:{peer.port}"), "/callback/ping", b"{}", {})
            client.close()

    run(scenario())


def test_refused_connection_and_garbage_are_connection_errors():
    async def scenario():
        client = CallbackClient(None, timeout=2)
        with pytest.raises(CallbackError, match="^connection: ConnectionRefusedError$"):
            await client.post(Target("http://127.0.0.1:9"), "/callback/ping", b"{}", {})
        async with Peer(lambda req: b"SMTP ready\r\n\r\n") as peer:
            with pytest.raises(CallbackError, match="^connection: invalid HTTP response"):
                await client.post(Target(f"http://127.0.0.1:{peer.port}"), "/callback/ping", b"{}", {})
        client.close()

    run(scenario())


@pytest.fixture(scope="module")
def tls_pair(tmp_path_factory):
    """(server context, client context trusting the test CA, client context trusting nothing)."""
    ca_key, ca_cert = certs.make_ca()
    key, cert = certs.make_leaf(ca_key, ca_cert)
    folder = tmp_path_factory.mktemp("tls")
    (folder / "server.pem").write_bytes(certs.pem(cert))
    (folder / "server.key").write_bytes(certs.key_pem(key))
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(folder / "server.pem", folder / "server.key")
    trusting = ssl.create_default_context(cadata=certs.pem(ca_cert).decode())
    stranger = ssl.create_default_context(cadata=certs.pem(certs.make_ca("Other CA")[1]).decode())
    return server, trusting, stranger


def test_https_verified_against_the_given_trust(tls_pair):
    server, trusting, stranger = tls_pair

    async def scenario():
        async with Peer(lambda req: OK, ssl_context=server) as peer:
            target = Target(f"https://localhost:{peer.port}/cb")
            good = CallbackClient(trusting, timeout=5)
            assert await good.post(target, "/callback/ping", b"{}", {}) == 200
            assert await good.post(target, "/callback/ping", b"{}", {}) == 200
            good.close()
            bad = CallbackClient(stranger, timeout=5)
            with pytest.raises(CallbackError, match="^TLS: SSLCertVerificationError$"):
                await bad.post(target, "/callback/ping", b"{}", {})
            bad.close()
            return peer

    assert run(scenario()).connections == 1


@pytest.mark.parametrize("url, host, port, prefix, host_header", [
    ("https://idm.example/cb/", "idm.example", 443, "/cb", "idm.example"),
    ("http://[::1]:8080", "::1", 8080, "", "[::1]:8080"),
    ("https://bücher.example/ä", "xn--bcher-kva.example", 443, "/%C3%A4", "xn--bcher-kva.example"),
])
def test_target_parts(url, host, port, prefix, host_header):
    target = Target(url)
    assert (target.host, target.port, target.path_prefix, target.host_header) == (host, port, prefix, host_header)


@pytest.mark.parametrize("url", ["ftp://x.example", "https://", "https://x.example/a\r\nX-Evil: 1"])
def test_target_refuses_bad_urls(url):
    with pytest.raises(ValueError):
        Target(url)


def test_one_lookup_per_host_at_a_time_and_failures_are_cached_briefly():
    async def scenario():
        loop = asyncio.get_running_loop()
        lookups = []

        async def failing_getaddrinfo(host, port, **kwargs):
            lookups.append(host)
            await asyncio.sleep(0.05)
            raise socket.gaierror(-2, "Name or service not known")

        loop.getaddrinfo = failing_getaddrinfo
        client = CallbackClient(None, timeout=2)
        target = Target("https://unknown.example")
        burst = await asyncio.gather(*[client.post(target, "/callback/ping", b"{}", {}) for _ in range(20)],
                                     return_exceptions=True)
        later = await asyncio.gather(client.post(target, "/callback/ping", b"{}", {}), return_exceptions=True)
        return lookups, burst + later

    lookups, outcomes = run(scenario())
    assert lookups == ["unknown.example"]
    assert {str(outcome) for outcome in outcomes} == {"connection: gaierror"}


def test_a_lookup_slower_than_the_timeout_leaves_no_unretrieved_error():
    async def scenario():
        loop = asyncio.get_running_loop()
        problems = []
        loop.set_exception_handler(lambda _loop, context: problems.append(context["message"]))

        async def slow_failing_getaddrinfo(host, port, **kwargs):
            await asyncio.sleep(0.3)
            raise socket.gaierror(-2, "Name or service not known")

        loop.getaddrinfo = slow_failing_getaddrinfo
        client = CallbackClient(None, timeout=0.1)
        outcomes = await asyncio.gather(*[client.post(Target("https://slow.example"), "/callback/ping", b"{}", {})
                                          for _ in range(5)], return_exceptions=True)
        await asyncio.sleep(0.4)  # the lookup fails after every caller gave up
        gc.collect()
        await asyncio.sleep(0)
        return outcomes, problems

    outcomes, problems = run(scenario())
    assert {str(outcome) for outcome in outcomes} == {"timeout"}
    assert problems == []


class ScriptedPeer:
    """A raw HTTP/1.1 server whose n-th request (over all connections) is answered by script n:
    an async function (writer) that writes whatever bytes it likes, with pauses between them."""

    def __init__(self, scripts):
        self.scripts = list(scripts)
        self.connections = 0
        self.requests = 0
        self.writers = []

    async def handle(self, reader, writer):
        self.connections += 1
        self.writers.append(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(next(line.split(b":")[1] for line in head.split(b"\r\n")
                                  if line.lower().startswith(b"content-length")))
                await reader.readexactly(length)
                script = self.scripts[self.requests]
                self.requests += 1
                if await script(writer) == "close":
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self):
        self.server = await asyncio.start_server(self.handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc):
        self.server.close()
        for writer in self.writers:
            writer.close()


def answer(*parts, close=False):
    """A script: write each bytes part, sleeping for each number in between."""
    async def script(writer):
        for part in parts:
            if isinstance(part, (int, float)):
                await asyncio.sleep(part)
            else:
                writer.write(part)
                await writer.drain()
        return "close" if close else None

    return script


def post_scripted(scripts, count: int, pause: float = 0.0):
    async def scenario():
        async with ScriptedPeer(scripts) as peer:
            client = CallbackClient(None, timeout=3)
            target = Target(f"http://127.0.0.1:{peer.port}")
            statuses = []
            for i in range(count):
                try:
                    statuses.append(await client.post(target, "/callback/sign", b'{"a":1}', {}))
                except CallbackError as exc:
                    statuses.append(str(exc))
                await asyncio.sleep(pause)
            client.close()
            return peer, statuses

    return run(scenario())


def test_interim_responses_are_skipped_and_the_final_status_counts():
    """The 100 was taken as the final status, and the real answer (503), arriving later,
    became the answer to the next callback on the same connection."""
    peer, statuses = post_scripted([
        answer(b"HTTP/1.1 100 Continue\r\n\r\n", 0.3, b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"),
        answer(b"HTTP/1.1 102 Processing\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ], 2)
    assert statuses == [503, 200]
    assert peer.connections == 1


def test_a_response_ended_by_the_connection_close_is_accepted():
    """No Content-Length, not chunked: the body ends when the connection does (RFC 9112 6.3)."""
    peer, statuses = post_scripted([
        answer(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nreceived", 0.1, close=True),
        answer(b"HTTP/1.1 200 OK\r\n\r\n", close=True),
    ], 2)
    assert statuses == [200, 200]
    assert peer.connections == 2


def test_bytes_after_the_response_close_the_connection():
    """Stray bytes in the same read as the answer: the answer counts, the connection is not reused."""
    peer, statuses = post_scripted([
        answer(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n"),
        answer(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
    ], 2)
    assert statuses == [200, 201]
    assert peer.connections == 2


def test_bytes_while_idle_close_the_connection():
    """Bytes arriving on an idle pooled connection answer nothing: it is closed, not reused."""
    peer, statuses = post_scripted([
        answer(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0.1, b"HTTP/1.1 503 Service Unavailable\r\n"),
        answer(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"),
    ], 2, pause=0.4)
    assert statuses == [200, 201]
    assert peer.connections == 2


def test_101_switching_protocols_is_an_error():
    peer, statuses = post_scripted([
        answer(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n"),
        answer(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ], 2)
    assert statuses == ["connection: unexpected 101 Switching Protocols", 200]
    assert peer.connections == 2

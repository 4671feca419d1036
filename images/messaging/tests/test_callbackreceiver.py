"""The callback receiver tool: the guide-shaped callback paths, basic auth from a file, what it records."""

import asyncio
import base64
import json
import socket

import aiohttp

from hermod_ref.tools.callbackreceiver import Receiver, basic_auth_from, start


def _port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_guide_shaped_prefixes_are_accepted_and_recorded_with_host_and_path(tmp_path):
    record = tmp_path / "cb.jsonl"

    async def run():
        receiver = Receiver("cb:secret", str(record), keep=True)
        port = _port()
        runner = await start(receiver, "127.0.0.1", port)
        auth = {"Authorization": "Basic " + base64.b64encode(b"cb:secret").decode()}
        try:
            async with aiohttp.ClientSession() as session:
                statuses = []
                for path in ("/ws/hermod/callback/provision",
                             "/https/api/rest/v3.0/personalmessaging/callback/sign",
                             "/callback/ping"):
                    async with session.post(f"http://127.0.0.1:{port}{path}", json={"messageId": path},
                                            headers={**auth, "Idempotency-Key": path}) as resp:
                        statuses.append(resp.status)
                async with session.post(f"http://127.0.0.1:{port}/ws/hermod/callback/ping", json={}) as resp:
                    statuses.append(resp.status)
            return statuses, receiver.unauthorized
        finally:
            await runner.cleanup()

    statuses, unauthorized = asyncio.run(run())
    assert statuses == [204, 204, 204, 401] and unauthorized == 1
    entries = [json.loads(line) for line in record.read_text().splitlines()]
    assert [(e["type"], e["path"]) for e in entries] == [
        ("provision", "/ws/hermod/callback/provision"),
        ("sign", "/https/api/rest/v3.0/personalmessaging/callback/sign"),
        ("ping", "/callback/ping"),
    ]
    assert entries[0]["host"].startswith("127.0.0.1:") and entries[0]["body"] == {"messageId": entries[0]["path"]}


def test_basic_auth_file_is_read_without_its_line_end(tmp_path):
    auth = tmp_path / "auth"
    auth.write_text("user:pa:ss\r\n")
    assert basic_auth_from("ignored:x", str(auth)) == "user:pa:ss"
    assert basic_auth_from("given:x", None) == "given:x"

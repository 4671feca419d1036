"""The callback receiver stands in for Identity Manager and Digital Access at the callback URLs
the integration guide gives them, as well as at the root."""

from __future__ import annotations

import asyncio
import base64

import aiohttp
from aiohttp.test_utils import TestServer

from hermod_ref.tools.callbackreceiver import Receiver


def test_callbacks_under_the_guides_bases_are_received():
    async def scenario():
        receiver = Receiver(basic_auth="u:p")
        async with TestServer(receiver.app()) as server:
            auth = {"Authorization": "Basic " + base64.b64encode(b"u:p").decode()}
            async with aiohttp.ClientSession() as session:
                statuses = []
                for base in ("", "/ws/hermod", "/https/api/rest/v3.0/personalmessaging"):
                    async with session.post(server.make_url(base + "/callback/ping"), json={"n": base},
                                            headers=dict(auth, **{"Idempotency-Key": base or "root"})) as r:
                        statuses.append(r.status)
                async with session.post(server.make_url("/ws/hermod/other"), json={}, headers=auth) as r:
                    statuses.append(r.status)
                async with session.get(server.make_url("/stats")) as r:
                    stats = await r.json()
        return statuses, stats

    statuses, stats = asyncio.run(scenario())
    assert statuses == [204, 204, 204, 404]
    assert stats["unique"] == 3 and stats["unauthorized"] == 0

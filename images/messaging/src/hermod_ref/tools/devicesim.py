"""Device simulator: plays the mobile app against the public URL.

For each device URL (from a command's `deviceUrl`): fetch the command, sign a response
with the user's device key (a provisioning command creates that key and sends its
public JWK in the JWS header), and post it.

    hermod-devicesim https://host/ms/command/<reference> [--keys DIR] [--alg ES256|RS256]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import ssl
import sys

import aiohttp
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ..api import jws


class Device:
    """Holds one private key per userid (in memory, or as PEM files in keys_dir)."""

    def __init__(self, session: aiohttp.ClientSession, alg: str = "ES256", keys_dir: str | None = None):
        self.session = session
        self.alg = alg
        self.keys_dir = keys_dir
        self.keys: dict[str, object] = {}

    def _key_path(self, userid: str) -> str:
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in userid)
        return os.path.join(self.keys_dir, f"{safe}.pem")

    def new_key(self, userid: str):
        key = (ec.generate_private_key(ec.SECP256R1()) if self.alg == "ES256"
               else rsa.generate_private_key(public_exponent=65537, key_size=2048))
        self.keys[userid] = key
        if self.keys_dir:
            os.makedirs(self.keys_dir, exist_ok=True)
            with open(self._key_path(userid), "wb") as fh:
                os.fchmod(fh.fileno(), 0o600)
                fh.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
        return key

    def key(self, userid: str):
        if userid not in self.keys and self.keys_dir and os.path.exists(self._key_path(userid)):
            with open(self._key_path(userid), "rb") as fh:
                self.keys[userid] = serialization.load_pem_private_key(fh.read(), None)
        return self.keys.get(userid)

    def answer(self, command: dict) -> dict:
        """The response body for a fetched command."""
        userid, nonce = command["userid"], command["nonce"]
        result = {"nonce": nonce, "messageId": command["messageId"], "type": command["type"], "result": "OK"}
        if command["responseformat"] == "json":
            return {"nonce": nonce, "response": result}
        if command["type"] == "provision":
            key = self.new_key(userid)
            token = jws.sign(result, key, {"jwk": jws.public_jwk(key.public_key())})
        else:
            key = self.key(userid)
            if key is None:
                raise RuntimeError(f"no device key for {userid!r}: provision first")
            token = jws.sign(result, key)
        return {"nonce": nonce, "response": token}

    async def handle(self, device_url: str) -> int:
        """Fetch, sign, respond; returns the HTTP status of the response POST."""
        async with self.session.get(device_url) as resp:
            if resp.status != 200:
                return resp.status
            command = await resp.json()
        async with self.session.post(f"{device_url}/response", json=self.answer(command)) as resp:
            await resp.read()
            return resp.status


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="hermod-devicesim", description=__doc__.splitlines()[0])
    p.add_argument("device_url", nargs="+", help="deviceUrl values returned by commands")
    p.add_argument("--keys", default=os.path.expanduser("~/.hermod-devicesim"), help="folder of device keys")
    p.add_argument("--alg", choices=jws.ALGORITHMS, default="ES256")
    p.add_argument("--cafile", help="CA bundle to verify the public URL (HTTPS)")
    args = p.parse_args(argv)

    async def run() -> int:
        ctx = ssl.create_default_context(cafile=args.cafile) if args.cafile else None
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx) if ctx else None) as session:
            device = Device(session, args.alg, args.keys)
            worst = 0
            for url in args.device_url:
                status = await device.handle(url)
                print(json.dumps({"deviceUrl": url, "status": status}), flush=True)
                worst = max(worst, 0 if status == 202 else 1)
            return worst

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())

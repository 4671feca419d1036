"""Data made at release 1.0.0 through the service: two commands left waiting for their device
and one provisioning command answered by the device simulator, whose callback cannot be
delivered yet (the receiver starts only after the upgrade). Writes what it made as JSON."""
import argparse
import asyncio
import base64
import json
import sys
import time
import urllib.error
import urllib.request


def wait_ready(service, seconds=120):
    deadline = time.monotonic() + seconds
    while True:
        try:
            with urllib.request.urlopen(service + "/actuator/health/readiness", timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > deadline:
            sys.exit("the service is not ready at " + service)
        time.sleep(1)


def post(url, body, api_key):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json", "X-Api-Key": api_key})
    with urllib.request.urlopen(req, timeout=15) as resp:
        assert resp.status == 202, resp.status
        return json.loads(resp.read())


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--service", required=True)
    p.add_argument("--public-url", required=True)
    p.add_argument("--client", required=True, help="id:key")
    p.add_argument("--src", required=True)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    sys.path.insert(0, args.src)
    import aiohttp  # noqa: PLC0415
    from hermod_ref.tools.devicesim import Device  # noqa: PLC0415

    wait_ready(args.service)
    api_key = base64.b64encode(args.client.encode()).decode()
    header = {"lifespan": 86400, "timeout": 3600}
    waiting = [post(args.service + "/command/ping",
                    {"commandHeader": header,
                     "pingCommand": {"nonce": "upgrade-wait-%04d" % i, "userid": "bob%d" % i}}, api_key)
               for i in range(2)]
    answered = post(args.service + "/command/provision",
                    {"commandHeader": header,
                     "provCommand": {"nonce": "upgrade-nonce-0001", "userid": "alice", "responseformat": "jws",
                                     "profile": {"keys": [{"type": "EC", "curve": "P-256"}]}}}, api_key)
    # The device URL names the public (Traefik) address; the device here talks to the published port.
    device_url = answered["deviceUrl"].replace(args.public_url.rstrip("/"), args.service + "/ms", 1)

    async def play_device():
        async with aiohttp.ClientSession() as session:
            return await Device(session).handle(device_url)

    status = asyncio.run(play_device())
    assert status == 202, status
    with open(args.out, "w", encoding="utf-8") as out:
        json.dump({"waiting": [w["messageId"] for w in waiting], "answered": answered["messageId"]}, out)
    print(json.dumps({"waiting": len(waiting), "answered": answered["messageId"]}))


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
"""One command lifecycle through the public entry point, as a client and a device would run it."""

from __future__ import annotations

DOCUMENTATION = r"""
module: messaging_lifecycle
short_description: Run one command lifecycle against a deployed Smart ID Messaging stack
description:
  - Plays the client and the device, over HTTPS through the stack's entry point (Traefik)
    exactly as they do in production, and times each step.
  - C(command) sends C(POST <base_url>/command/provision) with the client's X-Api-Key and expects 202
    with a C(deviceUrl) under the public URL (C(/ms)).
  - C(device fetch) reads the command from the C(deviceUrl).
  - C(signed answer) posts a compact JWS (ES256, a fresh device key sent as C(jwk) in the header, as a
    provisioning device does) and expects 202.
  - The callback is not observed here (it goes to the client's callback URL); the caller checks the
    receiving end with the returned C(message_id).
  - Changes nothing on the managed host; it creates one command (and a device key for I(userid))
    in the service's database, which is what a lifecycle check means.
options:
  base_url:
    description: Scheme, host and port of the entry point plus the base path, e.g. C(https://localhost).
    type: str
    required: true
  api_key_header:
    description: The client's X-Api-Key header value (base64 of C(<client-id>:<key>)).
    type: str
    required: true
  ca_pem:
    description: PEM CA certificate(s) to verify the entry point's TLS with (nothing else is trusted).
    type: str
    required: true
  userid:
    description: The user the provisioning command is for.
    type: str
    required: true
  timeout:
    description: Seconds to wait for each HTTP exchange.
    type: int
    default: 15
author: Smart ID bundle team
"""

EXAMPLES = r"""
- name: Run one lifecycle for idm
  smartid.hermod.messaging_lifecycle:
    base_url: https://localhost
    api_key_header: "{{ idm_api_key }}"
    ca_pem: "{{ lookup('ansible.builtin.file', 'ca.crt') }}"
    userid: verify-idm
  delegate_to: localhost
  no_log: true
"""

RETURN = r"""
message_id:
  description: The command's messageId (the callback carries it).
  type: str
  returned: success
device_url:
  description: The device URL the service returned (its reference is a secret of this command).
  type: str
  returned: never
steps:
  description: One entry per step with C(step), C(ok), C(seconds) and C(detail).
  type: list
  elements: dict
  returned: always
"""

import base64
import json
import os
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request

from ansible.module_utils.basic import AnsibleModule

try:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
    HAVE_CRYPTOGRAPHY = True
except ImportError:  # reported by main()
    HAVE_CRYPTOGRAPHY = False


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def sign_es256(payload, key, header_extra):
    """Compact JWS with ES256 (signature as r||s, RFC 7518 3.4)."""
    header = dict({"alg": "ES256"}, **header_extra)
    signing_input = "%s.%s" % (b64url(json.dumps(header, separators=(",", ":")).encode()),
                               b64url(json.dumps(payload, separators=(",", ":")).encode()))
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    return "%s.%s" % (signing_input, b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big")))


def public_jwk(key):
    numbers = key.public_key().public_numbers()
    return {"kty": "EC", "crv": "P-256", "x": b64url(numbers.x.to_bytes(32, "big")),
            "y": b64url(numbers.y.to_bytes(32, "big"))}


class Exchange(object):
    def __init__(self, ca_pem, timeout):
        # With cadata the system store is not loaded: only the given CA is trusted.
        self.context = ssl.create_default_context(cadata=ca_pem)
        self.timeout = timeout

    def request(self, method, url, headers=None, body=None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
        if data is not None:
            request.add_header("Content-Type", "application/json")
        request.add_header("Accept", "application/json")
        started = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=self.timeout, context=self.context) as resp:
                status, text = resp.status, resp.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            status, text = exc.code, exc.read().decode("utf-8", "replace")
        return status, text, round(time.monotonic() - started, 3)


def run(params):
    steps = []
    exchange = Exchange(params["ca_pem"], params["timeout"])
    base = params["base_url"].rstrip("/")

    def step(name, ok, seconds, detail):
        steps.append({"step": name, "ok": bool(ok), "seconds": seconds, "detail": detail})
        return ok

    body = {"commandHeader": {"lifespan": 120, "timeout": 60},
            "provCommand": {"nonce": b64url(os.urandom(16)), "userid": params["userid"],
                            "responseformat": "jws", "profile": {"keys": [{"alg": "ES256"}]}}}
    try:
        status, text, took = exchange.request("POST", base + "/command/provision",
                                              {"X-Api-Key": params["api_key_header"]}, body)
    except (OSError, ssl.SSLError) as exc:
        step("command", False, None, "POST %s/command/provision: %s" % (base, exc))
        return steps, None
    accepted = _json(text)
    if not step("command", status == 202 and isinstance(accepted, dict) and accepted.get("deviceUrl"), took,
                "POST /command/provision -> %s" % status + ("" if status == 202 else ": %s" % text[:200])):
        return steps, None
    device_url, message_id = accepted["deviceUrl"], accepted.get("messageId")
    path = urllib.parse.urlsplit(device_url).path
    try:
        status, text, took = exchange.request("GET", device_url)
    except (OSError, ssl.SSLError) as exc:
        step("device fetch", False, None, "GET %s: %s" % (path.rsplit("/", 1)[0] + "/<reference>", exc))
        return steps, message_id
    command = _json(text)
    shown = path.rsplit("/", 1)[0] + "/<reference>"
    if not step("device fetch", status == 200 and isinstance(command, dict) and command.get("nonce"), took,
                "GET %s -> %s" % (shown, status)):
        return steps, message_id
    key = ec.generate_private_key(ec.SECP256R1())
    token = sign_es256({"nonce": command["nonce"], "messageId": command.get("messageId"),
                        "type": command.get("type"), "result": "OK"}, key, {"jwk": public_jwk(key)})
    try:
        status, text, took = exchange.request("POST", device_url + "/response", None,
                                              {"nonce": command["nonce"], "response": token})
    except (OSError, ssl.SSLError) as exc:
        step("signed answer", False, None, "POST %s/response: %s" % (shown, exc))
        return steps, message_id
    step("signed answer", status == 202, took, "POST %s/response (ES256 JWS) -> %s" % (shown, status)
         + ("" if status == 202 else ": %s" % text[:200]))
    return steps, message_id


def _json(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


def main():
    module = AnsibleModule(
        argument_spec=dict(
            base_url=dict(type="str", required=True),
            api_key_header=dict(type="str", required=True, no_log=True),
            ca_pem=dict(type="str", required=True),
            userid=dict(type="str", required=True),
            timeout=dict(type="int", default=15),
        ),
        supports_check_mode=True,
    )
    if not HAVE_CRYPTOGRAPHY:
        module.fail_json(msg="the controller's Python needs the cryptography package")
    if module.check_mode:
        module.exit_json(changed=False, skipped=True, steps=[], msg="a lifecycle check creates a command: not run in check mode")
    steps, message_id = run(module.params)
    module.exit_json(changed=False, steps=steps, message_id=message_id, ok=all(s["ok"] for s in steps) and len(steps) == 3)


if __name__ == "__main__":
    main()

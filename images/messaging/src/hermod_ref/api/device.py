"""Device side under the public URL (`<base>/ms`); see docs/device-protocol.md."""

from __future__ import annotations

import functools
import hmac
import json
import re
import time

import orjson

from .. import metrics
from ..ids import uuid7
from ..http.messages import Request, Response, error, json_response
from ..store import queries
from . import jsonbody, jws

REFERENCE = r"[A-Za-z0-9_-]{20,64}"
_REFERENCE = re.compile(REFERENCE)


@functools.lru_cache(maxsize=4096)
def _registered_key(jwk_text: str):
    """Device keys are parsed once per worker, not once per response."""
    return jws.public_key(json.loads(jwk_text))


def _canonical_jwk(jwk: dict) -> str:
    """Only the public members, in a fixed order: what is stored and called back."""
    names = ("kty", "crv", "x", "y") if jwk["kty"] == "EC" else ("kty", "e", "n")
    return json.dumps({n: jwk[n] for n in names}, separators=(",", ":"))


async def _refusal(service, request, reference: str, action: str) -> Response:
    """Say why a fetch or answer did not apply (only run when it did not)."""
    row = await service.pool.fetchrow(queries.COMMAND_STATE, reference)
    if row is None:
        return error(request, 404, "unknown command reference")
    if row["state"] == "expired" or not row["live"]:
        return error(request, 410, "command has expired")
    if row["state"] == "answered":
        return error(request, 409, "command has already been answered")
    if row["state"] == "fetched" and action == "fetch":
        return error(request, 409, "command has already been fetched (the reference is one-time)")
    return error(request, 409, "command must be fetched before it is answered")


def add_routes(router, service) -> None:
    base = f"{service.cfg.base_path}/ms/command/{{reference:{REFERENCE}}}"

    async def fetch(request: Request) -> Response:
        reference = request.match_info["reference"]
        row = await service.commands.fetch(reference)
        if row is None:
            return await _refusal(service, request, reference, "fetch")
        body = (f'{{"messageId":"{row["id"]}","type":"{row["command_type"]}",'
                f'"nonce":{orjson.dumps(row["nonce"]).decode()},"userid":{orjson.dumps(row["userid"]).decode()},'
                f'"responseformat":"{row["response_format"]}","respondBy":"{row["expires_at"].isoformat()}",'
                f'"command":{row["payload"]}}}')
        return Response(200, body.encode())

    async def respond(request: Request) -> Response:
        reference = request.match_info["reference"]
        try:
            # The standard parser, strict (jsonbody.py): a json response is forwarded in the
            # callback, every number exactly, nothing the client's parser would refuse.
            doc = jsonbody.loads(request.body)
        except jsonbody.BadJson as exc:
            return error(request, 400, f"body: {exc}")
        if not isinstance(doc, dict) or not isinstance(doc.get("nonce"), str) or "response" not in doc:
            return error(request, 400, "body: must be an object with nonce (string) and response")
        extra = set(doc) - {"nonce", "response"}
        if extra:
            return error(request, 400, f"{sorted(extra)[0]}: unexpected property")
        row = await service.commands.context(reference)
        if row is None or row["state"] != "fetched" or not row["live"]:
            metrics.RESPONSES.labels("refused").inc()
            return await _refusal(service, request, reference, "answer")
        if not hmac.compare_digest(doc["nonce"].encode(), row["nonce"].encode()):
            metrics.RESPONSES.labels("bad_nonce").inc()
            return error(request, 403, "nonce does not match the command")
        response = doc["response"]
        device_jwk = None
        if row["response_format"] == "jws":
            try:
                header, payload, signing_input, signature = jws.parse(response)
                if payload.get("nonce") != row["nonce"]:
                    raise jws.JwsError("JWS payload nonce does not match the command")
                if row["command_type"] == "provision":
                    # Proof of possession: the new device key signs its own registration.
                    key = jws.public_key(header.get("jwk"))
                    device_jwk = _canonical_jwk(header["jwk"])
                elif row["jwk"] is None:
                    metrics.RESPONSES.labels("no_device_key").inc()
                    return error(request, 422, "no device key registered for this userid in this client group; "
                                               "provision the device first")
                else:
                    key = _registered_key(row["jwk"])
                jws.verify(header, signing_input, signature, key)
            except jws.JwsError as exc:
                metrics.RESPONSES.labels("bad_signature").inc()
                return error(request, 403 if "verify" in str(exc) or "nonce" in str(exc) else 400,
                             f"response: {exc}")
        elif not isinstance(response, dict):
            return error(request, 400, "response: must be a JSON object for responseformat json")
        callback = {"messageId": str(row["id"]), "type": row["command_type"], "status": "answered",
                    "userid": row["userid"], "nonce": row["nonce"], "responseformat": row["response_format"],
                    "response": response}
        if device_jwk:
            callback["deviceKey"] = json.loads(device_jwk)
        body = json.dumps(callback, separators=(",", ":"))
        callback_id = uuid7()
        # Queue the callback claimed by this worker (no claim round trip) when it has room.
        dispatcher = service.dispatcher
        owner = dispatcher.node if dispatcher.reserve() else None
        try:
            queued = await service.commands.answer(row["id"], callback_id, body, device_jwk, owner,
                                                   service.cfg.callback_lease)
        except BaseException:
            if owner:
                dispatcher.unreserve()  # if it was written after all, its lease runs out: delivered later
            raise
        if queued is None:  # lost a race with a second answer or with expiry
            if owner:
                dispatcher.unreserve()
            metrics.RESPONSES.labels("refused").inc()
            return await _refusal(service, request, reference, "answer")
        metrics.RESPONSES.labels("accepted").inc()
        if owner:
            dispatcher.deliver_claimed({"id": callback_id, "command_id": row["id"], "client_id": row["client_id"],
                                        "callback_type": row["command_type"], "body": body, "attempts": 1,
                                        "created": time.time()})
        else:
            dispatcher.wake.set()
        return json_response({"messageId": str(row["id"]), "status": "accepted"}, status=202)

    # One-time: a HEAD must not consume it (405, Allow: GET).
    router.add("GET", base, fetch, head=False)
    router.add("POST", f"{base}/response", respond)

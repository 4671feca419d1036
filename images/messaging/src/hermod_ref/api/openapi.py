"""The OpenAPI 3.0 document of the service (served at /v3/api-docs).

It describes the same rules that command_body.py and device.py enforce, so that
generated requests (schemathesis) exercise the real validation.
"""

from __future__ import annotations

from .device import REFERENCE
from .command_body import COMMAND_KEYS, MAX_NONCE, MAX_USERID, MIN_NONCE


def _error(description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _command_schema(command_type: str, key: str) -> dict:
    body = {
        "type": "object",
        "required": ["nonce", "userid"],
        "properties": {
            "nonce": {"type": "string", "minLength": MIN_NONCE, "maxLength": MAX_NONCE, "pattern": "^[^\\x00-\\x1f]*$",
                      "description": "Random value chosen by the client; the device must sign it back."},
            "userid": {"type": "string", "minLength": 1, "maxLength": MAX_USERID, "pattern": "^[^\\x00-\\x1f]*$"},
            "responseformat": {"type": "string", "enum": ["jws"] if command_type == "provision" else ["jws", "json"],
                               "default": "jws"},
        },
        "additionalProperties": True,
        "description": "Further properties (profile, data to sign, ...) are passed to the device unchanged.",
    }
    if command_type == "provision":
        body["properties"]["profile"] = {"type": "object", "description": "Key generation requests for the device."}
    return {
        "type": "object",
        "required": [key],
        "additionalProperties": False,
        "properties": {"commandHeader": {"$ref": "#/components/schemas/CommandHeader"}, key: body},
    }


def spec(base_path: str, release: str) -> dict:
    paths: dict = {}
    for command_type, key in COMMAND_KEYS.items():
        paths[f"{base_path}/command/{command_type}"] = {"post": {
            "tags": ["commands"],
            "operationId": f"command_{command_type}",
            "summary": f"Start a {command_type} command for a device",
            "security": [{"apiKey": []}],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": _command_schema(command_type, key)}}},
            "responses": {
                "202": {"description": "Accepted; hand deviceReference/deviceUrl to the device",
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Accepted"}}}},
                "400": _error("Invalid body; the message names the field"),
                "401": _error("Missing, malformed or unknown X-Api-Key"),
                "403": _error("Source address not in hermod.source-ranges.command"),
                "413": _error("Body larger than hermod.max-body-size"),
            },
        }}
    reference = {"name": "reference", "in": "path", "required": True,
                 "schema": {"type": "string", "pattern": f"^{REFERENCE}$"}}
    paths[f"{base_path}/ms/command/{{reference}}"] = {"get": {
        "tags": ["device"], "operationId": "device_fetch", "summary": "Fetch a pending command (one-time)",
        "parameters": [reference],
        "responses": {"200": {"description": "The command",
                              "content": {"application/json": {"schema": {"$ref": "#/components/schemas/DeviceCommand"}}}},
                      "404": _error("Unknown reference"), "409": _error("Already fetched or answered"),
                      "410": _error("Expired")}}}
    paths[f"{base_path}/ms/command/{{reference}}/response"] = {"post": {
        "tags": ["device"], "operationId": "device_respond", "summary": "Post the device's response",
        "parameters": [reference],
        "requestBody": {"required": True, "content": {"application/json": {"schema": {
            "type": "object", "required": ["nonce", "response"], "additionalProperties": False,
            "properties": {"nonce": {"type": "string"},
                           "response": {"oneOf": [{"type": "string", "description": "compact JWS"},
                                                  {"type": "object"}]}}}}}},
        "responses": {"202": {"description": "Accepted; the callback is queued",
                              "content": {"application/json": {"schema": {
                                  "type": "object", "properties": {"messageId": {"type": "string"},
                                                                   "status": {"type": "string"}}}}}},
                      "400": _error("Malformed body or JWS"), "403": _error("Nonce or signature does not match"),
                      "404": _error("Unknown reference"), "409": _error("Not fetched yet, or already answered"),
                      "410": _error("Expired"), "413": _error("Body too large"),
                      "422": _error("No device key registered (provision first)")}}}
    paths["/util/generateclient/{clientId}"] = {"get": {
        "tags": ["util"], "operationId": "generate_client", "summary": "A fresh allowed-clients entry",
        "parameters": [{"name": "clientId", "in": "path", "required": True,
                        "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}}],
        "responses": {"200": {"description": "YAML snippet with a `# X-Api-Key:` comment line",
                              "content": {"application/yaml": {"schema": {
                                  "type": "array", "minItems": 1, "maxItems": 1, "items": {
                                      "type": "object", "required": ["client-id", "key"],
                                      "properties": {"client-id": {"type": "string"},
                                                     "key": {"type": "string", "pattern": "^[0-9a-f]{64}$"}}}}}}},
                      "400": _error("Invalid client id"),
                      "403": _error("Source address not in hermod.source-ranges.util")}}}
    health = {"200": {"description": "UP", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}},
              "503": {"description": "DOWN", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}}}}
    for path, summary in (("/actuator/health", "Overall health"), ("/actuator/health/liveness", "Liveness"),
                          ("/actuator/health/readiness", "Readiness (checks the database)")):
        paths[path] = {"get": {"tags": ["actuator"], "operationId": path.strip("/").replace("/", "_"),
                               "summary": summary, "responses": health}}
    paths["/actuator/prometheus"] = {"get": {"tags": ["actuator"], "operationId": "prometheus",
                                             "summary": "Prometheus metrics",
                                             "responses": {"200": {"description": "text exposition format",
                                                                   "content": {"text/plain": {"schema": {"type": "string"}}}}}}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "Smart ID Messaging reference service", "version": release,
                 "description": "Open implementation of the Smart ID Messaging (Hermod) protocol. "
                                "Callbacks: POST <callback-url>/callback/<type> with Idempotency-Key."},
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key",
                                           "description": "base64(\"<client-id>:<key>\")"}},
            "schemas": {
                "CommandHeader": {"type": "object", "properties": {
                    "lifespan": {"type": "integer", "minimum": 1,
                                 "description": "Seconds the command may be fetched (capped at hermod.command.max-lifespan)"},
                    "timeout": {"type": "integer", "minimum": 1,
                                "description": "Seconds the device has to respond once fetched (capped at hermod.command.max-timeout)"}}},
                "Accepted": {"type": "object", "required": ["messageId", "deviceReference", "deviceUrl", "expiresAt"],
                             "properties": {"messageId": {"type": "string", "format": "uuid"},
                                            "deviceReference": {"type": "string"},
                                            "deviceUrl": {"type": "string"},
                                            "expiresAt": {"type": "string", "format": "date-time"},
                                            "lifespan": {"type": "integer"}, "timeout": {"type": "integer"}}},
                "DeviceCommand": {"type": "object", "properties": {
                    "messageId": {"type": "string"}, "type": {"type": "string"}, "nonce": {"type": "string"},
                    "userid": {"type": "string"}, "responseformat": {"type": "string"},
                    "respondBy": {"type": "string", "format": "date-time"}, "command": {"type": "object"}}},
                "Health": {"type": "object", "properties": {"status": {"type": "string", "enum": ["UP", "DOWN"]}}},
                "Error": {"type": "object", "required": ["status", "message"],
                          "properties": {"status": {"type": "integer"}, "error": {"type": "string"},
                                         "message": {"type": "string"}, "path": {"type": "string"}}},
            },
        },
    }

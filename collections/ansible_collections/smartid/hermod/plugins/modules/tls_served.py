#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Which certificate a TLS endpoint serves for a name, seen from the managed host."""

from __future__ import annotations

DOCUMENTATION = r"""
module: tls_served
short_description: SHA-256 fingerprint of the certificate a TLS endpoint serves, from the managed host
description:
  - Opens one TCP connection from the managed host to I(host):I(port), makes a TLS handshake with
    SNI I(server_name) and returns the SHA-256 fingerprint of the certificate served.
  - Runs on the host with the standard library only, outside the server's container, so it
    needs no tool in the server's image (the upstream Traefik image has no python3).
  - The certificate is not verified; compare C(fingerprint) with the expected one (for instance
    with C(until)), or give I(expected_fingerprint).
  - Changes nothing.
options:
  host:
    description:
      - Address to connect to, as a port is published on it. A wildcard (empty, C(0.0.0.0),
        C(::)) is reached on loopback (C(127.0.0.1), C(::1)).
    type: str
    default: ""
  port:
    description: TCP port.
    type: int
    required: true
  server_name:
    description: SNI sent in the handshake; none when empty or an IP address.
    type: str
    default: ""
  timeout:
    description: Seconds for the connection and the handshake.
    type: float
    default: 5
  expected_fingerprint:
    description:
      - When given, a different served certificate fails the module with a message naming both
        fingerprints. Lower-case hex; colons and case are ignored.
    type: str
author: Smart ID bundle team
"""

EXAMPLES = r"""
- name: Wait until Traefik serves the new certificate
  smartid.hermod.tls_served:
    host: 0.0.0.0
    port: 443
    server_name: messaging.example.com
  register: served
  until: served.fingerprint | default('') == expected
  retries: 20
  delay: 1
"""

RETURN = r"""
fingerprint:
  description: SHA-256 of the served certificate's DER, lower-case hex without colons.
  type: str
  returned: success
  sample: 3f0c5e4a9d3b6c1e2f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a6b7c8d9e
address:
  description: Address connected to (a wildcard I(host) replaced by loopback).
  type: str
  returned: always
port:
  description: Port connected to.
  type: int
  returned: always
server_name:
  description: SNI sent.
  type: str
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smartid.hermod.plugins.module_utils import tls_served


def _normalized(fingerprint):
    return (fingerprint or "").replace(":", "").strip().lower()


def main():
    module = AnsibleModule(
        argument_spec={
            "host": {"type": "str", "default": ""},
            "port": {"type": "int", "required": True},
            "server_name": {"type": "str", "default": ""},
            "timeout": {"type": "float", "default": 5},
            "expected_fingerprint": {"type": "str"},
        },
        supports_check_mode=True,
    )
    params = module.params
    address = tls_served.connect_address(params["host"])
    result = {"changed": False, "address": address, "port": params["port"],
              "server_name": params["server_name"]}
    try:
        fingerprint = tls_served.served_fingerprint(address, params["port"], params["server_name"],
                                                    params["timeout"])
    except tls_served.ServedError as exc:
        module.fail_json(msg=str(exc), **result)
    result["fingerprint"] = fingerprint
    expected = params["expected_fingerprint"]
    if expected is not None and _normalized(expected) != fingerprint:
        module.fail_json(msg="%s:%s (SNI %s) serves the certificate with SHA-256 %s, not the expected %s"
                         % (address, params["port"], params["server_name"] or "none", fingerprint,
                            _normalized(expected)), **result)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

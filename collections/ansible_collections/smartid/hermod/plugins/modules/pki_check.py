#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Check in one module run that a small PKI on disk is what its inputs ask for."""

from __future__ import annotations

DOCUMENTATION = r"""
module: pki_check
short_description: Whether keys, signing requests and certificates on disk match their inputs
description:
  - Reads every key, signing request and certificate of I(certificates) and compares them with
    what the community.crypto tasks that make them are given (key type and size, subject,
    subjectAltName, basic constraints, key usages, issuer and signature, remaining validity,
    owner and mode).
  - Changes nothing; C(problems) lists each reason (naming its file). A role runs its making
    tasks only when the list is not empty, so a rerun with nothing to change costs one module
    run instead of one per key, request and certificate.
  - Never returns key material.
options:
  folders:
    description: Folders of the PKI (C(path), C(owner), C(mode)).
    type: list
    elements: dict
    default: []
  certificates:
    description: The PKI, issuers first.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name that a later entry's I(issuer) refers to.
        type: str
        required: true
      key:
        description: Private key file (C(path), C(type) RSA or ECC, C(size), C(curve), C(owner), C(mode)).
        type: dict
        required: true
      csr:
        description: Signing request file kept next to the certificate (C(path), C(owner), C(mode)), if any.
        type: dict
      cert:
        description: Certificate file (C(path), C(owner), C(mode)).
        type: dict
        required: true
      common_name:
        description: Subject CN.
        type: str
        required: true
      subject_alt_name:
        description: subjectAltName entries (C(DNS:name), C(IP:address)); not compared when omitted.
        type: list
        elements: str
      ca:
        description: Basic constraints CA flag; not compared when omitted.
        type: bool
      path_length:
        description: Basic constraints path length.
        type: int
      basic_constraints_critical:
        description: Basic constraints marked critical.
        type: bool
        default: true
      key_usage:
        description: Key usages (critical), community.crypto spelling; not compared when omitted.
        type: list
        elements: str
      extended_key_usage:
        description: Extended key usages; not compared when omitted.
        type: list
        elements: str
      issuer:
        description: I(name) of the signing entry; self-signed when omitted.
        type: str
      valid_for_days:
        description: The certificate must stay valid at least this many days from now.
        type: int
        default: 0
      force:
        description: Report the entry as needing renewal.
        type: bool
        default: false
author: Smart ID bundle team
"""

EXAMPLES = r"""
- name: Check the local CA and server certificate in one run
  smartid.hermod.pki_check:
    certificates:
      - name: ca
        key: {path: /opt/x/ca.key, type: RSA, size: 3072, mode: "0600"}
        cert: {path: /opt/x/ca.crt, mode: "0644"}
        common_name: Local CA
        ca: true
        key_usage: [keyCertSign, cRLSign]
  register: pki
"""

RETURN = r"""
problems:
  description: Why the PKI is not as asked (empty when it is); each names its file.
  type: list
  elements: str
  returned: always
certificates:
  description: The PEM text of each certificate that could be read, by I(name) (public data only).
  type: dict
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smartid.hermod.plugins.module_utils import pki_check

CERT_SPEC = {
    "name": {"type": "str", "required": True},
    "key": {"type": "dict", "required": True},
    "csr": {"type": "dict"},
    "cert": {"type": "dict", "required": True},
    "common_name": {"type": "str", "required": True},
    "subject_alt_name": {"type": "list", "elements": "str"},
    "ca": {"type": "bool"},
    "path_length": {"type": "int"},
    "basic_constraints_critical": {"type": "bool", "default": True},
    "key_usage": {"type": "list", "elements": "str"},
    "extended_key_usage": {"type": "list", "elements": "str"},
    "issuer": {"type": "str"},
    "valid_for_days": {"type": "int", "default": 0},
    "force": {"type": "bool", "default": False},
}


def main():
    module = AnsibleModule(
        argument_spec={"folders": {"type": "list", "elements": "dict", "default": []},
                       "certificates": {"type": "list", "elements": "dict", "required": True,
                                        "options": CERT_SPEC}},
        supports_check_mode=True,
    )
    pems = {}
    found = pki_check.problems(module.params["certificates"], module.params["folders"], certificates=pems)
    module.exit_json(changed=False, problems=found, certificates=pems)


if __name__ == "__main__":
    main()

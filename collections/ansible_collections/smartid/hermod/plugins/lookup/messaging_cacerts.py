# -*- coding: utf-8 -*-
"""smartid.hermod.messaging_cacerts: the managed CA certificate set, read on the controller."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: messaging_cacerts
short_description: The CA certificates the messaging role deploys, normalised to PEM <stem>.cer
description:
  - Reads every file of the controller folder and the entries of the variable list, and returns
    one item per certificate with C(name) (<stem>.cer), C(content) (PEM), C(subject),
    C(not_after), C(sha256) and C(origin).
  - The same rules as the validation (smartid.hermod.validate, concern cacerts); fails on input
    that validation would refuse.
options:
  _terms:
    description: Not used.
  cacerts_dir:
    description: Controller folder of CA certificates (empty = none).
    type: str
    default: ""
  cacerts:
    description: Extra certificates, each with C(name) and C(content) or C(src).
    type: list
    default: []
  base_dir:
    description: Relative paths are taken relative to this folder.
    type: str
  allow_expired:
    description: Accept expired certificates.
    type: bool
    default: false
"""

RETURN = r"""
_raw:
  description: The managed certificates, sorted by name.
  type: list
  elements: dict
"""

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.smartid.hermod.plugins.module_utils import messaging_certs


class LookupModule(LookupBase):
    """Return the managed CA set (a list: use with wantlist=true or query)."""

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        certs, errors, _warnings = messaging_certs.managed_cacerts(
            cacerts_dir=self.get_option("cacerts_dir"),
            cacerts=self.get_option("cacerts"),
            base_dir=self.get_option("base_dir"),
            allow_expired=self.get_option("allow_expired"))
        if errors:
            raise AnsibleLookupError("; ".join(errors))
        return [{k: v for k, v in cert.items()} for cert in certs]

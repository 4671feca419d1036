#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Controller-side cross-field validation of the messaging role."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: messaging_validate
short_description: Validate the messaging role's settings before anything on the host changes
description:
  - Checks client ids, keys, groups and callback URLs, the public URL, the CA certificates
    (PEM or DER, parse, expiry, no private keys) and the TLS keystore (password opens it, or the
    PEM key and certificate belong together).
  - Runs on the controller (delegate_to localhost), reads controller files only and changes nothing.
  - Returns the errors instead of failing so a no_log task can hand them to a visible fail task;
    no message carries a secret value.
options:
  clients:
    description: The inventory list C(messaging_clients).
    type: list
    elements: dict
    default: []
  client_key_secret:
    description: Vault secret the keys of clients without an explicit key are derived from.
    type: str
    default: ""
  allow_http_callbacks:
    description: Accept http callback URLs.
    type: bool
    default: false
  public_url:
    description: The service's public URL (must be https).
    type: str
    required: true
  base_path:
    description: Base path of the REST API (empty or /like/this).
    type: str
    default: ""
  base_dir:
    description: Relative controller paths (C(src), keystore sources) are taken relative to this folder.
    type: path
  cacerts_dir:
    description: Controller folder whose every file is a CA certificate input (missing folder = none).
    type: path
  cacerts:
    description: Extra certificates, each with C(name) and C(content) or C(src) (controller path).
    type: list
    elements: dict
    default: []
  allow_expired_cacerts:
    description: Deploy expired certificates with a warning instead of failing.
    type: bool
    default: false
  cacert_warn_days:
    description: Warn when a certificate expires within this many days.
    type: int
    default: 30
  tls_termination:
    description: Where TLS ends, C(traefik) or C(service) (server.ssl with a keystore).
    type: str
    choices: [traefik, service]
    default: traefik
  keystore_src:
    description: Controller path of a ready PKCS#12 keystore.
    type: path
  keystore_password:
    description: Password of the keystore.
    type: str
  keystore_key_src:
    description: Controller path of the PEM private key to build the keystore from.
    type: path
  keystore_cert_src:
    description: Controller path of the PEM certificate to build the keystore from.
    type: path
  keystore_key_passphrase:
    description: Passphrase of O(keystore_key_src), if encrypted.
    type: str
author:
  - Smart ID bundle team
"""

EXAMPLES = r"""
- name: Ensure the messaging settings are consistent
  smartid.hermod.messaging_validate:
    clients: "{{ messaging_clients }}"
    public_url: "{{ messaging_public_url }}"
  delegate_to: localhost
  run_once: true
  no_log: true
  register: messaging_validation
"""

RETURN = r"""
errors:
  description: What is wrong, each naming the field or file.
  type: list
  elements: str
  returned: always
warnings_found:
  description: Findings that do not stop the deploy (certificates expiring soon, ...).
  type: list
  elements: str
  returned: always
cacerts:
  description: The managed CA certificate set, normalised to PEM <name>.cer entries (name, content, subject, not_after, sha256, origin).
  type: list
  elements: dict
  returned: always
paths:
  description: The keystore source paths, made absolute (keystore_src, keystore_key_src, keystore_cert_src).
  type: dict
  returned: always
"""

import os

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smartid.hermod.plugins.module_utils import messaging_core as core


def _read(path):
    with open(path, "rb") as handle:
        return handle.read()


def collect_cacert_inputs(cacerts_dir, cacerts):
    """Gather (name, bytes, origin) from the folder and the variable list."""
    items, errors = [], []
    if cacerts_dir and os.path.isdir(cacerts_dir):
        for name in sorted(os.listdir(cacerts_dir)):
            path = os.path.join(cacerts_dir, name)
            if name.startswith(".") or name.lower() in ("readme.md", "readme") or not os.path.isfile(path):
                continue
            try:
                items.append({"name": name, "data": _read(path), "origin": path})
            except OSError as exc:
                errors.append("%s cannot be read: %s" % (path, exc.strerror))
    elif cacerts_dir and os.path.exists(cacerts_dir):
        errors.append("messaging_cacerts_dir %s is not a folder" % cacerts_dir)
    for index, entry in enumerate(cacerts or []):
        label = "messaging_cacerts[%d]" % index
        name = entry.get("name")
        if entry.get("src") and not name:
            name = os.path.basename(entry["src"])
        if not name:
            errors.append("%s.name is missing" % label)
            continue
        label = "%s (name=%s)" % (label, name)
        if entry.get("content"):
            data = entry["content"]
            data = data.encode("utf-8") if isinstance(data, str) else data
        elif entry.get("src"):
            try:
                data = _read(entry["src"])
            except OSError as exc:
                errors.append("%s.src %s cannot be read: %s" % (label, entry["src"], exc.strerror))
                continue
            label = "%s from %s" % (label, entry["src"])
        else:
            errors.append("%s needs content or src" % label)
            continue
        items.append({"name": name, "data": data, "origin": label})
    return items, errors


def _resolve(params):
    base = params.get("base_dir") or os.getcwd()
    for name in ("cacerts_dir", "keystore_src", "keystore_key_src", "keystore_cert_src"):
        if params.get(name) and not os.path.isabs(params[name]):
            params[name] = os.path.join(base, params[name])
    cacerts = []
    for entry in params.get("cacerts") or []:
        entry = dict(entry)
        if entry.get("src") and not os.path.isabs(entry["src"]):
            entry["src"] = os.path.join(base, entry["src"])
        cacerts.append(entry)
    params["cacerts"] = cacerts
    return params


def validate(params):
    params = _resolve(dict(params))
    errors, warnings = [], []
    errors += core.validate_clients(params["clients"], params["client_key_secret"],
                                    params["allow_http_callbacks"])
    errors += core.validate_public_url(params["public_url"])
    errors += core.validate_base_path(params["base_path"])
    items, input_errors = collect_cacert_inputs(params.get("cacerts_dir"), params["cacerts"])
    errors += input_errors
    certs, cert_errors, cert_warnings = core.check_cacerts(
        items, allow_expired=params["allow_expired_cacerts"], warn_days=params["cacert_warn_days"])
    errors += cert_errors
    warnings += cert_warnings
    if params["tls_termination"] == "service":
        errors += validate_keystore(params)
    paths = {name: params.get(name) or "" for name in ("keystore_src", "keystore_key_src", "keystore_cert_src")}
    return errors, warnings, certs, paths


def validate_keystore(params):
    src = params.get("keystore_src")
    key_src, cert_src = params.get("keystore_key_src"), params.get("keystore_cert_src")
    if src and (key_src or cert_src):
        return ["set either messaging_keystore_src or messaging_keystore_key_src/cert_src, not both"]
    if src:
        try:
            data = _read(src)
        except OSError as exc:
            return ["messaging_keystore_src %s cannot be read: %s" % (src, exc.strerror)]
        return core.check_keystore(data, params.get("keystore_password"), "messaging_keystore_src %s" % src)
    if key_src and cert_src:
        errors = []
        if not params.get("keystore_password"):
            errors.append("messaging_keystore_password is empty: the keystore needs a password")
        try:
            key_data, cert_data = _read(key_src), _read(cert_src)
        except OSError as exc:
            return errors + ["%s cannot be read: %s" % (exc.filename, exc.strerror)]
        return errors + core.check_key_pair(key_data, cert_data, "messaging_keystore_key_src %s" % key_src,
                                            "messaging_keystore_cert_src %s" % cert_src,
                                            params.get("keystore_key_passphrase"))
    return ["messaging_tls_termination is service: set messaging_keystore_src (a .p12) or both "
            "messaging_keystore_key_src and messaging_keystore_cert_src (PEM)"]


def main():
    module = AnsibleModule(
        argument_spec=dict(
            clients=dict(type="list", elements="dict", default=[]),
            client_key_secret=dict(type="str", default="", no_log=True),
            allow_http_callbacks=dict(type="bool", default=False),
            base_dir=dict(type="path"),
            public_url=dict(type="str", required=True),
            base_path=dict(type="str", default=""),
            cacerts_dir=dict(type="path"),
            cacerts=dict(type="list", elements="dict", default=[]),
            allow_expired_cacerts=dict(type="bool", default=False),
            cacert_warn_days=dict(type="int", default=30),
            tls_termination=dict(type="str", choices=["traefik", "service"], default="traefik"),
            keystore_src=dict(type="path"),
            keystore_password=dict(type="str", no_log=True),
            keystore_key_src=dict(type="path"),
            keystore_cert_src=dict(type="path"),
            keystore_key_passphrase=dict(type="str", no_log=True),
        ),
        supports_check_mode=True,
    )
    try:
        errors, warnings, certs, paths = validate(module.params)
    except ImportError as exc:
        module.fail_json(msg="the controller's Python lacks the cryptography package: %s" % exc)
    module.exit_json(changed=False, errors=errors, warnings_found=warnings, cacerts=certs, paths=paths)


if __name__ == "__main__":
    main()

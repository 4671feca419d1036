# -*- coding: utf-8 -*-
"""smartid.hermod.validate: every role's input check, one pattern.

Runs on the controller by design (an action plugin never ships to the host), so the checks
read controller files (certificates, keystores) and change nothing anywhere. Each entry of
`checks` names one concern; its rule function lives in module_utils, one concern per module,
and returns messages that name the variable or file. The task fails once with every error;
warnings are shown and do not fail. No message carries a secret value, so the task does not
need no_log (which would hide the messages too).
"""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: validate
short_description: Check a role's inputs on the controller before anything on a host changes
description:
  - Runs the rule functions of the named concerns and fails with all their errors at once.
  - Runs on the controller only; reads controller files; changes nothing.
options:
  title:
    description: What is checked, for the failure message (C(<title> settings are invalid)).
    type: str
    required: true
  checks:
    description:
      - Concern name to its arguments. Concerns are C(images) (images_build), C(clients),
        C(public_url), C(base_path), C(profile) (messaging_rules), C(cacerts) (messaging_certs),
        C(keystore) (messaging_keystore), C(smartid_home) (smartid_home_rules),
        C(docker_install), C(docker_versions) (docker_rules),
        C(swarm_topology), C(swarm_live_restore), C(swarm_service) (swarm_rules), C(traefik_settings) (traefik_rules),
        C(traefik_certificate) (traefik_certs), C(database_password), C(database_connection),
        C(database_container), C(database_sql), C(database_tls) (database_rules),
        C(database_baseline) (database_flyway), C(callback_standin) (callback_standin_rules).
    type: dict
    required: true
author:
  - Smart ID bundle team
"""

EXAMPLES = r"""
- name: Ensure the messaging settings are valid
  smartid.hermod.validate:
    title: messaging
    checks:
      clients:
        clients: "{{ messaging_clients }}"
      public_url:
        url: "{{ messaging_public_url }}"
"""

RETURN = r"""
errors:
  description: Every broken rule, each naming the variable or file.
  type: list
  elements: str
  returned: always
warnings_found:
  description: Findings that do not stop the run.
  type: list
  elements: str
  returned: always
"""

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.smartid.hermod.plugins.module_utils import callback_standin_rules
from ansible_collections.smartid.hermod.plugins.module_utils import database_flyway
from ansible_collections.smartid.hermod.plugins.module_utils import database_rules
from ansible_collections.smartid.hermod.plugins.module_utils import docker_rules
from ansible_collections.smartid.hermod.plugins.module_utils import images_build
from ansible_collections.smartid.hermod.plugins.module_utils import messaging_certs
from ansible_collections.smartid.hermod.plugins.module_utils import messaging_keystore
from ansible_collections.smartid.hermod.plugins.module_utils import messaging_rules
from ansible_collections.smartid.hermod.plugins.module_utils import smartid_home_rules
from ansible_collections.smartid.hermod.plugins.module_utils import swarm_rules
from ansible_collections.smartid.hermod.plugins.module_utils import traefik_certs
from ansible_collections.smartid.hermod.plugins.module_utils import traefik_rules
from ansible_collections.smartid.hermod.plugins.module_utils import traefik_tls


def _clients(**kwargs):
    return messaging_rules.check_clients(**kwargs)


def _public_url(**kwargs):
    return messaging_rules.check_public_url(**kwargs), []


def _profile(**kwargs):
    return messaging_rules.check_profile(**kwargs), []


def _base_path(**kwargs):
    return messaging_rules.check_base_path(**kwargs), []


def _cacerts(**kwargs):
    _certs, errors, warnings = messaging_certs.managed_cacerts(**kwargs)
    return errors, warnings


def _keystore(base_dir=None, **kwargs):
    for name in ("keystore_src", "keystore_key_src", "keystore_cert_src"):
        kwargs[name] = messaging_certs.resolve(kwargs.get(name) or "", base_dir)
    return messaging_keystore.check_keystore_settings(**kwargs), []


def _service_mode(tls_termination="traefik", source_ranges=None, server_port=0, operator_port=0,
                  proxy_protocol_port=0):
    """Where TLS ends in the service: its own allow-list and listeners of their own."""
    if tls_termination != "service":
        return [], []
    errors = []
    ranges = source_ranges or []
    invalid = traefik_tls.invalid_source_ranges(ranges) if isinstance(ranges, list) else [str(ranges)]
    if not ranges or invalid:
        errors.append("messaging_command_source_ranges must be a non-empty list of addresses or "
                      "networks; invalid: %s" % ", ".join(invalid))
    ports = (int(server_port), int(operator_port), int(proxy_protocol_port))
    if ports[1] in (ports[0], ports[2]) or ports[2] == ports[0]:
        errors.append("messaging_server_port (%d), messaging_operator_port (%d) and "
                      "messaging_proxy_protocol_port (%d) must differ" % ports)
    return errors, []


def _images(components=None, repo_root=""):
    return images_build.images_check_components(components, repo_root), []


def _errors_only(rule):
    """A concern whose rule function returns errors only (no warnings)."""
    return lambda **kwargs: (rule(**kwargs), [])


def _database_baseline(**kwargs):
    return database_flyway.check_baseline_settings(**kwargs), []


def _callback_standin(**kwargs):
    return callback_standin_rules.check_callback_standin(**kwargs), []


CONCERNS = {
    "database_baseline": _database_baseline,
    "callback_standin": _callback_standin,
    "images": _images,
    "profile": _profile,
    "smartid_home": _errors_only(smartid_home_rules.check_home),
    "docker_install": _errors_only(docker_rules.check_install),
    "docker_versions": docker_rules.check_versions,
    "swarm_topology": _errors_only(swarm_rules.check_topology),
    "swarm_live_restore": swarm_rules.check_live_restore,
    "swarm_service": _errors_only(swarm_rules.check_swarm_service),
    "traefik_settings": _errors_only(traefik_rules.check_settings),
    "traefik_certificate": _errors_only(traefik_certs.check_operator_certificate),
    "database_password": _errors_only(database_rules.check_password),
    "database_connection": _errors_only(database_rules.check_connection),
    "database_container": _errors_only(database_rules.check_container),
    "database_sql": _errors_only(database_rules.check_sql_dir),
    "database_tls": database_rules.check_tls,
    "clients": _clients,
    "public_url": _public_url,
    "base_path": _base_path,
    "cacerts": _cacerts,
    "keystore": _keystore,
    "service_mode": _service_mode,
}


class ActionModule(ActionBase):
    """Run the named rule sets; fail once with every error."""

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(("title", "checks"))

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        args = self._task.args
        title = args.get("title")
        checks = args.get("checks")
        if not title or not isinstance(checks, dict):
            raise AnsibleActionFail("smartid.hermod.validate needs title and a checks mapping")
        errors, warnings = [], []
        for concern, kwargs in checks.items():
            if concern not in CONCERNS:
                raise AnsibleActionFail("unknown validation concern %r (known: %s)"
                                        % (concern, ", ".join(sorted(CONCERNS))))
            try:
                found, warned = CONCERNS[concern](**(kwargs or {}))
            except TypeError as exc:
                raise AnsibleActionFail("validation concern %s: %s" % (concern, exc)) from None
            except ImportError as exc:
                raise AnsibleActionFail("the controller's Python lacks a package the %s check "
                                        "needs: %s" % (concern, exc)) from None
            errors += found
            warnings += warned
        result.update(changed=False, errors=errors, warnings_found=warnings)
        if warnings:
            result["warnings"] = list(warnings)
        if errors:
            result["failed"] = True
            result["msg"] = "\n".join(["%s settings are invalid:" % title]
                                      + ["- " + e for e in errors])
        return result

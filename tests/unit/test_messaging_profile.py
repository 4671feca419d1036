"""messaging_profile: what each profile sets, as Ansible templates the role's defaults and vars."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from ansible_collections.smartid.hermod.plugins.module_utils import messaging_startup
from templating import trusted

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLE = os.path.join(ROOT, "collections", "ansible_collections", "smartid", "hermod", "roles", "messaging")


def role_vars(**overrides):
    variables = {}
    for part in ("defaults", "vars"):
        with open(os.path.join(ROLE, part, "main.yml"), encoding="utf-8") as handle:
            variables.update(yaml.safe_load(handle))
    variables.update(overrides)
    return Templar(loader=DataLoader(), variables=trusted(variables))


def value(templar, name):
    return templar.template(trust_as_template("{{ %s }}" % name))


@pytest.mark.parametrize("profile, expected", [
    ("reference", {"messaging_image_source": "build", "messaging_read_only_rootfs": True,
                   "messaging_health_probe": "container",
                   "messaging_healthcheck_path": "/actuator/health/readiness",
                   "messaging_proxy_protocol_port": 20402}),
    ("nexus", {"messaging_image_source": "registry", "messaging_read_only_rootfs": False,
               "messaging_health_probe": "outside", "messaging_healthcheck_path": "/actuator/health",
               "messaging_proxy_protocol_port": 0}),
])
def test_profile_sets_its_defaults(profile, expected):
    templar = role_vars(messaging_profile=profile)
    assert {name: value(templar, name) for name in expected} == expected


def test_an_explicit_variable_wins_over_the_profile():
    templar = role_vars(messaging_profile="nexus", messaging_read_only_rootfs=True)
    assert value(templar, "messaging_read_only_rootfs") is True
    assert value(templar, "messaging_health_probe") == "outside"


@pytest.mark.parametrize("profile, key, other", [
    ("nexus", "keyStoreType", "key-store-type"),
    ("reference", "key-store-type", "keyStoreType"),
])
def test_keystore_type_is_written_in_one_spelling(profile, key, other):
    templar = role_vars(messaging_profile=profile, messaging_tls_termination="service",
                        messaging_keystore_password="ks-pw")
    ssl = value(templar, "messaging_config_service_mode")["server"]["ssl"]
    assert ssl[key] == "PKCS12" and other not in ssl
    assert ssl["key-store"] == "/home/docker/certificates/messaging.p12" and ssl["enabled"] is True


@pytest.mark.parametrize("termination, url", [
    ("traefik", "http://127.0.0.1:20400/actuator/health/readiness"),
    ("service", "https://127.0.0.1:20401/actuator/health/readiness"),
])
def test_health_url_stays_outside_the_base_path(termination, url):
    templar = role_vars(messaging_base_path="/hermod/rest", messaging_tls_termination=termination)
    assert value(templar, "messaging_healthcheck_url") == url


def test_default_banner_pattern_is_the_log_checks_default():
    assert value(role_vars(), "messaging_banner_regex") == messaging_startup.DEFAULT_BANNER_REGEX


WIRING = os.path.join(ROOT, "collections", "ansible_collections", "smartid", "hermod", "playbooks",
                      "vars", "wiring.yml")


def wired(messaging_role_loaded, **inventory):
    """wiring.yml over the inventory; with the messaging role's defaults where a play loads it."""
    variables = {"inventory_hostname": "host.test", "messaging_network_alias": "messaging"}
    if messaging_role_loaded:
        for part in ("defaults", "vars"):
            with open(os.path.join(ROLE, part, "main.yml"), encoding="utf-8") as handle:
                variables.update(yaml.safe_load(handle))
    variables.update(inventory)
    with open(WIRING, encoding="utf-8") as handle:
        variables.update(yaml.safe_load(handle))
    return Templar(loader=DataLoader(), variables=trusted(variables))


@pytest.mark.parametrize("profile, health_path", [
    ("reference", "/actuator/health/readiness"), ("nexus", "/actuator/health")])
def test_traefik_health_path_follows_the_profile_through_the_wiring(profile, health_path):
    assert value(wired(True, messaging_profile=profile), "traefik_backend_health_path") == health_path


@pytest.mark.parametrize("inventory, source", [
    ({}, "build"), ({"messaging_profile": "nexus"}, "registry"),
    ({"messaging_profile": "nexus", "messaging_image_source": "archive"}, "archive")])
def test_images_play_gets_the_profiles_image_source(inventory, source):
    # The images play does not load the messaging role: only the wiring and the inventory.
    templar = wired(False, messaging_image="reg.test/hermod:1", **inventory)
    components = {c["name"]: c for c in value(templar, "images_components")}
    assert components["messaging"]["source"] == source
    assert components["messaging"]["ref"] == ("" if source == "build" else "reg.test/hermod:1")
    # Inside the deploy play the role's profile-derived default agrees with the wiring.
    assert value(wired(True, messaging_image="reg.test/hermod:1", **inventory),
                 "wiring_messaging_image_source") == source


def test_registry_login_reaches_the_images_role_through_the_wiring():
    templar = wired(False, messaging_profile="nexus", messaging_image="reg.test/hermod:1",
                    messaging_registry="reg.test", messaging_registry_username="ci",
                    messaging_registry_password="pw")
    component = {c["name"]: c for c in value(templar, "images_components")}["messaging"]
    assert (component["registry"], component["registry_username"], component["registry_password"]) \
        == ("reg.test", "ci", "pw")



# messaging_config uses the collection's filters: rendered in a child process that loads the
# collection as Ansible does (the plugin loader is global state, kept out of this process).
RENDER = """
import json, os, sys, yaml
from ansible.plugins.loader import init_plugin_loader
init_plugin_loader([sys.argv[1]])
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
sys.path.insert(0, sys.argv[2])
from templating import trusted
base = {"playbook_dir": "/nonexistent"}
for part in ("defaults", "vars"):
    with open(os.path.join(sys.argv[3], part, "main.yml"), encoding="utf-8") as handle:
        base.update(yaml.safe_load(handle))
out = []
for overrides in json.loads(sys.stdin.read()):
    templar = Templar(loader=DataLoader(), variables=trusted({**base, **overrides}))
    out.append(templar.template(trust_as_template("{{ messaging_config }}")))
print(json.dumps(out))
"""

RETENTION_CASES = {
    "reference": {"messaging_retention_period": 86400},
    "nexus": {"messaging_profile": "nexus", "messaging_retention_period": 86400},
    "default": {},
    "zero": {"messaging_retention_period": 0},
    "vendor key": {"messaging_profile": "nexus", "messaging_retention_period_key_path": "vendor.keep-seconds",
                   "messaging_config_overrides": {"vendor": {"keep-seconds": 5}}},
    "swarm": {"messaging_orchestrator": "swarm"},
}


@pytest.fixture(scope="module")
def rendered_configs():
    done = subprocess.run([sys.executable, "-c", RENDER, os.path.join(ROOT, "collections"),
                           os.path.dirname(os.path.abspath(__file__)), ROLE],
                          input=json.dumps(list(RETENTION_CASES.values())), capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(zip(RETENTION_CASES, json.loads(done.stdout)))


def test_retention_period_is_written_for_the_reference_profile_only(rendered_configs):
    assert rendered_configs["reference"]["hermod"]["retention"] == {"period": 86400}
    assert "hermod" not in rendered_configs["nexus"]  # the vendor's key is not public
    assert "retention" not in json.dumps(rendered_configs["nexus"])


def test_retention_period_default_zero_and_a_named_vendor_key(rendered_configs):
    assert rendered_configs["default"]["hermod"]["retention"] == {"period": 604800}
    assert rendered_configs["zero"]["hermod"]["retention"] == {"period": 0}  # 0 is written, not dropped
    # the vendor's key, once known, can be named; operator overrides still win
    assert rendered_configs["vendor key"]["vendor"] == {"keep-seconds": 5}
    assert "hermod" not in rendered_configs["vendor key"]



def test_pool_warm_up_is_on_with_compose_off_on_a_swarm_and_not_written_for_the_vendor(rendered_configs):
    assert rendered_configs["default"]["hermod"]["database"] == {"pool-warm": True}
    assert rendered_configs["swarm"]["hermod"]["database"] == {"pool-warm": False}
    assert "pool-warm" not in json.dumps(rendered_configs["nexus"])

"""The read-only Docker API gate of Traefik's swarm stack runs in the bundle's Debian base image
(python3, standard library), whatever image Traefik itself runs: an operator's upstream Traefik
image has no python3, and the gate must start with it. Rendered with Ansible's own Templar from
the role's defaults, its vars and the collection's wiring, as the playbooks load them."""

from __future__ import annotations

import os

import yaml
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

from templating import trusted

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTION = os.path.join(ROOT, "collections", "ansible_collections", "smartid", "hermod")
UPSTREAM = "traefik:v3.3"


def _yaml(*parts):
    with open(os.path.join(COLLECTION, *parts), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def stack(wiring=True, **overrides):
    variables = {"omit": "__omit_place_holder__", "playbook_dir": "/site/playbooks", "inventory_hostname": "node1",
                 "ansible_managed": "managed", "smartid_orchestrator": "swarm",
                 "traefik_swarm_gate_config": "smartid-traefik-docker-api_v1"}
    for part in ("defaults", "vars"):
        variables.update(_yaml("roles", "traefik", part, "main.yml"))
    if wiring:  # play vars_files win over role defaults, as in the collection's playbooks
        variables.update(_yaml("playbooks", "vars", "wiring.yml"))
    variables.update(overrides)  # inventory values win over both
    t = Templar(loader=DataLoader(), variables=trusted(variables))
    with open(os.path.join(COLLECTION, "roles", "traefik", "templates", "traefik-stack.yml.j2"),
              encoding="utf-8") as handle:
        return yaml.safe_load(t.template(trust_as_template(handle.read())))["services"]


def test_an_upstream_traefik_image_leaves_the_gate_in_the_base_image():
    services = stack(traefik_image=UPSTREAM)
    assert services["traefik"]["image"] == UPSTREAM
    gate = services["docker-api"]
    assert gate["image"] == "smartid/base:bookworm"
    assert gate["entrypoint"] == ["python3", "/usr/local/lib/docker_api_readonly.py"]
    assert gate["healthcheck"]["test"][:2] == ["CMD", "python3"]


def test_the_gate_follows_the_base_image_the_images_role_builds():
    services = stack(traefik_image=UPSTREAM, images_base_image="smartid/base:trixie")
    assert services["docker-api"]["image"] == "smartid/base:trixie"
    assert services["traefik"]["image"] == UPSTREAM


def test_the_role_alone_does_not_run_the_gate_in_traefiks_image():
    services = stack(wiring=False, traefik_image=UPSTREAM)
    assert services["docker-api"]["image"] == "smartid/base:bookworm"
    assert services["traefik"]["image"] == UPSTREAM


def test_the_gate_keeps_its_confinement():
    gate = stack(traefik_image=UPSTREAM)["docker-api"]
    assert gate["read_only"] is True
    assert gate["cap_drop"] == ["ALL"]
    # root's uid only for the engine's root-owned socket, which only the gate mounts
    assert gate["user"] == "0:0"
    assert gate["networks"] == {"api": {}}
    assert gate["deploy"]["placement"]["constraints"] == ["node.role == manager"]
    assert [v["target"] for v in gate["volumes"]] == ["/var/run/docker.sock"]
    assert gate["configs"] == [{"source": "smartid-traefik-docker-api_v1",
                                "target": "/usr/local/lib/docker_api_readonly.py", "mode": 0o444}]

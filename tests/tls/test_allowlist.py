"""/command and /util only from traefik_command_source_ranges; /ms from anywhere.

Always uses the session's own test instance, deployed once with a narrowed allow-list
(127.0.0.0/8 and the trtest-net subnet). The clients run in containers: one on trtest-outside,
a separate Docker network whose addresses are not in the list, and one on trtest-net as the
control. Nothing is edited between requests.
"""

from __future__ import annotations

import ipaddress
import json

import pytest

from conftest import BASE_IMAGE, HERE, NET, OUTSIDE_NET, docker

PROBES = ["GET:/ms/abc", "POST:/ms/abc/response", "POST:/command/ping", "POST:/command/provision",
          "GET:/util/generateclient/idm"]


def container_ip(container, network):
    info = json.loads(docker("inspect", container).stdout)[0]
    return info["NetworkSettings"]["Networks"][network]["IPAddress"]


def probe(instance, network):
    """Run the probe client in a fresh container on `network`, against Traefik's address there."""
    ip = container_ip(instance.container, network)
    ca_dir = instance.component_dir / "ca"
    proc = docker(
        "run", "--rm", "--label", "trtest=1", "--network", network, "--user", "65534:65534",
        "-v", f"{HERE / 'fixtures' / 'probe_client.py'}:/probe.py:ro", "-v", f"{ca_dir}:/ca:ro",
        BASE_IMAGE, "python3", "/probe.py", ip, "8443", instance.endpoint.hostname, "/ca/smartid-local-ca.crt",
        *PROBES,
    )
    return {f"{r['method']}:{r['path']}": r for r in json.loads(proc.stdout)}


@pytest.fixture(scope="module")
def outside(test_instance):
    return probe(test_instance, OUTSIDE_NET)


@pytest.fixture(scope="module")
def inside(test_instance):
    return probe(test_instance, NET)


def test_outside_network_is_not_in_the_narrowed_list(test_instance):
    outside_net = ipaddress.ip_network(test_instance.outside_subnet)
    for allowed in test_instance.variables["traefik_command_source_ranges"]:
        assert not outside_net.overlaps(ipaddress.ip_network(allowed))


@pytest.mark.parametrize("spec", ["POST:/command/ping", "POST:/command/provision", "GET:/util/generateclient/idm"])
def test_private_paths_are_forbidden_from_outside(outside, spec):
    assert outside[spec]["status"] == 403
    assert "max-age=63072000" in (outside[spec]["hsts"] or "")


@pytest.mark.parametrize("spec", ["GET:/ms/abc", "POST:/ms/abc/response"])
def test_public_path_works_from_outside(outside, test_instance, spec):
    assert outside[spec]["status"] == 200
    # The backend saw the client's own address: no proxy in between hid it.
    assert ipaddress.ip_address(outside[spec]["x_real_ip"]) in ipaddress.ip_network(test_instance.outside_subnet)


@pytest.mark.parametrize("spec", PROBES)
def test_everything_works_from_an_allowed_network(inside, test_instance, spec):
    assert inside[spec]["status"] == 200
    assert ipaddress.ip_address(inside[spec]["x_real_ip"]) in ipaddress.ip_network(test_instance.net_subnet)

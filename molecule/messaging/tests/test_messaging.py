"""After each converge step: the cacerts set on the host is exactly the inventory's, and the log
since the container's start has one alias line per certificate, in file order, before the banner."""

from __future__ import annotations

import json
import os
import re
import sys

# Shared with the other scenarios' tests.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared"))
from engine_health import settled_health  # noqa: E402

HOME = "/opt/msgrole-molecule"
COMPOSE = HOME + "/docker/compose/messaging"
BANNER = re.compile(r"^\s*:: .+ ::")
ALIAS = re.compile(r"INFO: Adding certificate (\S+) using alias (\S+)")


# What the inventory holds at each step (molecule.yml, prepare.yml, side_effect.yml).
STEPS = {
    "converge": ["01-corp-root.cer", "02-partner-ca.cer", "03-legacy-ca.cer"],
    "side_effect": ["02-partner-ca.cer", "03-legacy-ca.cer", "04-new-ca.cer"],
}


def recorded(host):
    return json.loads(host.file(HOME + "/.msgrole-expected-cacerts.json").content_string)


def expected(host):
    return STEPS[recorded(host)["step"]]


def container(host):
    cmd = host.run("docker compose --project-directory %s ps --quiet messaging", COMPOSE)
    assert cmd.rc == 0 and cmd.stdout.strip(), cmd.stderr
    return cmd.stdout.strip()


def inspect(host):
    cmd = host.run("docker inspect %s", container(host))
    assert cmd.rc == 0, cmd.stderr
    return json.loads(cmd.stdout)[0]


def log_since_start(host):
    state = inspect(host)["State"]
    cmd = host.run("docker logs --since %s %s 2>&1", state["StartedAt"], container(host))
    assert cmd.rc == 0
    return cmd.stdout.splitlines()


def test_role_managed_the_inventory_set_of_this_step(host):
    assert recorded(host)["cacerts"] == expected(host)


def test_cacerts_folder_holds_exactly_the_managed_set(host):
    folder = host.file(COMPOSE + "/cacerts")
    assert folder.is_directory and folder.mode == 0o755
    assert sorted(folder.listdir()) == sorted(expected(host))
    for name in expected(host):
        cer = host.file("%s/cacerts/%s" % (COMPOSE, name))
        assert cer.mode == 0o644
        assert cer.content_string.startswith("-----BEGIN CERTIFICATE-----")


def test_alias_lines_for_every_certificate_in_order_before_the_banner(host):
    lines = log_since_start(host)
    banner = next(i for i, line in enumerate(lines) if BANNER.search(line))
    aliases = [ALIAS.search(line).group(1) for line in lines[:banner] if ALIAS.search(line)]
    assert aliases == sorted(expected(host))
    assert not any(ALIAS.search(line) for line in lines[banner:])


def test_second_run_restarted_nothing(host):
    recorded = host.file(HOME + "/.msgrole-started-at").content_string.strip()
    assert inspect(host)["State"]["StartedAt"] == recorded


def test_container_is_healthy_non_root_with_read_only_mounts(host):
    assert settled_health(lambda: inspect(host)["State"]["Health"]["Status"]) == "healthy"
    info = inspect(host)
    assert info["Config"]["User"] == "1000:1000"
    assert info["HostConfig"]["RestartPolicy"]["Name"] == "unless-stopped"
    assert info["HostConfig"]["LogConfig"]["Type"] == "json-file"
    mounts = {m["Destination"]: m for m in info["Mounts"]}
    for sub in ("config", "cacerts", "certificates"):
        mount = mounts["/home/docker/" + sub]
        assert mount["Source"] == "%s/%s" % (COMPOSE, sub)
        assert mount["RW"] is False
    assert "msgrole-molecule" in info["NetworkSettings"]["Networks"]
    assert "messaging" in info["NetworkSettings"]["Networks"]["msgrole-molecule"]["Aliases"]
    assert not info["HostConfig"]["PortBindings"]


def test_secrets_are_readable_by_the_container_group_only(host):
    conf = host.file(COMPOSE + "/config/hermod-conf.yml")
    assert conf.user == "root" and conf.gid == 1000 and conf.mode == 0o640
    for sub in ("config", "certificates"):
        folder = host.file("%s/%s" % (COMPOSE, sub))
        assert folder.gid == 1000 and folder.mode == 0o750


def test_config_holds_the_derived_and_explicit_keys(host):
    import hashlib
    import hmac

    import yaml

    conf = yaml.safe_load(host.file(COMPOSE + "/config/hermod-conf.yml").content_string)
    clients = {c["client-id"]: c for c in conf["allowed-clients"]}
    assert clients["idm"]["key"] == hmac.new(b"msgrole-molecule-kdf-0815", b"idm", hashlib.sha256).hexdigest()
    assert clients["da"]["key"] == "5b2a0c9b7f1e4d3c2b1a09f8e7d6c5b4a3928171605f4e3d2c1b0a9f8e7d6c5b"
    assert clients["idm"]["group"] == clients["da"]["group"]
    assert conf["spring"]["datasource"]["url"] == "jdbc:postgresql://database:5432/hermod"
    assert conf["message-server"]["public-url"] == "https://messaging.molecule.test/ms"
    assert conf["server"]["port"] == 20400


def test_compose_works_by_hand_in_the_folder(host):
    cmd = host.run("cd %s && docker compose config -q && docker compose ps --format json", COMPOSE)
    assert cmd.rc == 0, cmd.stderr
    assert "msgrole-mol-messaging" in cmd.stdout

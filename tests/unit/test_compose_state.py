"""compose_state: the gate in front of docker_compose_v2 says "current" only when `up` would
change nothing; every difference, and anything it cannot read, means compose runs."""
from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import types
import uuid

import pytest

from ansible_collections.smartid.hermod.plugins.module_utils import compose_state

IMAGE_ID = "sha256:" + "a" * 64
NETWORK_ID = "n" * 64
MODEL = {
    "name": "smartid-database",
    "services": {
        "database": {
            "image": "smartid/postgres:dev",
            "container_name": "smartid-database",
            "networks": {"smartid": {"aliases": ["database"]}},
            "volumes": [{"type": "volume", "source": "data", "target": "/var/lib/postgresql/data"},
                        {"type": "bind", "source": "/srv/db/secrets/pw", "target": "/run/secrets/pw"}],
            "healthcheck": {"test": ["CMD", "pg_isready"]},
        },
    },
    "networks": {"smartid": {"name": "smartid", "external": True}},
    "volumes": {"data": {"name": "smartid-database-data"}},
}
HASHES = {"database": "h1"}
CONTAINER = {
    "Name": "/smartid-database",
    "Image": IMAGE_ID,
    "Config": {"Labels": {"com.docker.compose.project": "smartid-database",
                          "com.docker.compose.service": "database",
                          "com.docker.compose.oneoff": "False",
                          "com.docker.compose.config-hash": "h1",
                          "com.docker.compose.image": IMAGE_ID}},
    "State": {"Status": "running", "Running": True, "Paused": False, "Restarting": False,
              "Health": {"Status": "healthy"}},
    "NetworkSettings": {"Networks": {"smartid": {"NetworkID": NETWORK_ID}}},
    "Mounts": [{"Type": "volume", "Name": "smartid-database-data"},
               {"Type": "bind", "Source": "/srv/db/secrets/pw"}],
}
IMAGES = {"smartid/postgres:dev": IMAGE_ID}
NETWORKS = {"smartid": NETWORK_ID}


def judge(container=None, model=None, hashes=None, images=None, networks=None, extra=()):
    containers = [container or CONTAINER] + list(extra)
    return compose_state.judge(model or MODEL, HASHES if hashes is None else hashes, containers,
                               IMAGES if images is None else images, NETWORKS if networks is None else networks)


def changed(**changes):
    """CONTAINER with nested keys replaced: changed(State={"Status": "exited"})."""
    container = copy.deepcopy(CONTAINER)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(container.get(key), dict):
            container[key].update(value)
        else:
            container[key] = value
    return container


def test_an_identical_project_is_current():
    assert judge() == []


def test_a_changed_configuration_hash_means_compose_runs():
    reasons = judge(hashes={"database": "h2"})
    assert reasons == ["database: configuration changed (config-hash h1, now h2)"]
    assert judge(hashes={}) == ["database: compose gave no configuration hash"]


def test_a_retagged_image_means_compose_runs():
    newer = "sha256:" + "b" * 64
    assert judge(images={"smartid/postgres:dev": newer}) == [
        "database: image smartid/postgres:dev is now %s, the container runs %s" % (newer, IMAGE_ID)]
    assert judge(images={}) == ["database: image smartid/postgres:dev is not on the host"]
    # The label compose wrote and the image the container runs must both be the current id.
    labels = dict(CONTAINER["Config"]["Labels"], **{"com.docker.compose.image": "sha256:old"})
    assert judge(changed(Config={"Labels": labels})) != []


def test_a_stopped_paused_restarting_or_unhealthy_container_means_compose_runs():
    assert judge(changed(State={"Status": "exited", "Running": False})) == ["database: container is exited"]
    assert judge(changed(State={"Paused": True})) == ["database: container is paused"]
    assert judge(changed(State={"Restarting": True})) == ["database: container is restarting"]
    assert judge(changed(State={"Health": {"Status": "starting"}})) == ["database: container is starting"]
    assert judge(changed(State={"Health": {"Status": "unhealthy"}})) == ["database: container is unhealthy"]
    # A health check in the file and no verdict on the container: not current.
    container = copy.deepcopy(CONTAINER)
    del container["State"]["Health"]
    assert judge(container) == ["database: container is without a health verdict"]


def test_missing_extra_and_orphan_containers_mean_compose_runs():
    assert compose_state.judge(MODEL, HASHES, [], IMAGES, NETWORKS) == ["database: 0 containers, compose keeps 1"]
    assert judge(extra=[copy.deepcopy(CONTAINER)]) == ["database: 2 containers, compose keeps 1"]
    orphan = changed(Name="/old", Config={"Labels": {"com.docker.compose.service": "gone"}})
    assert judge(extra=[orphan]) == ["container /old belongs to no service of the file (an orphan)"]
    # A one-off container (compose run) of a service of the file is not compose up's business.
    oneoff = changed(Config={"Labels": dict(CONTAINER["Config"]["Labels"], **{"com.docker.compose.oneoff": "True"})})
    assert judge(extra=[oneoff]) == []


def test_a_recreated_network_or_a_missing_volume_means_compose_runs():
    assert judge(networks={"smartid": "m" * 64}) == ["database: not attached to network smartid"]
    assert judge(networks={}) == ["database: network smartid does not exist"]
    assert judge(changed(Mounts=[])) == ["database: volume smartid-database-data is not mounted"]


def test_settings_it_does_not_compare_mean_compose_runs():
    model = copy.deepcopy(MODEL)
    model["services"]["database"]["deploy"] = {"replicas": 2}
    assert judge(model=model) == ["database: scale other than 1 (not compared)"]
    model = copy.deepcopy(MODEL)
    model["services"]["database"]["build"] = {"context": "."}
    assert judge(model=model) == ["database: has a build section (not compared)"]
    assert compose_state.judge({"services": {}}, {}, [], {}, {}) == ["the compose file has no services"]


class Host:
    """Answers the read-only commands `read` runs, as the engine and compose would."""

    def __init__(self, fail=None, containers=(CONTAINER,)):
        self.fail, self.containers, self.asked = fail, list(containers), []

    def __call__(self, argv):
        self.asked.append(argv)
        words = " ".join(argv)
        if self.fail and self.fail in words:
            return 1, "", "boom"
        if "config --format json" in words:
            return 0, json.dumps(MODEL), ""
        if "config --hash" in words:
            return 0, "database h1\n", ""
        if argv[:2] == ["docker", "ps"]:
            return 0, "".join("id%d\n" % i for i, _ in enumerate(self.containers)), ""
        if argv[:2] == ["docker", "inspect"]:
            return 0, json.dumps(self.containers), ""
        if argv[:3] == ["docker", "image", "inspect"]:
            return 0, IMAGE_ID + "\n", ""
        if argv[:3] == ["docker", "network", "inspect"]:
            return 0, NETWORK_ID + "\n", ""
        raise AssertionError(argv)


def test_read_asks_compose_and_the_engine_and_judges():
    host = Host()
    assert compose_state.read(host, "/srv/db") == {"current": True, "reasons": []}
    assert host.asked[0] == ["docker", "compose", "--project-directory", "/srv/db", "config", "--format", "json"]
    assert host.asked[1] == ["docker", "compose", "--project-directory", "/srv/db", "config", "--hash", "*"]
    assert host.asked[2][-2:] == ["--filter", "label=com.docker.compose.project=smartid-database"]


def test_read_with_no_container_needs_no_inspect():
    host = Host(containers=())
    found = compose_state.read(host, "/srv/db")
    assert found == {"current": False, "reasons": ["database: 0 containers, compose keeps 1"]}
    assert not [argv for argv in host.asked if argv[:2] == ["docker", "inspect"]]


def test_a_failing_command_is_never_current():
    for step in ("config --format", "config --hash", "docker ps", "docker inspect"):
        found = compose_state.read(Host(fail=step), "/srv/db")
        assert found["current"] is False
        assert found["reasons"][0].endswith("failed: boom"), step
    # A missing image or network: asked one by one, then judged missing.
    assert compose_state.read(Host(fail="image inspect"), "/srv/db")["reasons"] == [
        "database: image smartid/postgres:dev is not on the host"]


def test_unreadable_answers_are_never_current():
    def garbled(argv):
        return 0, "not json", ""
    found = compose_state.read(garbled, "/srv/db")
    assert found["current"] is False and found["reasons"][0].startswith("reading docker compose config failed")


# Against the real engine and Compose: the hashes and labels are compose's own ------------------


def _docker_ok():
    return shutil.which("docker") and subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def _host(argv):
    done = subprocess.run(argv, capture_output=True, text=True)
    return done.returncode, done.stdout, done.stderr


COMPOSE = """\
name: {project}
services:
  probe:
    image: {image}
    command: ["sleep", "infinity"]
    stop_signal: SIGKILL
    environment:
      SETTING: "{setting}"
"""


@pytest.fixture()
def project(tmp_path):
    """A throwaway compose project of its own (its own image tag and network), removed after."""
    if not _docker_ok():
        pytest.skip("needs a running Docker engine")
    base = os.environ.get("COMPOSE_STATE_IMAGE", "smartid/base:bookworm")
    if subprocess.run(["docker", "image", "inspect", base], capture_output=True).returncode != 0:
        pytest.skip("needs the %s image (make engine)" % base)
    name = "compose-state-unit-%s" % uuid.uuid4().hex[:8]
    image = "smartid/compose-state-unit:%s" % name[-8:]
    subprocess.run(["docker", "tag", base, image], check=True)

    def write(setting="one"):
        (tmp_path / "docker-compose.yml").write_text(COMPOSE.format(project=name, image=image, setting=setting))

    def up():
        subprocess.run(["docker", "compose", "--project-directory", str(tmp_path), "up", "-d", "--quiet-pull"],
                       check=True, capture_output=True)

    write()
    try:
        yield types.SimpleNamespace(dir=str(tmp_path), image=image, write=write, up=up)
    finally:
        subprocess.run(["docker", "compose", "--project-directory", str(tmp_path), "down", "--timeout", "1"],
                       capture_output=True)
        subprocess.run(["docker", "rmi", image], capture_output=True)


@pytest.mark.docker
def test_against_compose_a_change_compose_would_apply_is_never_current(project):
    assert compose_state.read(_host, project.dir)["reasons"] == ["probe: 0 containers, compose keeps 1"]
    project.up()
    # What `up` just made is what `config --hash` and the image's id say now.
    assert compose_state.read(_host, project.dir) == {"current": True, "reasons": []}
    # A changed setting: compose would recreate.
    project.write(setting="two")
    assert compose_state.read(_host, project.dir)["reasons"][0].startswith("probe: configuration changed")
    project.up()
    assert compose_state.read(_host, project.dir)["current"] is True
    # The same tag on another image: compose would recreate.
    other = subprocess.run(["docker", "build", "-q", "-"], input="FROM %s\nLABEL compose-state-unit=1\n" % project.image,
                           capture_output=True, text=True, check=True).stdout.strip()
    subprocess.run(["docker", "tag", other, project.image], check=True)
    assert compose_state.read(_host, project.dir)["reasons"][0].startswith("probe: image %s is now" % project.image)
    project.up()
    assert compose_state.read(_host, project.dir)["current"] is True
    # A stopped container: compose would start it.
    subprocess.run(["docker", "compose", "--project-directory", project.dir, "stop"], check=True, capture_output=True)
    assert compose_state.read(_host, project.dir)["reasons"] == ["probe: container is exited"]

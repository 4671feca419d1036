# -*- coding: utf-8 -*-
"""Whether `docker compose up` in a project folder would change nothing (the gate in front of
each role's `community.docker.docker_compose_v2` run on a rerun; read by smartid.hermod.files).

`docker compose up` recreates a container when its `com.docker.compose.config-hash` label is not
the hash of the service's configuration now, or its `com.docker.compose.image` label is not the
id its image reference has now, or it is not on a network (by id) or volume (by name) the
project names; it starts one that is not running, creates missing ones, and (with
--remove-orphans) removes containers of services the file no longer has. `read` asks the host
the same questions, with compose's own answers for the hashes (`docker compose config --hash`),
and `judge` says "current" only when every answer is the one `up` would leave as it is. Anything
it cannot tell (a command that fails, an answer it cannot parse, a setting it does not check:
scale, build) is a reason to run compose as before. A container that is not healthy is a reason
too: the roles' health waits read compose's answer.
"""

from __future__ import annotations

import json

CONFIG_HASH_LABEL = "com.docker.compose.config-hash"
IMAGE_LABEL = "com.docker.compose.image"
PROJECT_LABEL = "com.docker.compose.project"
SERVICE_LABEL = "com.docker.compose.service"
ONEOFF_LABEL = "com.docker.compose.oneoff"


def _scale(service):
    """The number of containers compose keeps for a service, or None when it is not plainly 1."""
    scale = service.get("scale")
    replicas = (service.get("deploy") or {}).get("replicas")
    for value in (scale, replicas):
        if value is not None and value != 1:
            return None
    return 1


def _has_healthcheck(service):
    check = service.get("healthcheck")
    if not check or check.get("disable"):
        return False
    test = check.get("test") or []
    return not (test and test[0] == "NONE")


def judge(model, hashes, containers, image_ids, network_ids):
    """Reasons why `docker compose up` would change something; none: the project is current.

    model: `docker compose config --format json`; hashes: service to the hash
    `docker compose config --hash` gives; containers: `docker inspect` of every container with the
    project's label; image_ids: image reference to its id now (absent: no such image);
    network_ids: network name to its id now (absent: no such network).
    """
    reasons = []
    services = model.get("services") or {}
    networks = model.get("networks") or {}
    volumes = model.get("volumes") or {}
    if not services:
        return ["the compose file has no services"]
    by_service = {}
    for container in containers:
        labels = (container.get("Config") or {}).get("Labels") or {}
        name = labels.get(SERVICE_LABEL, "")
        if name not in services:
            reasons.append("container %s belongs to no service of the file (an orphan)" % container.get("Name", "?"))
            continue
        if labels.get(ONEOFF_LABEL, "False") == "True":
            continue
        by_service.setdefault(name, []).append(container)
    for name, service in sorted(services.items()):
        if service.get("build"):
            reasons.append("%s: has a build section (not compared)" % name)
            continue
        if _scale(service) is None:
            reasons.append("%s: scale other than 1 (not compared)" % name)
            continue
        found = by_service.get(name, [])
        if len(found) != 1:
            reasons.append("%s: %d containers, compose keeps 1" % (name, len(found)))
            continue
        reasons.extend("%s: %s" % (name, reason) for reason in
                       _container_reasons(service, found[0], hashes.get(name), image_ids,
                                          networks, network_ids, volumes))
    return reasons


def _container_reasons(service, container, wanted_hash, image_ids, networks, network_ids, volumes):
    labels = (container.get("Config") or {}).get("Labels") or {}
    state = container.get("State") or {}
    reasons = []
    if not wanted_hash:
        reasons.append("compose gave no configuration hash")
    elif labels.get(CONFIG_HASH_LABEL) != wanted_hash:
        reasons.append("configuration changed (config-hash %s, now %s)"
                       % (labels.get(CONFIG_HASH_LABEL), wanted_hash))
    image = service.get("image", "")
    image_id = image_ids.get(image)
    if not image_id:
        reasons.append("image %s is not on the host" % image)
    elif labels.get(IMAGE_LABEL) != image_id or container.get("Image") != image_id:
        reasons.append("image %s is now %s, the container runs %s" % (image, image_id, container.get("Image")))
    status = "paused" if state.get("Paused") else "restarting" if state.get("Restarting") else state.get("Status")
    if status != "running":
        reasons.append("container is %s" % (status or "in an unknown state"))
    elif (_has_healthcheck(service) or state.get("Health")) and \
            (state.get("Health") or {}).get("Status") != "healthy":
        reasons.append("container is %s" % ((state.get("Health") or {}).get("Status") or "without a health verdict"))
    attached = {settings.get("NetworkID") for settings in
                ((container.get("NetworkSettings") or {}).get("Networks") or {}).values()}
    for key in service.get("networks") or {}:
        network = (networks.get(key) or {}).get("name", key)
        network_id = network_ids.get(network)
        if not network_id:
            reasons.append("network %s does not exist" % network)
        elif network_id not in attached:
            reasons.append("not attached to network %s" % network)
    mounted = {mount.get("Name") for mount in container.get("Mounts") or [] if mount.get("Type") == "volume"}
    for volume in service.get("volumes") or []:
        if volume.get("type") != "volume" or not volume.get("source"):
            continue
        name = (volumes.get(volume["source"]) or {}).get("name", volume["source"])
        if name not in mounted:
            reasons.append("volume %s is not mounted" % name)
    return reasons


def _parse_hashes(text):
    hashes = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            hashes[parts[0]] = parts[1]
    return hashes


class _Uncertain(Exception):
    """A command `read` needs failed, or its answer could not be read: compose must run."""


def read(run, project_dir):
    """Ask the host, then judge: {"current": bool, "reasons": [...]}. `run(argv)` returns
    (rc, out, err). The commands only read: compose's model and hashes of the folder's file,
    the project's containers, the ids of their images and networks."""
    compose = ["docker", "compose", "--project-directory", project_dir]

    def output(argv, what):
        rc, out, err = run(argv)
        if rc != 0:
            raise _Uncertain("%s failed: %s" % (what, (err or "").strip()))
        return out

    def parsed(argv, what):
        out = output(argv, what)
        try:
            return json.loads(out)
        except ValueError as exc:
            raise _Uncertain("reading %s failed: %s" % (what, exc)) from None

    try:
        model = parsed(compose + ["config", "--format", "json"], "docker compose config")
        hashes = _parse_hashes(output(compose + ["config", "--hash", "*"], "docker compose config --hash"))
        project = model.get("name", "")
        if not project:
            raise _Uncertain("docker ps failed: no project name")
        ids = output(["docker", "ps", "--all", "--quiet", "--no-trunc",
                      "--filter", "label=%s=%s" % (PROJECT_LABEL, project)], "docker ps").split()
        containers = parsed(["docker", "inspect"] + ids, "docker inspect") if ids else []
    except _Uncertain as exc:
        return {"current": False, "reasons": [str(exc)]}
    services = model.get("services") or {}
    images = sorted({s.get("image") for s in services.values() if s.get("image")})
    image_ids = _ids(run, ["docker", "image", "inspect", "--format", "{{.Id}}"], images)
    networks = model.get("networks") or {}
    names = sorted({(networks.get(key) or {}).get("name", key)
                    for s in services.values() for key in (s.get("networks") or {})})
    network_ids = _ids(run, ["docker", "network", "inspect", "--format", "{{.Id}}"], names)
    reasons = judge(model, hashes, containers, image_ids, network_ids)
    return {"current": not reasons, "reasons": reasons}


def _ids(run, argv, names):
    """Name to id, one command for all; when one is missing the command fails, and each is
    asked alone so the others still count."""
    if not names:
        return {}
    rc, out, _err = run(argv + names)
    lines = out.split()
    if rc == 0 and len(lines) == len(names):
        return dict(zip(names, lines))
    found = {}
    for name in names:
        rc, out, _err = run(argv + [name])
        if rc == 0 and out.strip():
            found[name] = out.strip()
    return found

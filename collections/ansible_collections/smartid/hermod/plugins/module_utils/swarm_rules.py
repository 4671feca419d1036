# -*- coding: utf-8 -*-
"""The orchestrator and Docker Swarm topology rules (docker role), standard library only.

Pure functions of the inventory's groups and the engine settings: they run in the validation
play, before anything on a host changes, and every message names the variable or group to fix.
"""

from __future__ import annotations

import time

ORCHESTRATORS = ("compose", "swarm")


def _names(value):
    return [str(v) for v in (value or [])]


def check_topology(orchestrator="compose", host="", managers=None, workers=None, edge=None,
                   database=None, database_external=False, groups=None):
    """Broken rules of the swarm layout, each naming its group or variable.

    `groups` names the inventory groups (keys managers, workers, edge, database) for the
    messages. With compose there is nothing to check beyond the orchestrator's name.
    """
    if orchestrator not in ORCHESTRATORS:
        return ["smartid_orchestrator (docker_orchestrator) is '%s': use compose (one host, the "
                "guide's layout) or swarm (Docker Swarm across the swarm groups)." % orchestrator]
    if orchestrator != "swarm":
        return []
    groups = dict({"managers": "swarm_managers", "workers": "swarm_workers", "edge": "swarm_edge",
                   "database": "swarm_database"}, **(groups or {}))
    managers, workers = _names(managers), _names(workers)
    edge, database = _names(edge), _names(database)
    errors = []
    if not managers:
        errors.append("group %s is empty: a swarm needs at least one manager (an odd number: 1, 3, 5)"
                      % groups["managers"])
    elif len(managers) % 2 == 0:
        errors.append("group %s has %d hosts (%s): use an odd number of managers, so that a majority "
                      "survives the loss of one (an even number tolerates no more failures than one "
                      "manager fewer)" % (groups["managers"], len(managers), ", ".join(managers)))
    both = sorted(set(managers) & set(workers))
    if both:
        errors.append("hosts in both %s and %s: %s (a node is a manager or a worker)"
                      % (groups["managers"], groups["workers"], ", ".join(both)))
    members = set(managers) | set(workers)
    if host and host not in members:
        errors.append("host %s deploys the stack but is in neither %s nor %s"
                      % (host, groups["managers"], groups["workers"]))
    if not edge:
        errors.append("group %s is empty: Traefik runs on the edge nodes, at least one is needed"
                      % groups["edge"])
    for role, hosts in (("edge", edge), ("database", database)):
        outside = sorted(set(hosts) - members)
        if outside:
            errors.append("hosts in %s that are not swarm nodes (%s / %s): %s"
                          % (groups[role], groups["managers"], groups["workers"], ", ".join(outside)))
    if database_external:
        if database:
            errors.append("database_external is true but group %s lists %s: an external database "
                          "runs on no swarm node; empty the group" % (groups["database"], ", ".join(database)))
    elif len(database) != 1:
        errors.append("group %s must hold exactly one host (the node with the PostgreSQL volume), it "
                      "holds %d%s; or set database_external: true for a managed database"
                      % (groups["database"], len(database), (": " + ", ".join(database)) if database else ""))
    return errors


def check_live_restore(orchestrator="compose", install_source="docker-ce", configured=None,
                       running=None, swarm_state=""):
    """live-restore must be off on a swarm node: the engine refuses swarm mode with it.

    `configured` is the daemon.json value the role writes (not with an external engine);
    `running` what the engine reports (None when it does not answer yet); `swarm_state` the
    engine's swarm state file when it exists: an engine that has not left a swarm starts in
    swarm mode, and with live-restore on it does not start at all, whatever the orchestrator.
    Returns (errors, warnings).
    """
    errors, warnings = [], []
    member = bool(swarm_state)
    if orchestrator != "swarm" and not member:
        return errors, warnings
    if install_source != "external" and bool(configured):
        if orchestrator == "swarm":
            errors.append("docker_daemon_options sets live-restore true on a swarm node: the engine "
                          "refuses swarm mode with live-restore on; remove it (the role turns it off "
                          "for swarm)")
        else:
            errors.append("docker_daemon_options sets live-restore true, but this engine is still a "
                          "swarm member (%s): it would not start again with live-restore on; leave "
                          "the swarm first (docker swarm leave --force) or remove the option"
                          % swarm_state)
    if install_source == "external" and running is True and orchestrator == "swarm":
        errors.append("the engine on this swarm node runs with live-restore on "
                      "(docker_install_source: external, so the role does not manage daemon.json): "
                      "set \"live-restore\": false in its daemon.json and reload it first")
    if orchestrator != "swarm" and not errors and install_source != "external":
        warnings.append("this engine is still a swarm member (%s) while smartid_orchestrator is "
                        "%s: daemon.json keeps live-restore off, or the engine would not start; "
                        "run docker swarm leave --force if this host left the swarm"
                        % (swarm_state, orchestrator))
    return errors, warnings


def check_swarm_service(orchestrator="compose", tls_termination="traefik", replicas=1, health_probe="container"):
    """What the messaging stack supports on a swarm."""
    if orchestrator != "swarm":
        return []
    errors = []
    if tls_termination != "traefik":
        errors.append("messaging_tls_termination is '%s': with smartid_orchestrator swarm, TLS ends in "
                      "Traefik (the keystore as a swarm secret and TLS passthrough to the replicas are "
                      "not supported yet)" % tls_termination)
    try:
        count = int(replicas)
    except (TypeError, ValueError):
        count = 0
    if count < 1:
        errors.append("messaging_replicas is '%s': use a whole number of at least 1" % replicas)
    if health_probe != "container":
        errors.append("messaging_health_probe is '%s': a swarm rolls updates and rolls back on the "
                      "image's health check, so the profile must have one (container)" % health_probe)
    return errors


# Task states of a swarm service that count as "on its way up or running".
ACTIVE_STATES = ("New", "Pending", "Assigned", "Accepted", "Preparing", "Ready", "Starting", "Running")


class ScaleError(RuntimeError):
    """The service is missing or did not reach the wanted state in time."""


def scale_service(run, service, replicas, wait="none", timeout=180, delay=2, check_mode=False,
                  sleep=None, clock=None):
    """Scale a swarm service to `replicas` (detached) and, with `wait`, wait until:
    `stopped` - no task of the service is on its way up or running (nothing writes any more);
    `running` - `replicas` tasks that should run report Running (swarm says Running only once
    the image's health check passed). `run(argv)` returns (rc, out, err).

    Returns {before, changed}; before is the service's replicas before, None when it is not
    deployed (then nothing is done: the caller decides whether that is an error).
    """
    sleep = sleep or time.sleep
    clock = clock or time.monotonic
    rc, out, err = run(["docker", "service", "inspect", "--format",
                        "{{.Spec.Mode.Replicated.Replicas}}", service])
    if rc != 0:
        return {"before": None, "changed": False}
    before = int(out.strip() or 0)
    changed = before != int(replicas)
    if changed and not check_mode:
        rc, out, err = run(["docker", "service", "scale", "--detach", "%s=%d" % (service, int(replicas))])
        if rc != 0:
            raise ScaleError("docker service scale %s=%d failed: %s" % (service, int(replicas), err.strip()))
    if check_mode or wait == "none":
        return {"before": before, "changed": changed}
    deadline = clock() + timeout
    while True:
        if wait == "stopped":
            rc, out, err = run(["docker", "service", "ps", "--format", "{{.CurrentState}}", service])
            states = [line.split()[0] for line in out.splitlines() if line.strip()]
            if rc == 0 and not [s for s in states if s in ACTIVE_STATES]:
                break
        else:
            rc, out, err = run(["docker", "service", "ps", "--filter", "desired-state=running",
                                "--format", "{{.CurrentState}}", service])
            running = [line for line in out.splitlines() if line.startswith("Running")]
            if rc == 0 and len(running) >= int(replicas):
                break
        if clock() >= deadline:
            raise ScaleError("%s did not reach %s within %d s (tasks: %s)"
                             % (service, "0 running tasks" if wait == "stopped"
                                else "%d running tasks" % int(replicas), timeout,
                                ", ".join(out.split("\n")) or err.strip() or "none"))
        sleep(delay)
    return {"before": before, "changed": changed}

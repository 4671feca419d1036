#!/usr/bin/env python3
"""Complete lifecycles against the stack on a single-node Docker Swarm, and its faults under load.

The load, the receiver protocol and the accounting are bench/stack_lifecycle.py's (imported, not
copied): every accepted command must come back as one callback. This script points them at the
swarm stack of bench/swarm_inventory.yml (Traefik on host port 32543, the receiver's control port
32490) and adds what is specific to a swarm: the number of replicas, a rolling update to a new
image tag, kill -9 of one replica's process, a PostgreSQL restart.

The engine is shared and swarm mode changes it for everyone: run it holding the engine lock
exclusively. `all` switches the engine to swarm mode (live-restore off, reloaded), deploys,
measures, and puts the engine back (stacks removed, swarm left, live-restore on):

    flock -x /tmp/lock.engine python bench/swarm_lifecycle.py all
    python bench/swarm_lifecycle.py report bench/results/swarm_lifecycle-*.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(BENCH))
import stack_lifecycle as sl  # noqa: E402  pylint: disable=wrong-import-position

WORK = BENCH / ".swarm"
INVENTORY = BENCH / "swarm_inventory.yml"
PREFIX = "hermod-swarm-bench-"
HOME = Path("/opt/smartid-swarm-bench")
MESSAGING = PREFIX + "messaging_messaging"
DATABASE = PREFIX + "database_database"
RECEIVER_PORT = 32490

# The shared load and accounting, pointed at this stack.
sl.WORK = WORK
sl.SECRET = WORK / "messaging_client_key_secret"
sl.NETWORK = "hermod-swarm-bench"
sl.RECEIVER = PREFIX + "receiver"
sl.CONTROL = "http://127.0.0.1:%d" % RECEIVER_PORT
sl.TRAEFIK_CA = HOME / "docker" / "compose" / "traefik" / "ca" / "smartid-local-ca.crt"
sl.PATHS["traefik"] = {"addr": "127.0.0.1", "port": 32543, "tls": True, "host": "localhost"}


def docker(*args, check=True) -> str:
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True).stdout.strip()


def stack_containers() -> dict[str, str]:
    """Task name -> container id of this stack's containers on this node, and the receiver (CPU meter)."""
    found = {}
    for stack in ("traefik", "messaging", "database"):
        out = docker("ps", "--no-trunc", "--filter", "label=com.docker.stack.namespace=" + PREFIX + stack,
                     "--format", '{{.ID}} {{.Label "com.docker.swarm.task.name"}}')
        for line in out.splitlines():
            cid, name = line.split()
            found[name.rsplit(".", 1)[0] if stack == "traefik" else name] = cid
    receiver = docker("ps", "-q", "--no-trunc", "--filter", "name=^%s$" % sl.RECEIVER)
    if receiver:
        found[sl.RECEIVER] = receiver
    return found


def replica_containers() -> list[str]:
    return sorted(cid for name, cid in stack_containers().items() if name.startswith(MESSAGING))


sl.containers = stack_containers
sl.messaging_container = lambda: replica_containers()[0]
_cgroup_usage = sl.cgroup_usage


def cgroup_usage(cid: str) -> float:
    """A container the fault removed (a killed replica, a replaced task) has no cgroup left: 0."""
    try:
        return _cgroup_usage(cid)
    except OSError:
        return 0.0


sl.cgroup_usage = cgroup_usage


# --------------------------------------------------------------------------- engine and stack


def set_live_restore(value: bool) -> None:
    """daemon.json's live-restore, applied by a reload (SIGHUP): no restart, nobody's container stops."""
    path = Path("/etc/docker/daemon.json")
    conf = json.loads(path.read_text())
    conf["live-restore"] = value
    # As the docker role writes it (to_nice_json and a newline), so the role sees no change after.
    path.write_text(json.dumps(conf, indent=4, sort_keys=True, separators=(",", ": "), ensure_ascii=False) + "\n")
    os.kill(int(Path("/var/run/docker.pid").read_text()), 1)
    for _ in range(50):
        if docker("info", "--format", "{{.LiveRestoreEnabled}}") == str(value).lower():
            return
        time.sleep(0.2)
    raise SystemExit("the engine did not reload live-restore=%s" % value)


def engine_back() -> None:
    """Stacks removed, swarm left (its secrets, configs and overlay networks go with it), live-restore on."""
    docker("rm", "-f", sl.RECEIVER, check=False)
    if docker("info", "--format", "{{.Swarm.LocalNodeState}}") != "inactive":
        for stack in ("traefik", "messaging", "database"):
            docker("stack", "rm", PREFIX + stack, check=False)
        for _ in range(150):
            if not stack_containers():
                break
            time.sleep(1)
        # A leave can time out in the engine while it detaches the last overlay endpoints.
        for _ in range(5):
            docker("swarm", "leave", "--force", check=False)
            if docker("info", "--format", "{{.Swarm.LocalNodeState}}") == "inactive":
                break
            time.sleep(5)
    docker("volume", "rm", "-f", PREFIX + "database-data", check=False)
    # The rolling update's extra tags (the image itself stays: it is the deployed one's).
    for tag in docker("images", "--format", "{{.Repository}}:{{.Tag}}", check=False).splitlines():
        if "-roll" in tag.rpartition(":")[2]:
            docker("rmi", tag, check=False)
    set_live_restore(True)


def prepare() -> None:
    """The receiver's CA, certificate and basic auth (stack_lifecycle's setup), the stack's secrets."""
    sl.setup(None)
    for name, length in (("database_password", 32), ("messaging_client_key_secret", 32)):
        target = WORK / name
        if not target.exists():
            target.write_text(secrets.token_hex(length))
            target.chmod(0o600)


def deploy(replicas: int) -> float:
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"))
    start = time.time()
    subprocess.run(["ansible-playbook", "playbooks/site.yml", "-i", str(INVENTORY), "-e", "@" + str(WORK / "vars.yml"),
                    "-e", "messaging_replicas=%d" % replicas], cwd=REPO, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return round(time.time() - start, 1)


def scale(replicas: int) -> None:
    docker("service", "scale", "--detach=false", "%s=%d" % (MESSAGING, replicas))
    for _ in range(120):
        states = docker("service", "ps", MESSAGING, "--filter", "desired-state=running", "--format", "{{.CurrentState}}")
        if [s.split()[0] for s in states.splitlines()] == ["Running"] * replicas and len(replica_containers()) == replicas:
            return
        time.sleep(1)
    raise SystemExit("%s did not reach %d running replicas" % (MESSAGING, replicas))


def start_receiver() -> None:
    """stack_lifecycle's receiver (bench/stack_receiver.py), on this stack's network and port."""
    image = docker("service", "inspect", MESSAGING, "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}")
    if not docker("ps", "-q", "--filter", "name=^%s$" % sl.RECEIVER):
        docker("rm", "-f", sl.RECEIVER, check=False)
        aliases = [a for h in sl.CALLBACK_HOSTS.values() for a in ("--network-alias", h)]
        docker("run", "-d", "--name", sl.RECEIVER, "--network", sl.NETWORK, *aliases,
               "-p", "127.0.0.1:%d:8080" % RECEIVER_PORT, "--read-only", "--cap-drop", "ALL", "--no-healthcheck",
               "-v", "%s:/bench:ro" % BENCH, "-v", "%s:/work:ro" % WORK, "--entrypoint", "python3", image,
               "/bench/stack_receiver.py", "--cert", "/work/receiver.pem", "--key", "/work/receiver.key",
               "--auth-file", "/work/basic-auth")
    for _ in range(100):
        try:
            sl.control("/stats")
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("%s did not answer: %s" % (sl.RECEIVER, docker("logs", sl.RECEIVER, check=False)))


# --------------------------------------------------------------------------- faults


class Fault:
    """One fault at a set time while the load runs; the same interface as stack_lifecycle's."""

    def __init__(self, kind: str, at: float):
        self.kind, self.log = kind, []
        self.thread = threading.Thread(target=self.run, args=(at,), daemon=True)
        self.thread.start()

    def run(self, at):
        time.sleep(max(0.0, at - time.time()))
        self.log.append(("start", time.time()))
        if self.kind == "kill9":
            cid = replica_containers()[0]
            pid = int(docker("inspect", "-f", "{{.State.Pid}}", cid))
            # The service's own process, killed as a crash would: swarm starts a new task.
            os.kill(pid, 9)
            self.log.append(("killed", time.time(), cid[:12], pid))
        elif self.kind == "rolling":
            image = docker("service", "inspect", MESSAGING, "--format", "{{.Spec.TaskTemplate.ContainerSpec.Image}}")
            repo, _, tag = image.partition("@")[0].rpartition(":")
            new = "%s:%s-roll%d" % (repo, tag.split("-roll")[0], int(time.time()) % 100000)
            docker("tag", image.partition("@")[0], new)
            # start-first, one replica at a time, each monitored for messaging_swarm_update_monitor.
            docker("service", "update", "--detach=false", "--image", new, MESSAGING)
            state = docker("service", "inspect", MESSAGING, "--format", "{{.UpdateStatus.State}}")
            self.log.append(("updated", time.time(), new, state))
        elif self.kind == "pgrestart":
            # The swarm's restart of a service: the task stops (PostgreSQL shuts down cleanly),
            # then a new one starts on the same node and volume (stop-first). A `docker restart`
            # behind the swarm's back would race the swarm's own replacement task.
            old = docker("ps", "-q", "--filter", "label=com.docker.swarm.service.name=" + DATABASE)
            docker("service", "update", "--force", "--detach=false", DATABASE)
            new = docker("ps", "-q", "--filter", "label=com.docker.swarm.service.name=" + DATABASE)
            self.log.append(("restarted", time.time(), old[:12], new[:12]))

    def join(self):
        self.thread.join()


def run_fault(kind: str, rate: float, duration: float, after: float, args) -> dict:
    holder = {}

    def during(start):
        holder["f"] = Fault(kind, start + after)
        return holder["f"]

    since = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    result = sl.run_load("traefik", "open", rate, duration, args, during=during)
    return {"kind": kind, "rate": rate, "fault_after_s": after, "result": result, "fault_log": holder["f"].log,
            "service_errors": service_errors(since)}


def service_errors(since: str) -> list[str]:
    """The replicas' unhandled errors during a fault (first traceback lines), to tell what a 500 was."""
    lines = subprocess.run(["docker", "service", "logs", "--raw", "--since", since, PREFIX + "messaging_messaging"],
                           capture_output=True, text=True, check=False)
    lines = (lines.stdout + lines.stderr).splitlines()
    found = []
    for i, line in enumerate(lines):
        if "Unhandled error" in line:
            raised = [x for x in lines[i + 1:i + 60] if x.strip() and not x.startswith((" ", "Traceback"))]
            found.append(line.strip() + " | " + (raised[0].strip() if raised else ""))
    return found[:20]


def served_per_replica() -> dict[str, float]:
    probe = ("import urllib.request,re; t=urllib.request.urlopen('http://127.0.0.1:20400/actuator/prometheus',"
             "timeout=5).read().decode(); print(sum(float(v) for v in re.findall("
             "r'^hermod_commands_accepted_total(?:\\{[^}]*\\})? (\\S+)$', t, re.M)))")
    return {cid[:12]: float(docker("exec", cid, "python3", "-c", probe, check=False) or 0)
            for cid in replica_containers()}


# --------------------------------------------------------------------------- runs


def run_all(args) -> int:
    if docker("info", "--format", "{{.Swarm.LocalNodeState}}") != "inactive":
        raise SystemExit("the engine is in swarm mode already: not ours to use (or left by an interrupted run: "
                         "`python bench/swarm_lifecycle.py restore`)")
    doc = {"when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "cores": os.cpu_count(),
           "note": args.note, "scale": [], "faults": []}
    sl.RESULTS.mkdir(exist_ok=True)
    target = sl.RESULTS / ("swarm_lifecycle-%s.json" % dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ"))

    def save():
        target.write_text(json.dumps(doc, indent=1))

    set_live_restore(False)
    try:
        prepare()
        doc["deploy_s"] = deploy(3)
        doc["redeploy_s"] = deploy(3)
        start_receiver()
        for replicas in args.replicas:
            scale(replicas)
            before = served_per_replica()
            runs = [sl.run_load("traefik", "closed", 0, args.duration, args) for _ in range(args.rounds)]
            after = served_per_replica()
            doc["scale"].append({"replicas": replicas, "runs": runs,
                                 "lifecycles_per_s": sorted(r["lifecycles_per_s"] for r in runs)[len(runs) // 2],
                                 "accepted_per_replica": {k: after[k] - before.get(k, 0) for k in after}})
            save()
        scale(3)
        for kind in args.faults:
            duration = args.rolling_duration if kind == "rolling" else args.fault_duration
            doc["faults"].append(run_fault(kind, args.rate, duration, args.fault_after, args))
            save()
    finally:
        engine_back()
    save()
    print("wrote", target.relative_to(REPO))
    report_doc(doc)
    return 0


def report_doc(doc: dict) -> None:
    print("| replicas | lifecycles/s (median of %d) | accepted per replica | lost | errors |" % len(doc["scale"][0]["runs"])
          if doc["scale"] else "")
    print("| --- | --- | --- | --- | --- |")
    for s in doc["scale"]:
        print("| %d | %s | %s | %d | %d |" % (s["replicas"], s["lifecycles_per_s"],
                                             ", ".join("%d" % v for v in s["accepted_per_replica"].values()),
                                             sum(r["lost"] for r in s["runs"]), sum(r["errors"] for r in s["runs"])))
    print()
    print("| fault | offered/s | lifecycles | failed requests | callbacks | lost | duplicate ids | duplicate keys |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for f in doc["faults"]:
        r = f["result"]
        print("| %s | %s | %d | %d | %d | %d | %d | %d |" % (f["kind"], f["rate"], r["lifecycles"], r["errors"],
                                                            r["callbacks"], r["lost"], r["duplicate_ids"],
                                                            r["duplicate_keys"]))
    for f in doc["faults"]:
        if f["result"]["error_samples"]:
            print("%s errors: %s" % (f["kind"], f["result"]["error_samples"][:3]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("all")
    p.add_argument("--replicas", type=int, nargs="*", default=[1, 2, 3])
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--rate", type=float, default=100.0, help="offered lifecycles/s during the faults")
    p.add_argument("--fault-duration", type=float, default=40.0)
    p.add_argument("--rolling-duration", type=float, default=150.0)
    p.add_argument("--fault-after", type=float, default=5.0)
    p.add_argument("--faults", nargs="*", choices=["kill9", "pgrestart", "rolling"],
                   default=["kill9", "pgrestart", "rolling"])
    p.add_argument("--loadgens", type=int, default=2)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--users", type=int, default=8)
    p.add_argument("--callback-wait", type=float, default=120.0)
    p.add_argument("--stall", type=float, default=30.0)
    p.add_argument("--note", default="")
    sub.add_parser("restore", help="put the engine back after an interrupted run")
    p = sub.add_parser("report")
    p.add_argument("files", nargs="+")
    args = parser.parse_args()
    if args.cmd == "all":
        return run_all(args)
    if args.cmd == "restore":
        engine_back()
        return 0
    for name in args.files:
        report_doc(json.loads(Path(name).read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())

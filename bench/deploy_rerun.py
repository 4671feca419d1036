#!/usr/bin/env python3
"""`make deploy` rerun with nothing to change: wall time, changed count and module runs.

    # in a worktree, under the engine and deploy locks (the stack in /opt/smartid is shared):
    flock -s /tmp/lock.engine flock /tmp/lock.deploy python bench/deploy_rerun.py run after
    # the same for the tree before the change (a worktree of that commit), back to back:
    flock -s /tmp/lock.engine flock /tmp/lock.deploy python bench/deploy_rerun.py run before --tree ../before
    python bench/deploy_rerun.py plot        # bench/plots/deploy_rerun.png from the newest results

`run` deploys once to converge, then times three reruns (`ansible-playbook playbooks/site.yml`
with the per-task profile), noting the load average before and after each, then counts the
module runs of one more rerun at -vvv (one `EXEC ... python` line per module run, loop items
and delegated runs included). Each container's id must be the same before and after: a rerun
restarts nothing. The result goes to bench/results/deploy_rerun-<label>-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import datetime
import glob
import json
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
RECAP = re.compile(r"^\S+\s+: ok=\d+\s+changed=(\d+)\s+unreachable=\d+\s+failed=(\d+)", re.M)
MODULE_RUN = re.compile(r"EXEC /bin/sh -c '\S*python\S* && sleep 0'")


def _load():
    with open("/proc/loadavg", encoding="ascii") as handle:
        return float(handle.read().split()[0])


def _containers():
    out = subprocess.run(["docker", "ps", "--filter", "name=smartid-", "--format", "{{.Names}} {{.ID}} {{.Status}}"],
                         capture_output=True, text=True, check=True).stdout
    return sorted(line.split()[:2] for line in out.splitlines())


def _playbook(tree, *extra, profile=False):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(tree, "ansible.cfg"))
    if profile:
        env.update(ANSIBLE_CALLBACKS_ENABLED="ansible.posix.profile_tasks", PROFILE_TASKS_TASK_OUTPUT_LIMIT="all",
                   PROFILE_TASKS_SORT_ORDER="none")
    started = time.monotonic()
    proc = subprocess.run(["ansible-playbook", "playbooks/site.yml", *extra], cwd=tree, env=env,
                          capture_output=True, text=True, check=False)
    wall = time.monotonic() - started
    recap = RECAP.search(proc.stdout)
    if proc.returncode != 0 or recap is None:
        sys.exit("site.yml failed (rc=%d):\n%s" % (proc.returncode, proc.stdout[-4000:]))
    return wall, int(recap.group(1)), proc.stdout


def run(args):
    tree = os.path.abspath(args.tree)
    result = {"label": args.label, "tree": tree, "started": datetime.datetime.now(datetime.timezone.utc).isoformat(),
              "runs": []}
    before = _containers()
    for index in range(4):
        load_start = _load()
        wall, changed, _ = _playbook(tree, profile=True)
        entry = {"run": "converge" if index == 0 else "rerun", "wall_s": round(wall, 2), "changed": changed,
                 "load_start": load_start, "load_end": _load()}
        result["runs"].append(entry)
        print(json.dumps(entry))
    _, changed, out = _playbook(tree, "-vvv")
    result["module_runs"] = len(MODULE_RUN.findall(out))
    result["module_runs_changed"] = changed
    result["containers_unchanged"] = _containers() == before
    print("module runs: %d, containers unchanged: %s" % (result["module_runs"], result["containers_unchanged"]))
    os.makedirs(RESULTS, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    with open(os.path.join(RESULTS, "deploy_rerun-%s-%s.json" % (args.label, stamp)), "w", encoding="utf-8") as out_file:
        json.dump(result, out_file, indent=2)
    return 0


def _newest(label):
    files = sorted(glob.glob(os.path.join(RESULTS, "deploy_rerun-%s-*.json" % label)))
    if not files:
        sys.exit("no bench/results/deploy_rerun-%s-*.json: run `deploy_rerun.py run %s` first" % (label, label))
    with open(files[-1], encoding="utf-8") as handle:
        return json.load(handle)


def plot(args):
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    series = [_newest(label) for label in args.labels]
    fig, (walls, modules) = plt.subplots(1, 2, figsize=(9, 3.8))
    for position, data in enumerate(series):
        reruns = [r for r in data["runs"] if r["run"] == "rerun"]
        # Side by side, in run order, so that close values stay readable.
        xs = [position + 0.12 * (i - (len(reruns) - 1) / 2) for i in range(len(reruns))]
        walls.scatter(xs, [r["wall_s"] for r in reruns], zorder=3)
    walls.axhline(20, color="grey", linestyle="--", linewidth=1)
    walls.text(len(series) - 0.6, 20.5, "target 20 s", fontsize=8, color="grey")
    walls.set_xticks(range(len(series)), ["%s\n%s s\nload %.1f-%.1f" % (
        d["label"], ", ".join("%.0f" % r["wall_s"] for r in d["runs"] if r["run"] == "rerun"),
        min(r["load_start"] for r in d["runs"] if r["run"] == "rerun"),
        max(r["load_start"] for r in d["runs"] if r["run"] == "rerun")) for d in series], fontsize=8)
    walls.set_xlim(-0.5, len(series) - 0.2)
    walls.set_ylim(0, None)
    walls.set_ylabel("wall time of a rerun, s")
    walls.set_title("rerun with nothing to change (changed=0)", fontsize=9)
    modules.bar([d["label"] for d in series], [d["module_runs"] for d in series], color=["tab:red", "tab:green"][:len(series)])
    for position, data in enumerate(series):
        modules.annotate(str(data["module_runs"]), (position, data["module_runs"]), ha="center",
                         textcoords="offset points", xytext=(0, 3), fontsize=8)
    modules.set_ylabel("module runs on the hosts per rerun")
    modules.set_title("module runs (-vvv EXEC lines)", fontsize=9)
    fig.suptitle("make deploy rerun, 2-core machine, shared", fontsize=10)
    fig.tight_layout()
    os.makedirs(os.path.join(HERE, "plots"), exist_ok=True)
    fig.savefig(os.path.join(HERE, "plots", "deploy_rerun.png"), dpi=110)
    print("bench/plots/deploy_rerun.png")
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run_parser = sub.add_parser("run", help="converge, three timed reruns, module runs")
    run_parser.add_argument("label", help="name of the series, e.g. before or after")
    run_parser.add_argument("--tree", default=os.path.dirname(HERE), help="worktree to deploy from (default: this one)")
    plot_parser = sub.add_parser("plot", help="bench/plots/deploy_rerun.png from the newest results")
    plot_parser.add_argument("labels", nargs="*", default=["before", "after"])
    args = parser.parse_args()
    return run(args) if args.command == "run" else plot(args)


if __name__ == "__main__":
    sys.exit(main())

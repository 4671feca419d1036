# -*- coding: utf-8 -*-
"""The start-up log check: an alias line for every cacerts file before the banner, and
the vendor's troubleshooting steps when it fails."""

from __future__ import annotations

import json
import os
import re

from ansible_collections.smartid.hermod.plugins.module_utils.messaging_certs import pem_problem

# The last line of the block-letter HERMOD banner (`figlet -f standard HERMOD`), unanchored
# so a log prefix (timestamp, `docker compose logs` service column) does not hide it.
DEFAULT_BANNER_REGEX = r"\|_\|\s+\|_\|_____\|_\|\s+\\_\\_\|\s+\|_\|\\___/\|____/"
ALIAS_LINE_RE = re.compile(r"INFO: Adding certificate (?P<file>\S+) using alias (?P<alias>\S+)")


def analyze_startup_log(log_text, expected_files, banner_regex=DEFAULT_BANNER_REGEX):
    """Check that every expected cacerts file got an alias line before the banner.

    Returns a dict: ok, banner_found, banner_line (1-based or None), aliases
    ({file: alias} seen before the banner), missing (expected, never seen),
    late (seen only after the banner), unexpected (seen, not expected), order
    (files in the order their alias lines appeared).
    """
    banner_re = re.compile(banner_regex)
    expected = [os.path.basename(f) for f in expected_files or []]
    before, after, order = {}, {}, []
    banner_line = None
    for number, raw in enumerate((log_text or "").splitlines(), start=1):
        line = raw.rstrip("\r")
        match = ALIAS_LINE_RE.search(line)
        if match:
            name = os.path.basename(match.group("file"))
            if banner_line is None:
                before[name] = match.group("alias")
                order.append(name)
            else:
                after.setdefault(name, match.group("alias"))
            continue
        if banner_line is None and banner_re.search(line):
            banner_line = number
    missing = [f for f in expected if f not in before and f not in after]
    late = [f for f in expected if f not in before and f in after]
    unexpected = sorted(set(before) - set(expected))
    return {
        "ok": banner_line is not None and not missing and not late,
        "banner_found": banner_line is not None,
        "banner_line": banner_line,
        "aliases": before,
        "order": order,
        "missing": missing,
        "late": late,
        "unexpected": unexpected,
    }


def _mode_bits(mode):
    if isinstance(mode, str):
        return int(mode, 8)
    return int(mode)


def _can_read(stat, uid, gid, need_exec=False):
    """Would uid/gid (not root) pass the permission check for stat?"""
    mode = _mode_bits(stat.get("mode", "0"))
    want = 0o4 | (0o1 if need_exec else 0)
    if int(stat.get("uid", -1)) == int(uid):
        bits = (mode >> 6) & 0o7
    elif int(stat.get("gid", -1)) == int(gid):
        bits = (mode >> 3) & 0o7
    else:
        bits = mode & 0o7
    return bits & want == want


def diagnose_cacerts(analysis, mounts, container_dir, host_dir, dir_stat, file_stats,
                     file_contents, uid, gid, container_running=True, health=None):
    """Explain a failed alias check the way the vendor's troubleshooting does.

    mounts: docker inspect .Mounts; dir_stat/file_stats: ansible stat results
    (file_stats keyed by file name); file_contents: {name: text}.
    Returns a list of findings, most fundamental first.
    """
    findings = []
    if not container_running:
        findings.append("the messaging container is not running: see `docker compose logs` in the "
                        "messaging folder")
    elif health not in (None, "healthy"):
        findings.append("the service is not ready (health check: %s): readiness includes the "
                        "database connection; see `docker compose logs` in the messaging folder "
                        "and the database component" % health)
    mount = None
    for item in mounts or []:
        if item.get("Destination") == container_dir:
            mount = item
            break
    if mount is None:
        findings.append("cacerts folder not mounted: the container has no mount at %s "
                        "(expected %s:%s:ro in docker-compose.yml)" % (container_dir, host_dir,
                                                                        container_dir))
    elif os.path.normpath(mount.get("Source", "")) != os.path.normpath(host_dir):
        findings.append("cacerts folder mounted from the wrong place: %s is mounted from %s, "
                        "expected %s" % (container_dir, mount.get("Source"), host_dir))
    if dir_stat and dir_stat.get("exists") is False:
        findings.append("cacerts folder %s does not exist on the host" % host_dir)
    elif dir_stat and not _can_read(dir_stat, uid, gid, need_exec=True):
        findings.append("cacerts folder permissions: %s (mode %s, owner %s:%s) is not readable and "
                        "searchable by the container user %s:%s (needs 0755)"
                        % (host_dir, dir_stat.get("mode"), dir_stat.get("uid"),
                           dir_stat.get("gid"), uid, gid))
    for name in sorted(file_stats or {}):
        stat = file_stats[name]
        if not _can_read(stat, uid, gid):
            findings.append("cacerts file permissions: %s/%s (mode %s, owner %s:%s) is not readable "
                            "by the container user %s:%s (needs 0644)"
                            % (host_dir, name, stat.get("mode"), stat.get("uid"),
                               stat.get("gid"), uid, gid))
    for name in sorted(file_contents or {}):
        problem = pem_problem(file_contents[name])
        if problem:
            findings.append("cacerts file %s/%s %s" % (host_dir, name, problem))
    if analysis is not None:
        if not analysis.get("banner_found"):
            findings.append("the start-up banner (messaging_banner_regex) never appeared in the log "
                            "since the container started: the service did not finish starting")
        missing = analysis.get("missing", [])
        if missing and not analysis.get("order") and not analysis.get("late"):
            findings.append("no 'INFO: Adding certificate' line at all since the container started: "
                            "the service read no certificate from %s; check the cacerts mount "
                            "(%s:%s:ro in docker-compose.yml) and that the image reads cacerts/ "
                            "from that folder" % (container_dir, host_dir, container_dir))
        for name in missing:
            findings.append("no line 'INFO: Adding certificate %s using alias ...' in the log" % name)
        for name in analysis.get("late", []):
            findings.append("the start-up banner (log line %s) came before the alias line for %s: "
                            "the certificate was not loaded at start-up"
                            % (analysis.get("banner_line"), name))
    if not findings:
        findings.append("the alias check failed but mounts, permissions and PEM files look right: "
                        "read the container log")
    return findings


def read_container(run, project_dir, service, cacerts_dir):
    """What the start-up check reads on the host, in one go: the compose service's container
    (id), its `docker inspect` document, its log since its last start (stdout and stderr), and
    the *.cer files of cacerts/ with their mode and owner. `run(argv)` returns (rc, out, err).

    Returns a dict: container ('' when compose lists none), inspect ({} then), log, cacerts
    (sorted by name: path, mode as '0644', uid, gid), and error (a message, or '').
    """
    result = {"container": "", "inspect": {}, "log": "", "cacerts": [], "error": ""}
    rc, out, err = run(["docker", "compose", "--project-directory", project_dir, "ps", "--all",
                        "--quiet", service])
    if rc != 0:
        result["error"] = "docker compose ps in %s failed: %s" % (project_dir, err.strip())
        return result
    ids = out.split()
    if not ids:
        result["error"] = "no %s container in the compose project of %s" % (service, project_dir)
        return result
    result["container"] = ids[0]
    rc, out, err = run(["docker", "inspect", ids[0]])
    if rc != 0:
        result["error"] = "docker inspect %s failed: %s" % (ids[0], err.strip())
        return result
    result["inspect"] = (json.loads(out) or [{}])[0]
    started = result["inspect"].get("State", {}).get("StartedAt", "")
    rc, out, err = run(["docker", "logs", "--since", started, ids[0]] if started
                       else ["docker", "logs", ids[0]])
    if rc != 0:
        result["error"] = "docker logs %s failed: %s" % (ids[0], err.strip())
        return result
    result["log"] = out + "\n" + err
    try:
        names = sorted(n for n in os.listdir(cacerts_dir) if n.endswith(".cer"))
    except OSError:
        names = []
    for name in names:
        path = os.path.join(cacerts_dir, name)
        try:
            st = os.stat(path)
        except OSError:
            continue
        if not os.path.isfile(path):
            continue
        result["cacerts"].append({"path": path, "mode": "%04o" % (st.st_mode & 0o7777),
                                  "uid": st.st_uid, "gid": st.st_gid})
    return result

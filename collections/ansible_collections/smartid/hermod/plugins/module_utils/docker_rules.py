# -*- coding: utf-8 -*-
"""The docker role's rules: install source, the Compose plugin file, the engine and Compose
versions, and the probe that reads what those are on the host (smartid.hermod.docker_probe).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat

INSTALL_SOURCES = ("docker-ce", "distro", "external")


def check_install(install_source="docker-ce", compose_plugin_src=""):
    """Broken rules, each naming its variable."""
    if install_source not in INSTALL_SOURCES:
        return ["docker_install_source is '%s': use docker-ce (Docker's apt repository), distro "
                "(Debian's docker.io) or external (engine managed elsewhere)." % install_source]
    if install_source == "distro" and compose_plugin_src and not os.path.isfile(compose_plugin_src):
        return ["docker_compose_plugin_src: %s is not a file on the controller" % compose_plugin_src]
    return []


_VERSION = re.compile(r"[0-9]+(\.[0-9]+)*")


def _numbers(text):
    return tuple(int(part) for part in text.split("."))


def check_versions(socket="", socket_exists=False, socket_is_sock=False, only_if_present=False,
                   check_mode=False, install_source="docker-ce", server_rc=None, server_stdout="",
                   server_stderr="", compose_rc=None, compose_stdout="", min_version="",
                   compose_min_version=""):
    """The engine and Compose versions the host reported, against the bundle's minimums.

    `only_if_present` is validation before the install step: an engine that is not there or
    not running yet is the role's to install or start, so only a running engine is compared,
    and a missing Compose plugin is allowed. Otherwise (the final check) everything must answer.
    Returns (errors, warnings).
    """
    errors, warnings = [], []
    if not (socket_exists and socket_is_sock):
        if not only_if_present and not check_mode:
            errors.append("No Docker engine socket at %s%s" % (
                socket, " (docker_install_source is external: start the engine first)"
                if install_source == "external" else ""))
        return errors, warnings
    if server_rc != 0:
        message = "The Docker engine does not answer on %s: %s" % (socket, (server_stderr or "").strip())
        if only_if_present:
            # A socket file can outlive its engine (a machine image taken while the engine ran):
            # before the install step that only means "not running yet", which the role fixes.
            warnings.append(message + " (not compared yet: the role starts the engine)")
        else:
            errors.append(message)
    else:
        try:
            found = str(json.loads(server_stdout).get("Version", ""))
        except (ValueError, AttributeError):
            found = ""
        match = _VERSION.match(found)
        if not match:
            errors.append("The Docker engine on %s reports no version: %s" % (socket, server_stdout))
        elif _numbers(match.group(0)) < _numbers(min_version):
            errors.append("Docker engine %s is too old: the bundle needs %s or newer."
                          % (match.group(0), min_version))
    if compose_rc != 0:
        if not only_if_present:
            errors.append("Docker Compose v2 (docker compose) is not installed: the bundle needs %s or newer."
                          % compose_min_version)
    else:
        match = _VERSION.search(compose_stdout or "")
        found = match.group(0) if match and "." in match.group(0) else ""
        if not found or _numbers(found) < _numbers(compose_min_version):
            errors.append("Docker Compose %s is too old: the bundle needs %s or newer."
                          % (found, compose_min_version))
    return errors, warnings


def file_sha1(path):
    """The sha1 of a file, read in 1 MB blocks (the Compose plugin is 60 MB): the same digest on
    the controller (compose_plugin_source lookup) and on the host (the probe)."""
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _file_facts(path):
    """exists, kind, mode ('0644'), uid, gid and, for a regular file, its sha1."""
    try:
        info = os.stat(path)
    except OSError:
        return {"exists": False}
    found = {"exists": True, "isdir": stat.S_ISDIR(info.st_mode), "mode": "%04o" % stat.S_IMODE(info.st_mode),
             "uid": info.st_uid, "gid": info.st_gid}
    if stat.S_ISREG(info.st_mode):
        found["sha1"] = file_sha1(path)
    return found


def probe(run, socket, data_root, packages=(), files=(), patterns=None):
    """What the host says about its engine, read in one module run: whether the socket is
    there (and is a socket), `docker version` and `docker compose version` (only when it is:
    a socket file can outlive its engine, and the rule says so), and the engine's swarm state
    file (written on swarm init or join, removed on leave). Besides, for the install and
    configuration steps to skip what is already in place: which of `packages` dpkg lists as
    installed, `files` (exists, mode, owner, sha1) and whether each file of `patterns` has a
    line matching its regular expression (true when the file cannot be read). `run(argv)` returns (rc, out, err).
    """
    found = {"socket_exists": False, "socket_is_sock": False, "server_rc": None,
             "server_stdout": "", "server_stderr": "", "compose_rc": None, "compose_stdout": "",
             "swarm_state": "", "packages": {}, "files": {}, "patterns": {}}
    try:
        info = os.stat(socket)
        found["socket_exists"] = True
        found["socket_is_sock"] = stat.S_ISSOCK(info.st_mode)
    except OSError:
        pass
    if found["socket_exists"]:
        rc, out, err = run(["docker", "version", "--format", "{{json .Server}}"])
        found.update(server_rc=rc, server_stdout=out.rstrip("\r\n"), server_stderr=err.rstrip("\r\n"))
        rc, out, _err = run(["docker", "compose", "version", "--short"])
        found.update(compose_rc=rc, compose_stdout=out.rstrip("\r\n"))
    state_file = os.path.join(data_root, "swarm", "docker-state.json")
    if os.path.isfile(state_file):
        found["swarm_state"] = state_file
    if packages:
        found["packages"] = dict.fromkeys(packages, False)
        try:
            rc, out, _err = run(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Status}\\n"] + list(packages))
        except OSError:
            rc, out = 1, ""
        for line in out.splitlines():
            parts = line.split()
            if len(parts) == 2 and parts[0] in found["packages"]:
                found["packages"][parts[0]] = parts[1] == "installed"
    for path in files or ():
        found["files"][path] = _file_facts(path)
    for path, pattern in (patterns or {}).items():
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                found["patterns"][path] = bool(re.search(pattern, handle.read(), re.MULTILINE))
        except OSError:
            # Cannot tell (not installed yet): the step that needs it runs.
            found["patterns"][path] = True
    return found

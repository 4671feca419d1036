# -*- coding: utf-8 -*-
"""The docker role's controller-side rules: install source and the Compose plugin file.

The engine and Compose version probes run commands on the host, so they stay tasks
(roles/docker/tasks/versions.yml).
"""

from __future__ import annotations

import os

INSTALL_SOURCES = ("docker-ce", "distro", "external")


def check_install(install_source="docker-ce", compose_plugin_src=""):
    """Broken rules, each naming its variable."""
    if install_source not in INSTALL_SOURCES:
        return ["docker_install_source is '%s': use docker-ce (Docker's apt repository), distro "
                "(Debian's docker.io) or external (engine managed elsewhere)." % install_source]
    if install_source == "distro" and compose_plugin_src and not os.path.isfile(compose_plugin_src):
        return ["docker_compose_plugin_src: %s is not a file on the controller" % compose_plugin_src]
    return []

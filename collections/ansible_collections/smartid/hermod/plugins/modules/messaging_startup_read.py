#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Read what the messaging start-up check needs, in one module run."""

from __future__ import annotations

DOCUMENTATION = r"""
module: messaging_startup_read
short_description: The messaging container, its inspect document, its log since the start, and cacerts/
description:
  - Runs C(docker compose ps) for the service, C(docker inspect) and C(docker logs --since) its
    last start on the container it finds, and lists the C(*.cer) files of the cacerts folder with
    their mode and owner (what the start-up check compares), in one module run instead of five.
  - Changes nothing; the comparison itself is the C(messaging_analyze_log) filter.
options:
  project_dir:
    description: The compose project's folder.
    type: path
    required: true
  service:
    description: The compose service.
    type: str
    required: true
  cacerts_dir:
    description: The host folder mounted as the container's cacerts.
    type: path
    required: true
"""

RETURN = r"""
container:
  description: The container id.
  type: str
  returned: success
inspect:
  description: The container's C(docker inspect) document.
  type: dict
  returned: success
log:
  description: Its output since its last start (stdout, then stderr).
  type: str
  returned: success
cacerts:
  description: The C(*.cer) files, sorted (path, mode, uid, gid).
  type: list
  elements: dict
  returned: success
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smartid.hermod.plugins.module_utils.messaging_startup import read_container


def main():
    module = AnsibleModule(
        argument_spec=dict(
            project_dir=dict(type="path", required=True),
            service=dict(type="str", required=True),
            cacerts_dir=dict(type="path", required=True),
        ),
        supports_check_mode=True,
    )
    found = read_container(lambda argv: module.run_command(argv), module.params["project_dir"],
                           module.params["service"], module.params["cacerts_dir"])
    error = found.pop("error")
    if error:
        module.fail_json(msg=error, **found)
    module.exit_json(changed=False, **found)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Scale a swarm service and wait for it, in one module run."""

from __future__ import annotations

DOCUMENTATION = r"""
module: swarm_scale
short_description: Scale a swarm service to a number of replicas and wait until it got there
description:
  - Reads the service's replicas, scales it (C(docker service scale --detach)) when they differ,
    then with I(wait) waits until no task is on its way up or running (C(stopped), so nothing of
    the service writes any more) or until I(replicas) tasks run (C(running); swarm reports Running
    once the image's health check passed).
  - A service that is not deployed is not an error here (C(before) is null); I(required) makes it one.
options:
  service:
    description: The swarm service (C(<stack>_<service>)).
    type: str
    required: true
  replicas:
    description: Wanted number of replicas.
    type: int
    required: true
  wait:
    description: What to wait for after scaling.
    type: str
    choices: [none, stopped, running]
    default: none
  timeout:
    description: Seconds to wait at most.
    type: int
    default: 180
  required:
    description: Fail, with I(missing_msg), when the service is not deployed.
    type: bool
    default: false
  missing_msg:
    description: The message when a required service is missing.
    type: str
    default: the service is not deployed
"""

RETURN = r"""
before:
  description: Replicas before (null when the service is not deployed).
  type: int
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smartid.hermod.plugins.module_utils.swarm_rules import ScaleError, scale_service


def main():
    module = AnsibleModule(
        argument_spec=dict(
            service=dict(type="str", required=True),
            replicas=dict(type="int", required=True),
            wait=dict(type="str", choices=["none", "stopped", "running"], default="none"),
            timeout=dict(type="int", default=180),
            required=dict(type="bool", default=False),
            missing_msg=dict(type="str", default="the service is not deployed"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        result = scale_service(lambda argv: module.run_command(argv), p["service"], p["replicas"],
                               p["wait"], p["timeout"], check_mode=module.check_mode)
    except ScaleError as exc:
        module.fail_json(msg=str(exc))
    if result["before"] is None and p["required"]:
        module.fail_json(msg=p["missing_msg"], before=None)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

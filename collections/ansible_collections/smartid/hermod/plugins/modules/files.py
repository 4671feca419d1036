#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Ensure a set of folders and files on the host in one module run."""

from __future__ import annotations

DOCUMENTATION = r"""
module: files
short_description: Folders and files with their content, owner, group and mode, in one run
description:
  - Brings every entry of I(entries) to its wanted state, in order, in one module run (a role's
    folders and files would otherwise cost one module run each, twice for a copy or template).
  - A file is written to a temporary name in its folder with its owner, group and mode, checked
    with I(validate) when set, then renamed over the old one.
  - Supports check mode and diff mode; C(modified) names each path that changed (or would
    change), so a task can notify a handler for one file only.
  - Content is rendered on the controller (C(lookup('ansible.builtin.template', ...)),
    C(lookup('ansible.builtin.file', ..., rstrip=false))). It is never echoed back; a diff shows
    I(content), never I(secret_content).
options:
  entries:
    description: Folders and files, applied in this order.
    type: list
    elements: dict
    required: true
    suboptions:
      path:
        description: Absolute path on the host.
        type: str
        required: true
      state:
        description: C(directory), C(file) or C(absent) (a file that must not exist).
          Defaults to C(file) when I(content) is given, C(directory) otherwise.
        type: str
        choices: [directory, file, absent]
      content:
        description: The file's whole content; a diff shows it.
        type: str
      secret_content:
        description: The whole content of a file that holds secrets (instead of I(content));
          masked in every output, and a diff says only that it changed.
        type: str
      remote_src:
        description: A file on the host whose content this file gets (instead of I(content)).
        type: str
      secret:
        description: The I(remote_src) file holds a secret; a diff says only that it changed.
        type: bool
        default: false
      owner:
        description: User name or uid.
        type: raw
      group:
        description: Group name or gid.
        type: raw
      mode:
        description: Octal mode as a string, such as C("0640").
        type: str
      exclusive:
        description: For a folder, the folder holds only what this run's entries list directly
          in it; any other file in it is removed (after the entries are applied). A subfolder
          that is not listed is refused, not removed.
        type: bool
        default: false
      validate:
        description: Command run on the candidate file before it replaces the old one; C(%s)
          stands for the candidate's path.
        type: str
  compose_project_dir:
    description:
      - A compose project folder to read after the entries, when no entry changed (or would
        change). C(compose_current) then says whether C(docker compose up) there would change
        nothing (every container's configuration hash, image id, networks and volumes as the
        file says now, running and healthy, no orphan). It saves the compose run on a rerun,
        in the same module run as the files.
      - Only reads. When an entry changed, or anything cannot be read, C(compose_current) is
        false and compose runs.
    type: path
author: Smart ID bundle team
"""

EXAMPLES = r"""
- name: Ensure the component's folders and files are in place
  smartid.hermod.files:
    entries:
      - {path: /opt/smartid/docker/compose/x, owner: root, group: root, mode: "0755"}
      - path: /opt/smartid/docker/compose/x/docker-compose.yml
        content: "{{ lookup('ansible.builtin.template', 'docker-compose.yml.j2') }}"
        owner: root
        group: root
        mode: "0644"
        validate: docker compose --project-directory /opt/smartid/docker/compose/x -f %s config -q
  register: x_files
"""

RETURN = r"""
modified:
  description: The paths that changed (in check mode, that would change), in entry order.
  type: list
  elements: str
  returned: always
compose_current:
  description: With I(compose_project_dir), C(docker compose up) there would change nothing.
  type: bool
  returned: always
compose_reasons:
  description: With I(compose_project_dir), why compose must run (empty when current).
  type: list
  elements: str
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.smartid.hermod.plugins.module_utils import compose_state, host_files

ENTRY_SPEC = {
    "path": {"type": "str", "required": True},
    "state": {"type": "str", "choices": list(host_files.STATES)},
    "content": {"type": "str"},
    # Masked in the invocation shown at -vvv and anywhere else in the result.
    "secret_content": {"type": "str", "no_log": True},
    "remote_src": {"type": "str"},
    "secret": {"type": "bool", "default": False},
    "owner": {"type": "raw"},
    "group": {"type": "raw"},
    "mode": {"type": "str"},
    "validate": {"type": "str"},
    "exclusive": {"type": "bool", "default": False},
}


def main():
    module = AnsibleModule(
        argument_spec={"entries": {"type": "list", "elements": "dict", "required": True,
                                   "options": ENTRY_SPEC},
                       "compose_project_dir": {"type": "path"}},
        supports_check_mode=True,
    )
    try:
        changed, diffs = host_files.ensure(module.params["entries"], check_mode=module.check_mode)
    except (host_files.EntryError, OSError) as exc:
        module.fail_json(msg=str(exc))
    result = {"changed": bool(changed), "modified": changed, "compose_current": False, "compose_reasons": []}
    project_dir = module.params["compose_project_dir"]
    if project_dir and changed:
        result["compose_reasons"] = ["files changed: " + ", ".join(changed)]
    elif project_dir:
        found = compose_state.read(module.run_command, project_dir)
        result.update(compose_current=found["current"], compose_reasons=found["reasons"])
    if module._diff and diffs:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()

# -*- coding: utf-8 -*-
"""Filters over the database migration planner (plugins/module_utils/database_migrations.py)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: database_migration_plan
short_description: Ordered SQL files to run for a new install or an upgrade of the Smart ID schema
description:
  - Given the SQL file names of one engine, returns the files to run, in order.
  - New install (I(installed) empty or none) -> the target's C(V<target>__base_version.sql).
  - Upgrade -> every non-base_version file with installed < version <= target, in version order.
  - Fails on a downgrade, duplicate versions, malformed names, or a missing base file.
positional: installed, target
options:
  _input:
    description: SQL file names or paths (non-.sql names are ignored).
    type: list
    elements: str
    required: true
  installed:
    description: Installed schema version, or none/empty for a new install.
    type: str
  target:
    description: Target schema version (x.y.z).
    type: str
    required: true
"""

EXAMPLES = r"""
- name: Show the plan for a new install
  ansible.builtin.debug:
    msg: "{{ ['V1.0.0__base_version.sql', 'V1.1.0__x.sql'] | smartid.hermod.database_migration_plan(none, '1.0.0') }}"
"""

RETURN = r"""
_value:
  description: File names in the order they are to be run.
  type: list
  elements: str
"""

from ansible.errors import AnsibleFilterError
from ansible_collections.smartid.hermod.plugins.module_utils.database_migrations import MigrationError, plan_scripts


def database_migration_plan(files, installed, target):
    try:
        return plan_scripts([str(f) for f in files], installed or None, str(target))
    except MigrationError as exc:
        raise AnsibleFilterError("database_migration_plan: %s" % exc)


class FilterModule(object):
    def filters(self):
        return {"database_migration_plan": database_migration_plan}

#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Apply the Smart ID schema migrations to PostgreSQL with a Flyway-compatible history."""

from __future__ import annotations

DOCUMENTATION = r"""
module: database_migrate
short_description: Install or upgrade the Smart ID messaging schema from versioned SQL files
description:
  - Reads C(flyway_schema_history) to find the installed schema version, plans the SQL files
    to run (new install -> C(V<target>__base_version.sql); upgrade -> every non-base file with
    installed < version <= target, in version order) and applies each in its own transaction,
    recording it as Flyway does (type C(SQL), Flyway's CRC32 checksum).
  - A file that was applied and changed since (checksum mismatch) is an error, before any change.
  - Refuses downgrades, duplicate versions and malformed file names.
  - Check mode reports the plan and changes nothing.
  - The client runs inside the database container (C(docker_exec)), in a throwaway container
    of the database image (C(docker_run), for an external database) or on the host (C(local)).
    The password is passed through the environment, never on a command line.
options:
  sql_dir:
    description:
      - Directory on the managed host holding the engine's C(V<x.y.z>__<what>.sql) files.
      - Required unless I(inspect_only). With I(inspect_only), the applied files' checksums are
        checked against it (C(history_valid)).
    type: path
  target_version:
    description: Schema version to install or upgrade to (x.y.z). Required unless I(inspect_only).
    type: str
  inspect_only:
    description:
      - Only read the history and return C(installed_version) (and C(history)); never changes anything.
      - Lets a dry run plan on the controller with the P(smartid.hermod.database_migration_plan#filter) filter while the
        host's copy of the SQL files is not updated yet.
    type: bool
    default: false
  baseline_version:
    description:
      - The schema version of a database whose schema was made by hand (tables, no
        C(flyway_schema_history)). It is recorded as Flyway's C(BASELINE) row without running
        anything; files after it up to I(target_version) are applied on top.
      - Ignored (with a warning) for an empty database and once the database has a history.
      - Without it, a database with tables but no history is refused (it is not new).
    type: str
  sql_substitutions:
    description:
      - Text replacements (C(from) -> C(to)) applied to the SQL that runs, e.g. the database user
        that the vendor's files name. The recorded checksum stays that of the file as shipped.
    type: dict
    default: {}
extends_documentation_fragment:
  - smartid.hermod.database_client
author: Smart ID bundle team
"""

EXAMPLES = r"""
- name: Ensure the messaging schema is at 1.1.0
  smartid.hermod.database_migrate:
    sql_dir: /opt/smartid/docker/compose/database/sql/postgresql
    target_version: 1.1.0
    container: smartid-database
    login_user: hermod
    login_password: "{{ database_password }}"
    database: hermod
  no_log: true
"""

RETURN = r"""
history:
  description: Rows of flyway_schema_history (rank, version, script, checksum, success), null without the table.
  type: list
  elements: dict
  returned: inspect_only
tables:
  description: Tables outside the system schemas when there is no history (a hand-made schema), else empty.
  type: list
  elements: str
  returned: inspect_only
history_valid:
  description: With I(sql_dir), no applied file changed since and no row is marked failed (a real
    migration would pass that check); false when it would fail or the folder cannot be read.
  type: bool
  returned: inspect_only
baseline:
  description: The baseline version recorded in this run, or null.
  type: str
  returned: always
installed_version:
  description: Schema version before the run (null for a new install; the baseline when one is recorded).
  type: str
  returned: always
schema_version:
  description: Schema version after the run (unchanged in check mode).
  type: str
  returned: always
target_version:
  description: The requested version.
  type: str
  returned: always
mode:
  description: C(install), C(upgrade) or C(current).
  type: str
  returned: always
plan:
  description: SQL files to run (check mode) or that were run, in order.
  type: list
  elements: str
  returned: always
applied:
  description: Files applied in this run with version, checksum and installed_rank.
  type: list
  elements: dict
  returned: always
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.smartid.hermod.plugins.module_utils.database_client import (
    DATABASE_CLIENT_REQUIRED_IF,
    ClientError,
    database_client_argument_spec,
    database_client_for,
)
from ansible_collections.smartid.hermod.plugins.module_utils.database_flyway import (
    installed_version,
    list_tables,
    migrate,
    read_history,
    read_sql_files,
    validate_history,
)
from ansible_collections.smartid.hermod.plugins.module_utils.database_migrations import MigrationError


def main():
    module = AnsibleModule(
        argument_spec=dict(
            sql_dir=dict(type="path"),
            target_version=dict(type="str"),
            inspect_only=dict(type="bool", default=False),
            baseline_version=dict(type="str"),
            sql_substitutions=dict(type="dict", default={}),
            **database_client_argument_spec(),
        ),
        required_if=DATABASE_CLIENT_REQUIRED_IF + [
            ("inspect_only", False, ["sql_dir", "target_version"]),
        ],
        supports_check_mode=True,
    )
    p = module.params
    client = database_client_for(module)
    if p["inspect_only"]:
        try:
            history = read_history(client)
            tables = list_tables(client) if history is None else []
            result = dict(changed=False, history=history, installed_version=installed_version(history),
                          tables=tables)
        except (MigrationError, ClientError) as exc:
            module.fail_json(msg="cannot read the schema history: %s" % exc, error=str(exc))
        if p["sql_dir"]:
            # The check a real migration starts with; its error is the migration's to report.
            try:
                for warning in validate_history(history, read_sql_files(p["sql_dir"])):
                    module.warn(warning)
                result["history_valid"] = True
            except MigrationError:
                result["history_valid"] = False
        module.exit_json(**result)
    try:
        result = migrate(client, p["sql_dir"], p["target_version"], check_mode=module.check_mode,
                         baseline=p["baseline_version"] or None, substitutions=p["sql_substitutions"])
    except MigrationError as exc:
        partial = dict(getattr(exc, "result", {}))
        partial.pop("warnings", None)
        module.fail_json(msg=str(exc), error=str(exc), **partial)
    except ClientError as exc:
        module.fail_json(msg="cannot read the schema history: %s" % exc, error=str(exc))
    for warning in result.pop("warnings"):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()

#!/usr/bin/python
# -*- coding: utf-8 -*-
"""Dump the Smart ID database (pg_dump custom format) with retention, or restore a dump."""

from __future__ import annotations

DOCUMENTATION = r"""
module: database_backup
short_description: pg_dump / pg_restore of the Smart ID database, run where the database is
description:
  - C(state=dumped) writes C(<dest_dir>/<prefix>-<UTC timestamp>[-schema-<label>].dump) in
    pg_dump's custom format (mode 0600, written to a temporary name first), then keeps only
    the newest I(keep) dumps with that prefix.
  - C(state=restored) loads I(src) with pg_restore in one transaction. Refuses a database that
    already holds tables unless I(clean=true) (then existing objects are dropped first).
  - The client runs as in M(smartid.hermod.database_migrate) (C(docker_exec), C(docker_run) or C(local)); the
    password travels in the environment only.
options:
  state:
    description: C(dumped) or C(restored).
    type: str
    choices: [dumped, restored]
    default: dumped
  dest_dir:
    description: Directory for dumps (C(dumped)).
    type: path
  prefix:
    description: File name prefix of the dumps; retention counts only these files.
    type: str
    default: database
  label:
    description: Added to the file name (e.g. the schema version at dump time).
    type: str
  keep:
    description: Number of dumps with I(prefix) to keep (0 keeps all).
    type: int
    default: 5
  src:
    description: Dump to restore (C(restored)).
    type: path
  clean:
    description: Drop existing objects before restoring.
    type: bool
    default: false
extends_documentation_fragment:
  - smartid.hermod.database_client
author: Smart ID bundle team
"""

EXAMPLES = r"""
- name: Ensure a fresh dump exists before the upgrade
  smartid.hermod.database_backup:
    dest_dir: /opt/smartid/backups
    label: 1.0.0
    keep: 5
    container: smartid-database
    login_user: hermod
    login_password: "{{ database_password }}"
    database: hermod
  no_log: true
"""

RETURN = r"""
path:
  description: The dump written (dumped) or read (restored).
  type: str
  returned: success
size:
  description: Its size in bytes.
  type: int
  returned: success
removed:
  description: Older dumps removed by retention.
  type: list
  elements: str
  returned: state=dumped
"""

import datetime
import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.smartid.hermod.plugins.module_utils.database_client import (
    DATABASE_CLIENT_REQUIRED_IF,
    ClientError,
    database_client_argument_spec,
    database_client_for,
)

COUNT_TABLES = (
    "SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
    " WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
    " AND n.nspname NOT LIKE 'pg_toast%';"
)


def dump_name(prefix, label, now):
    stamp = now.strftime("%Y%m%dT%H%M%S.%fZ")
    suffix = "-schema-%s" % label if label else ""
    return "%s-%s%s.dump" % (prefix, stamp, suffix)


def select_expired(names, prefix, keep):
    """Names of dumps beyond the newest `keep` (names sort by their UTC timestamp)."""
    pattern = re.compile(r"^%s-\d{8}T\d{6}\.\d{6}Z(-schema-[^/]+)?\.dump$" % re.escape(prefix))
    ours = sorted(n for n in names if pattern.match(n))
    if keep <= 0:
        return []
    return ours[:-keep] if len(ours) > keep else []


def dump(module, client, p):
    dest_dir = p["dest_dir"]
    if not dest_dir:
        module.fail_json(msg="dest_dir is required for state=dumped")
    name = dump_name(p["prefix"], p["label"], datetime.datetime.now(datetime.timezone.utc))
    path = os.path.join(dest_dir, name)
    if module.check_mode:
        module.exit_json(changed=True, path=path, size=0, removed=[])
    if not os.path.isdir(dest_dir):
        module.fail_json(msg="backup directory %s does not exist" % dest_dir)
    tmp = os.path.join(dest_dir, ".%s.partial" % name)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            client.run("pg_dump", ["--format=custom", "--no-password"], stdout=handle)
            handle.flush()
            os.fsync(handle.fileno())
        if os.path.getsize(tmp) == 0:
            raise ClientError("pg_dump wrote nothing")
        os.rename(tmp, path)
    except ClientError as exc:
        os.unlink(tmp)
        module.fail_json(msg="backup failed: %s" % exc)
    removed = []
    for old in select_expired(os.listdir(dest_dir), p["prefix"], p["keep"]):
        os.unlink(os.path.join(dest_dir, old))
        removed.append(old)
    module.exit_json(changed=True, path=path, size=os.path.getsize(path), removed=removed)


def restore(module, client, p):
    src = p["src"]
    if not src or not os.path.isfile(src):
        module.fail_json(msg="dump to restore %r is not a file" % src)
    try:
        tables = int(client.psql(COUNT_TABLES).strip() or 0)
    except ClientError as exc:
        module.fail_json(msg="cannot reach the database: %s" % exc)
    if tables and not p["clean"]:
        module.fail_json(
            msg="database %s already holds %d tables: restore into an empty database, or set "
            "clean=true to drop the existing objects first" % (p["database"], tables)
        )
    if module.check_mode:
        module.exit_json(changed=True, path=src, size=os.path.getsize(src))
    args = ["--no-owner", "--exit-on-error", "--single-transaction", "--no-password"]
    if p["clean"]:
        args += ["--clean", "--if-exists"]
    try:
        with open(src, "rb") as handle:
            client.run("pg_restore", args, stdin=handle)
    except ClientError as exc:
        module.fail_json(msg="restore of %s failed (rolled back): %s" % (src, exc))
    module.exit_json(changed=True, path=src, size=os.path.getsize(src))


def main():
    module = AnsibleModule(
        argument_spec=dict(
            state=dict(type="str", default="dumped", choices=["dumped", "restored"]),
            dest_dir=dict(type="path"),
            prefix=dict(type="str", default="database"),
            label=dict(type="str"),
            keep=dict(type="int", default=5),
            src=dict(type="path"),
            clean=dict(type="bool", default=False),
            **database_client_argument_spec(),
        ),
        required_if=DATABASE_CLIENT_REQUIRED_IF + [
            ("state", "dumped", ["dest_dir"]),
            ("state", "restored", ["src"]),
        ],
        supports_check_mode=True,
    )
    p = module.params
    if p["label"] and not re.match(r"^[A-Za-z0-9._-]+$", p["label"]):
        module.fail_json(msg="label %r may hold only letters, digits, '.', '_' and '-'" % p["label"])
    client = database_client_for(module)
    if p["state"] == "dumped":
        dump(module, client, p)
    else:
        restore(module, client, p)


if __name__ == "__main__":
    main()

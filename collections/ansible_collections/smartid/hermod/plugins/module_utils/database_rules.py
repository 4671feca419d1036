# -*- coding: utf-8 -*-
"""The database role's rules: password, connection, container mode and the SQL files.

Each message names the variable at fault; none carries the password.
"""

from __future__ import annotations

import os
import re

from ansible_collections.smartid.hermod.plugins.module_utils.database_migrations import (
    MigrationError, plan_scripts)

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
VERSION = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")
CONNECTIONS = ("docker_exec", "docker_run", "local")


def _int(value, default=-1):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def check_password(password=None):
    """The password: set, 8 characters or more, one line, without the redaction marker."""
    if (isinstance(password, str) and len(password) >= 8 and "\n" not in password
            and "$smartid_pw$" not in password):
        return []
    return ["database_password must be set (vault), at least 8 characters, one line"]


def check_connection(name="", user="", port=0, host="", schema_version="", backup_keep=0,
                     client_connection="docker_exec", external=False):
    """Connection settings; one message listing every rule, as the settings are read together."""
    port = _int(port)
    ok = (IDENTIFIER.fullmatch(str(name)) and IDENTIFIER.fullmatch(str(user))
          and 1 <= port <= 65535 and str(host or "")
          and VERSION.fullmatch(str(schema_version)) and _int(backup_keep) >= 0
          and client_connection in CONNECTIONS
          and not (external and client_connection == "docker_exec"))
    if ok:
        return []
    return ["database settings: database_name/database_user must be SQL identifiers (letters, digits, _), "
            "database_port 1-65535, database_schema_version x.y.z (is %s), database_backup_keep >= 0, "
            "database_client_connection docker_run or local when database_external" % schema_version]


def check_container(external=False, image="", compose_dir="", backup_dir="", network_alias=""):
    """Container mode needs an image and absolute directories."""
    if external:
        return []
    if (image and os.path.isabs(str(compose_dir)) and os.path.isabs(str(backup_dir))
            and network_alias):
        return []
    return ["database_image must be set; database_compose_dir and database_backup_dir must be absolute paths"]


def check_sql_dir(migrate=True, sql_dir="", schema_version=""):
    """The SQL files on the controller: present, and their names plannable (format, duplicates).

    An upgrade plan from 0.0.0 reads every name. Whether a new install has its base file is
    known only on the host (which version is installed), so it is not checked here.
    """
    if not migrate:
        return []
    try:
        names = [os.path.join(sql_dir, n) for n in sorted(os.listdir(sql_dir))
                 if n.endswith((".sql", ".SQL")) and os.path.isfile(os.path.join(sql_dir, n))]
    except OSError:
        names = []
    if not names:
        return ["database_sql_dir %s holds no SQL files" % sql_dir]
    if not VERSION.fullmatch(str(schema_version)):
        return []  # check_connection names the version
    try:
        plan_scripts(names, "0.0.0", str(schema_version))
    except MigrationError as exc:
        return ["database_sql_dir %s: %s" % (sql_dir, exc)]
    return []

# -*- coding: utf-8 -*-
"""The database role's rules: password, connection, container mode, TLS to an external server
and the SQL files.

Each message names the variable at fault; none carries the password.
"""

from __future__ import annotations

import datetime
import os
import re

from ansible_collections.smartid.hermod.plugins.module_utils.database_migrations import (
    MigrationError, plan_scripts)

IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
VERSION = re.compile(r"(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")
CONNECTIONS = ("docker_exec", "docker_run", "local")
# libpq's and pgjdbc's sslmode values the bundle writes; prefer and allow fall back to plain
# text when the server offers no TLS, so a man in the middle could choose it: not offered.
SSL_MODES = ("disable", "require", "verify-ca", "verify-full")


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


def _pem_certificates(data):
    from cryptography import x509  # pylint: disable=import-outside-toplevel
    if b"-----BEGIN CERTIFICATE-----" not in data:
        return []
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError:
        return []


def _not_after(cert):
    value = getattr(cert, "not_valid_after_utc", None)
    if value is None:  # cryptography < 42
        value = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
    return value


def check_tls(external=False, sslmode="verify-full", ca_file="", now=None,
              sslmode_var="database_external_sslmode", ca_file_var="database_external_ca_file"):
    """TLS to an external server: a known sslmode; for verify-ca/verify-full a readable CA file
    (PEM, controller path) holding at least one certificate that has not expired. Returns
    (errors, warnings); the variable names are parameters so that a role wired from these
    settings names its own. A bundle's own container is on the Docker network: not checked."""
    if not external:
        return [], []
    if sslmode not in SSL_MODES:
        return ["%s must be one of %s (is %r)" % (sslmode_var, ", ".join(SSL_MODES), sslmode)], []
    if sslmode in ("disable", "require"):
        return [], ["%s is %s: the server's certificate is not verified%s; use verify-full with %s"
                    % (sslmode_var, sslmode,
                       " and the password crosses the network in clear" if sslmode == "disable" else
                       " (a man in the middle can read the password)", ca_file_var)]
    if not ca_file:
        return ["%s must name the database provider's CA file (PEM, on the controller) when %s is %s"
                % (ca_file_var, sslmode_var, sslmode)], []
    try:
        with open(ca_file, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        return ["%s %s is not a readable file (%s)" % (ca_file_var, ca_file, exc.strerror or exc)], []
    certs = _pem_certificates(data)
    if not certs:
        return ["%s %s holds no PEM certificate" % (ca_file_var, ca_file)], []
    if b"PRIVATE KEY-----" in data:
        return ["%s %s holds a private key: give the CA certificate only" % (ca_file_var, ca_file)], []
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if all(_not_after(c) < now for c in certs):
        return ["%s %s: every certificate in it has expired (the last on %s)"
                % (ca_file_var, ca_file, max(_not_after(c) for c in certs).date().isoformat())], []
    return [], []

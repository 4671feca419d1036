# -*- coding: utf-8 -*-
"""How the database modules reach PostgreSQL: psql / pg_dump / pg_restore, run

- ``docker_exec``: inside the database container (``docker exec -i``); no client on the host,
- ``docker_run``:  in a throwaway container of the database image (external database),
- ``local``:       on the host itself.

The password never appears on a command line: it is put into the environment of the docker
CLI (or of the local client) as PGPASSWORD and forwarded by name only (``-e PGPASSWORD``).

TLS (an external server): ``ssl_mode`` and ``ssl_root_cert`` become libpq's PGSSLMODE and
PGSSLROOTCERT, forwarded by name the same way. For ``docker_run`` the CA file on the host is
bind-mounted read-only into the throwaway container at SSL_ROOT_CERT_IN_CONTAINER.
"""

from __future__ import annotations

import os
import subprocess

CONNECTIONS = ("docker_exec", "docker_run", "local")
# libpq's modes the bundle uses; prefer and allow (plain text when the server offers no TLS)
# are left out on purpose.
SSL_MODES = ("disable", "require", "verify-ca", "verify-full")
SSL_ROOT_CERT_IN_CONTAINER = "/etc/ssl/smartid/database-ca.pem"


class ClientError(RuntimeError):
    """A client command failed; carries its exit code and error output."""

    def __init__(self, message, rc=None, stderr=""):
        super(ClientError, self).__init__(message)
        self.rc = rc
        self.stderr = stderr


class DatabaseClient(object):
    def __init__(
        self,
        connection,
        database,
        user,
        password=None,
        host=None,
        port=5432,
        container=None,
        image=None,
        network=None,
        docker_bin="docker",
        client_bin_dir=None,
        timeout=None,
        ssl_mode=None,
        ssl_root_cert=None,
    ):
        if connection not in CONNECTIONS:
            raise ValueError("connection must be one of %s, not %r" % (", ".join(CONNECTIONS), connection))
        if connection == "docker_exec" and not container:
            raise ValueError("connection docker_exec needs the container name")
        if connection == "docker_run" and not image:
            raise ValueError("connection docker_run needs the image")
        if ssl_mode and ssl_mode not in SSL_MODES:
            raise ValueError("ssl_mode must be one of %s, not %r" % (", ".join(SSL_MODES), ssl_mode))
        if ssl_mode in ("verify-ca", "verify-full") and not ssl_root_cert:
            raise ValueError("ssl_mode %s needs ssl_root_cert (the CA file, PEM)" % ssl_mode)
        self.connection = connection
        self.database = database
        self.user = user
        self.password = password
        # Inside the database container the server is on loopback; TCP so that the password
        # (the one the service will use) is checked, not the socket's trust.
        self.host = host or "127.0.0.1"
        self.port = int(port)
        self.container = container
        self.image = image
        self.network = network
        self.docker_bin = docker_bin
        self.client_bin_dir = client_bin_dir
        self.timeout = timeout
        self.ssl_mode = ssl_mode or None
        self.ssl_root_cert = ssl_root_cert or None

    def _tool(self, tool):
        if self.connection == "local" and self.client_bin_dir:
            return os.path.join(self.client_bin_dir, tool)
        return tool

    def argv(self, tool, args=()):
        """The command line for `tool` (psql, pg_dump, pg_restore); never holds the password."""
        conn = ["-h", self.host, "-p", str(self.port), "-U", self.user]
        if tool == "pg_restore":
            conn += ["-d", self.database]
        elif tool == "psql":
            conn += ["-d", self.database]
        else:  # pg_dump takes the database as its last argument
            conn += []
        tail = list(args)
        if tool == "pg_dump":
            tail = tail + [self.database]
        command = [self._tool(tool)] + conn + tail
        env_names = ["-e", "PGPASSWORD", "-e", "PGCONNECT_TIMEOUT", "-e", "PGAPPNAME"]
        if self.ssl_mode:
            env_names += ["-e", "PGSSLMODE"]
        if self.ssl_root_cert:
            env_names += ["-e", "PGSSLROOTCERT"]
        if self.connection == "docker_exec":
            return [self.docker_bin, "exec", "-i"] + env_names + [self.container] + command
        if self.connection == "docker_run":
            net = ["--network", self.network] if self.network else []
            mount = []
            if self.ssl_root_cert:
                # --mount, not -v: a host path with a colon or comma is refused, not misread.
                mount = ["--mount", "type=bind,source=%s,target=%s,readonly"
                         % (self.ssl_root_cert, SSL_ROOT_CERT_IN_CONTAINER)]
            return [self.docker_bin, "run", "--rm", "-i"] + net + mount + env_names + [self.image] + command
        return command

    def env(self):
        env = dict(os.environ)
        # Only what this client was given: a PGSSLMODE left in the caller's environment must
        # not weaken (or change) the connection.
        for name in ("PGPASSWORD", "PGSSLMODE", "PGSSLROOTCERT"):
            env.pop(name, None)
        if self.password:
            env["PGPASSWORD"] = self.password
        if self.ssl_mode:
            env["PGSSLMODE"] = self.ssl_mode
        if self.ssl_root_cert:
            env["PGSSLROOTCERT"] = (SSL_ROOT_CERT_IN_CONTAINER if self.connection == "docker_run"
                                    else self.ssl_root_cert)
        env["PGCONNECT_TIMEOUT"] = "10"
        env["PGAPPNAME"] = "smartid-ansible"
        env["LC_ALL"] = "C.UTF-8"
        return env

    def run(self, tool, args=(), stdin=None, stdout=None):
        """Run a client tool. stdin: bytes or a file object; stdout: a file object to write to
        (then the returned output is empty). Returns stdout as text; raises ClientError."""
        kwargs = {}
        if hasattr(stdin, "read"):
            kwargs["stdin"] = stdin
        else:
            kwargs["input"] = stdin if stdin is not None else b""
        try:
            proc = subprocess.run(
                self.argv(tool, args),
                stdout=stdout if stdout is not None else subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env(),
                timeout=self.timeout,
                **kwargs
            )
        except FileNotFoundError as exc:
            raise ClientError("cannot run %s: %s" % (tool, exc))
        except subprocess.TimeoutExpired:
            raise ClientError("%s did not finish within %s s" % (tool, self.timeout))
        err = proc.stderr.decode("utf-8", "replace")
        if self.password:
            err = err.replace(self.password, "********")
        if proc.returncode != 0:
            raise ClientError("%s failed (rc=%s): %s" % (tool, proc.returncode, err.strip()), proc.returncode, err)
        out = proc.stdout.decode("utf-8", "replace") if stdout is None else ""
        return out

    def psql(self, script, args=("-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1")):
        """Run a psql script given on stdin; returns its (unaligned, tuples-only) output."""
        if isinstance(script, str):
            script = script.encode("utf-8")
        return self.run("psql", args, stdin=script)


# The options that say how to reach the database are the same in every database module
# (database_backup, database_migrate): defined once here so that they take and check them alike.
# Each module's DOCUMENTATION still describes them, as ansible-doc reads only the module file.
DATABASE_CLIENT_REQUIRED_IF = [
    ("connection", "docker_exec", ["container"]),
    ("connection", "docker_run", ["image"]),
    ("ssl_mode", "verify-ca", ["ssl_root_cert"]),
    ("ssl_mode", "verify-full", ["ssl_root_cert"]),
]


def database_client_argument_spec():
    """The connection options of a database module's argument_spec (a new dict on each call)."""
    return dict(
        connection=dict(type="str", default="docker_exec", choices=list(CONNECTIONS)),
        container=dict(type="str"),
        image=dict(type="str"),
        network=dict(type="str"),
        login_host=dict(type="str", default="127.0.0.1"),
        login_port=dict(type="int", default=5432),
        login_user=dict(type="str", required=True),
        login_password=dict(type="str", required=True, no_log=True),
        database=dict(type="str", required=True),
        client_bin_dir=dict(type="path"),
        ssl_mode=dict(type="str", choices=list(SSL_MODES)),
        ssl_root_cert=dict(type="path"),
    )


def database_client_for(module):
    """The DatabaseClient described by a module's params (see database_client_argument_spec);
    settings that required_if cannot catch (an empty container name) fail the module cleanly."""
    params = module.params
    try:
        return DatabaseClient(
            params["connection"], params["database"], params["login_user"], params["login_password"],
            host=params["login_host"], port=params["login_port"], container=params["container"],
            image=params["image"], network=params["network"], client_bin_dir=params["client_bin_dir"],
            ssl_mode=params.get("ssl_mode"), ssl_root_cert=params.get("ssl_root_cert"),
        )
    except ValueError as exc:
        module.fail_json(msg=str(exc))

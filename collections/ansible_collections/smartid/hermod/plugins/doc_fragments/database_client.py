# -*- coding: utf-8 -*-
"""How the database modules reach the server: the options of database_client_argument_spec()."""

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  connection:
    description:
      - How to reach the database.
      - C(docker_exec) runs the client inside the database container, C(docker_run) in a
        throwaway container of I(image) (for an external database), C(local) on the host.
      - The password travels in the environment only, never on a command line.
    type: str
    choices: [docker_exec, docker_run, local]
    default: docker_exec
  container:
    description: Database container name (C(docker_exec)).
    type: str
  image:
    description: Image with the PostgreSQL client (C(docker_run)).
    type: str
  network:
    description: Docker network of the throwaway container (C(docker_run)).
    type: str
  login_host:
    description: Server address as seen by the client; inside the container this is loopback.
    type: str
    default: 127.0.0.1
  login_port:
    description: Server port.
    type: int
    default: 5432
  login_user:
    description: Database user that owns the schema.
    type: str
    required: true
  login_password:
    description: Password of I(login_user).
    type: str
    required: true
  database:
    description: Database name.
    type: str
    required: true
  client_bin_dir:
    description: Directory of the client tools for C(local) (default from PATH).
    type: path
  ssl_mode:
    description:
      - TLS to the server (libpq's C(PGSSLMODE)); unset leaves it to libpq's default.
      - C(verify-full) checks the server's chain against I(ssl_root_cert) and its host name against
        I(login_host); C(verify-ca) the chain only; C(require) encrypts without verifying.
    type: str
    choices: [disable, require, verify-ca, verify-full]
  ssl_root_cert:
    description:
      - CA file (PEM) on the host the client runs on, for C(verify-ca) and C(verify-full) (libpq's C(PGSSLROOTCERT)).
      - With C(docker_run) it is bind-mounted read-only into the throwaway container.
    type: path
notes:
  - >-
    The modules of the action group C(smartid.hermod.database) share these options; set them once
    with C(module_defaults: {group/smartid.hermod.database: {...}}).
"""

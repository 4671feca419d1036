"""An "external" PostgreSQL for end-to-end tests: a container of the bundle's database image
with ssl=on and a server certificate for a host name from a test CA ("the provider's"),
reachable on a Docker network under that name. Used by tests/playbook (compose) and the swarm
scenario (molecule/swarm), so both prove TLS against the same server setup."""

from __future__ import annotations

import os
import subprocess
import time

from pki import cert_pem, key_pem, make_cert, server_cert

HOST = "pg-tls.test"


def docker(*args, **kw):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=False, **kw)


def start_server(name, network, image, password, workdir, host=HOST):
    """Start the server as container name on network (alias host) and wait until it is healthy.
    Writes workdir/provider-ca.pem (the CA that signed the server certificate) and
    workdir/other-ca.pem (an unrelated CA); returns the provider CA's PEM."""
    ca_key, ca = make_cert("Provider CA")
    key, cert = server_cert(ca_key, ca, host)
    tls = workdir / "server-tls"
    tls.mkdir()
    (tls / "server.crt").write_bytes(cert_pem(cert))
    (tls / "server.key").write_bytes(key_pem(key))
    os.chmod(tls / "server.key", 0o600)
    # The image's server runs as postgres (uid 999) and refuses a key others can read.
    for path in (tls, tls / "server.crt", tls / "server.key"):
        os.chown(path, 999, 999)
    (workdir / "provider-ca.pem").write_bytes(cert_pem(ca))
    (workdir / "other-ca.pem").write_bytes(cert_pem(make_cert("Other CA")[1]))
    started = docker("run", "-d", "--name", name, "--network", network, "--network-alias", host,
                     "-e", "POSTGRES_USER=hermod", "-e", "POSTGRES_DB=hermod", "-e", "POSTGRES_PASSWORD",
                     "--mount", "type=bind,source=%s,target=/tls,readonly" % tls,
                     image, "postgres", "-c", "ssl=on", "-c", "ssl_cert_file=/tls/server.crt",
                     "-c", "ssl_key_file=/tls/server.key",
                     env=dict(os.environ, POSTGRES_PASSWORD=password))
    assert started.returncode == 0, started.stderr
    deadline = time.monotonic() + 120
    while docker("inspect", "-f", "{{.State.Health.Status}}", name).stdout.strip() != "healthy":
        assert time.monotonic() < deadline, docker("logs", name).stderr
        time.sleep(1)
    return cert_pem(ca)


def server_sql(name, sql):
    """One query on the server over its local socket; the result rows as psql -At prints them."""
    return docker("exec", name, "psql", "-X", "-At", "-U", "hermod", "-d", "hermod", "-c", sql)


def network_connections(name):
    """(client address, ssl) of every connection the server sees over the network."""
    out = server_sql(name, "SELECT host(a.client_addr), s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s "
                           "USING (pid) WHERE a.client_addr IS NOT NULL")
    assert out.returncode == 0, out.stderr
    return [(addr, ssl == "t") for addr, ssl in (line.split("|") for line in out.stdout.splitlines())]

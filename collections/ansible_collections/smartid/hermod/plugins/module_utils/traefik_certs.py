# -*- coding: utf-8 -*-
"""The traefik role's operator certificate concern: reads the PEM files on the controller.

Only findings (file names and reasons) come back, never key material. The checks themselves
are traefik_tls.check_certificate.
"""

from __future__ import annotations

import os

from ansible_collections.smartid.hermod.plugins.module_utils import traefik_tls

# Debian's and RHEL's system CA bundles: a chain may end at a CA the clients already trust.
SYSTEM_TRUST_FILES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


def resolve(path, base_dir):
    """`path` with ~ expanded, relative to `base_dir`, normalised."""
    path = os.path.expanduser(str(path))
    if base_dir and not os.path.isabs(path):
        path = os.path.join(str(base_dir), path)
    return os.path.normpath(path)


def read(path):
    with open(path, "rb") as handle:
        return handle.read()


def certificate_problems(cert_file, key_file, hostname, chain_file=None, trust_file=None,
                         min_valid_days=0, base_dir=None, system_trust_files=SYSTEM_TRUST_FILES):
    """Reasons (each naming its file) why the PEM files cannot serve `hostname`."""
    files = {"cert": cert_file, "key": key_file}
    if chain_file:
        files["chain"] = chain_file
    resolved = {role: resolve(path, base_dir) for role, path in files.items()}
    contents = {}
    problems = []
    for role, path in resolved.items():
        try:
            contents[role] = read(path)
        except OSError as exc:
            problems.append(f"{path}: cannot read the {role} file ({exc.strerror})")
    if problems:
        return problems

    trust = b""
    trust_files = [resolve(trust_file, base_dir)] if trust_file else []
    trust_files += [f for f in system_trust_files if os.path.exists(f)]
    for path in trust_files:
        try:
            trust += read(path) + b"\n"
        except OSError as exc:
            if trust_file and path == trust_files[0]:
                return [f"{path}: cannot read the trust file ({exc.strerror})"]
    try:
        days = int(min_valid_days)
    except (TypeError, ValueError):
        return ["traefik_tls_min_valid_days must be an integer, not '%s'" % min_valid_days]
    return traefik_tls.check_certificate(
        contents["cert"], contents["key"], str(hostname),
        chain_pem=contents.get("chain"), trust_pem=trust or None, min_valid_days=days,
        cert_name=resolved["cert"], key_name=resolved["key"],
        chain_name=resolved.get("chain", "chain file"),
    )


def check_operator_certificate(tls_termination="traefik", cert_file="", key_file="", hostname="",
                               chain_file="", trust_file="", min_valid_days=0, base_dir=None):
    """The operator's certificate, when TLS ends in Traefik and one is given: paired, valid, chained."""
    if tls_termination != "traefik" or not cert_file:
        return []
    if not key_file:
        return ["traefik_tls_cert_file is set (%s) but traefik_tls_key_file is empty." % cert_file]
    problems = certificate_problems(cert_file, key_file, hostname, chain_file=chain_file or None,
                                    trust_file=trust_file or None, min_valid_days=min_valid_days,
                                    base_dir=base_dir)
    if problems:
        return ["Refusing the TLS certificate: " + "; ".join(problems)]
    return []

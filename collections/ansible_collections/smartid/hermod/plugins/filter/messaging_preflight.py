# -*- coding: utf-8 -*-
"""Callback preflight: what to probe per client, and the verdicts of the probe's findings."""

from __future__ import annotations

from urllib.parse import urlsplit

from ansible.errors import AnsibleFilterError


def _field(client, snake):
    return client.get(snake, client.get(snake.replace("_", "-")))


def messaging_callback_targets(clients):
    """[{client, scheme, host, port}] from the inventory's client list."""
    targets = []
    for client in clients or []:
        url = _field(client, "callback_url") or ""
        try:
            parts = urlsplit(url)
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError as exc:
            raise AnsibleFilterError("messaging_clients %s: callback_url %r: %s"
                                     % (_field(client, "client_id"), url, exc)) from None
        targets.append({"client": _field(client, "client_id"), "scheme": parts.scheme,
                        "host": parts.hostname or "", "port": port})
    return targets


def _expected_here(client):
    value = _field(client, "callback_reachable")
    return True if value is None else str(value).lower() not in ("false", "no", "0", "off")


def messaging_callback_verdicts(probe, clients):
    """{'lines', 'errors', 'warnings'}: the table, and one message per failed client.

    A failure is an error, or a warning for a client whose callback_reachable is false (its
    callback host cannot be reached from here yet, e.g. a firewall opened later).
    """
    trusted = probe.get("trusted") or []
    expected = {_field(c, "client_id"): _expected_here(c) for c in clients or []}
    lines = ["%-10s %-32s %-15s %-10s %s" % ("client", "host:port", "address", "verdict", "certificate")]
    errors, warnings = [], []
    for r in probe.get("results") or []:
        cert = ("%s (issuer %s, until %s)" % (r.get("subject"), r.get("issuer"), r.get("not_after"))
                if r.get("subject") else "-")
        lines.append("%-10s %-32s %-15s %-10s %s" % (r["client"], "%s:%s" % (r["host"], r["port"]),
                                                     r.get("address") or "-", r["verdict"], cert))
        if r["verdict"] == "ok":
            continue
        if r["verdict"] == "untrusted":
            message = ("client %s: the callback server %s:%s presents %s, which does not verify against "
                       "the deployed cacerts/ (%s): %s. The CA that issued it%s is missing: add it to "
                       "messaging_cacerts_dir or messaging_cacerts"
                       % (r["client"], r["host"], r["port"],
                          ("'%s' issued by '%s'" % (r.get("subject"), r.get("issuer"))) if r.get("subject")
                          else "a certificate", ", ".join(trusted) or "empty", r.get("error"),
                          (" ('%s')" % r.get("issuer")) if r.get("issuer") else ""))
        else:
            message = "client %s: callback %s:%s %s: %s" % (r["client"], r["host"], r["port"], r["verdict"],
                                                            r.get("error"))
        (errors if expected.get(r["client"], True) else warnings).append(message)
    return {"lines": lines, "errors": errors, "warnings": warnings}


class FilterModule(object):
    def filters(self):
        return {"messaging_callback_targets": messaging_callback_targets,
                "messaging_callback_verdicts": messaging_callback_verdicts}

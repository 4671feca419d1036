# -*- coding: utf-8 -*-
"""The lifecycle check's table: one row per client and step (verify.yml's lifecycle option)."""

from __future__ import annotations

import json
from urllib.parse import urlsplit


def _seconds(delta):
    """'0:00:01.234567' (the command module's delta) -> 1.235."""
    try:
        hours, minutes, seconds = str(delta).split(":")
        return round(int(hours) * 3600 + int(minutes) * 60 + float(seconds), 3)
    except ValueError:
        return None


def callback_row(client, run, waited, timeout_seconds=None):
    """(ok, detail, seconds) for the callback of one run, from the stand-in's record line."""
    if waited is None:
        return False, "not waited for (an earlier step failed)", None
    seconds = _seconds(waited.get("delta"))
    if waited.get("rc") != 0:
        return False, "no callback with messageId %s within %ss (rc %s)" % (
            run.get("message_id"), timeout_seconds or "the timeout", waited.get("rc")), seconds
    try:
        entry = json.loads(waited.get("stdout", "").splitlines()[0])
    except (ValueError, IndexError):
        return False, "unreadable record line", seconds
    url = urlsplit(client.get("callback-url") or client.get("callback_url") or "")
    want_path = url.path.rstrip("/") + "/callback/provision"
    host = urlsplit("//" + str(entry.get("host", ""))).hostname or ""
    body = entry.get("body") or {}
    problems = []
    if entry.get("path") != want_path:
        problems.append("path %s, expected %s" % (entry.get("path"), want_path))
    if host.lower() != (url.hostname or "").lower():
        problems.append("host %s, expected %s" % (host, url.hostname))
    if body.get("status") != "answered":
        problems.append("status %s" % body.get("status"))
    if problems:
        return False, "; ".join(problems), seconds
    return True, "POST https://%s%s with basic auth, status answered" % (host, entry.get("path")), seconds


def messaging_lifecycle_table(runs, waits, clients=None, callbacks_visible=True, timeout_seconds=None):
    """{'rows': [...], 'lines': [...], 'failed': [client ids]} from the module and wait results."""
    by_message = {}
    for waited in waits or []:
        if waited.get("skipped"):
            continue
        by_message[(waited.get("item") or {}).get("message_id")] = waited
    rows, failed = [], []
    for run in runs or []:
        client = run.get("item") or {}
        cid = client.get("client-id") or client.get("client_id")
        steps = run.get("steps") or [{"step": "command", "ok": False, "seconds": None,
                                      "detail": run.get("msg", "the check did not run")}]
        for step in steps:
            rows.append({"client": cid, "step": step["step"], "ok": step["ok"], "seconds": step["seconds"],
                         "detail": step["detail"]})
        if callbacks_visible:
            ok, detail, seconds = callback_row(client, run, by_message.get(run.get("message_id"))
                                               if run.get("ok") else None, timeout_seconds)
            rows.append({"client": cid, "step": "callback", "ok": ok, "seconds": seconds, "detail": detail})
        else:
            rows.append({"client": cid, "step": "callback", "ok": None, "seconds": None,
                         "detail": "not observed: it goes to the client's own callback URL"})
        if any(r["ok"] is False for r in rows if r["client"] == cid):
            failed.append(cid)
    width = max([len(str(r["client"])) for r in rows] + [6])
    lines = ["%-*s  %-13s  %-6s  %8s  %s" % (width, "client", "step", "result", "time", "detail")]
    for r in rows:
        result = "PASS" if r["ok"] else ("-" if r["ok"] is None else "FAIL")
        took = "%.3fs" % r["seconds"] if isinstance(r["seconds"], (int, float)) else "-"
        lines.append("%-*s  %-13s  %-6s  %8s  %s" % (width, r["client"], r["step"], result, took, r["detail"]))
    return {"rows": rows, "lines": lines, "failed": failed}


class FilterModule(object):
    def filters(self):
        return {"messaging_lifecycle_table": messaging_lifecycle_table}

# -*- coding: utf-8 -*-
"""Input rules of the callback stand-in (an HTTPS receiver for IDM and DA callbacks).

Pure functions for the smartid.hermod.validate action: each returns messages naming the
variable; nothing is read or changed.
"""

from __future__ import annotations

import os
import re

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(r"^%s(?:\.%s)*$" % (_LABEL, _LABEL))


def check_callback_standin(enabled=False, hosts=None, basic_auth="", pki_dir="", compose_dir="",
                           port=443):
    """Errors of the stand-in's settings; none when it is off (it deploys nothing then)."""
    if not enabled:
        return []
    errors = []
    if not isinstance(hosts, list) or not hosts:
        errors.append("callback_standin_hosts must be a non-empty list of DNS names (the hosts "
                      "of the clients' callback_url)")
    else:
        bad = [str(h) for h in hosts if not isinstance(h, str) or len(h) > 253
               or not _HOST.match(h)]
        if bad:
            errors.append("callback_standin_hosts: not DNS names: %s" % ", ".join(bad))
        folded = [h.lower() for h in hosts if isinstance(h, str)]
        dups = sorted({h for h in folded if folded.count(h) > 1})
        if dups:
            errors.append("callback_standin_hosts names %s more than once" % ", ".join(dups))
    # The value is a secret: the message names the variable and the form, never the value.
    if not isinstance(basic_auth, str) or not re.match(r"^[^:\s]+:\S+$", basic_auth):
        errors.append("callback_standin_basic_auth must have the form user:password (no spaces, "
                      "a non-empty user and password)")
    for name, value in (("callback_standin_pki_dir", pki_dir),
                        ("callback_standin_compose_dir", compose_dir)):
        if not isinstance(value, str) or not value or not os.path.isabs(value):
            errors.append("%s must be an absolute path (is %r)" % (name, value))
    try:
        port_number = int(port)
    except (TypeError, ValueError):
        port_number = 0
    if not 1 <= port_number <= 65535:
        errors.append("callback_standin_port must be 1-65535 (is %s)" % (port,))
    return errors

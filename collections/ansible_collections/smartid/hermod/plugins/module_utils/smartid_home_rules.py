# -*- coding: utf-8 -*-
"""The smartid_home role's rules: SMARTIDHOME and the Docker network name."""

from __future__ import annotations

import os
import re

NETWORK_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")


def check_home(home="", network_name=""):
    """Broken rules, each naming its variable."""
    errors = []
    if not (isinstance(home, str) and home.startswith("/") and os.path.normpath(home) == home
            and home != "/"):
        errors.append("smartid_home must be an absolute path such as /opt/smartid, not '%s'" % home)
    if not (isinstance(network_name, str) and NETWORK_NAME.fullmatch(network_name)):
        errors.append("smartid_network_name '%s' is not a valid Docker network name" % network_name)
    return errors

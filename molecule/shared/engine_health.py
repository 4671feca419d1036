"""The engine's health verdict of a container, once it has settled.

A deploy ends when the container's own health check passes (the roles run it in the container);
the engine records its own verdict at its next interval, a few seconds later. Until then it says
`starting`. Tests that assert the engine's verdict wait for it to settle first, then assert it.
"""

from __future__ import annotations

import time


def settled_health(read_status, seconds=60.0, interval=1.0):
    """Poll read_status() until it is no longer 'starting' (or `seconds` pass); return the last
    status: 'healthy', 'unhealthy', 'none' or still 'starting' - the caller asserts."""
    deadline = time.monotonic() + seconds
    status = read_status()
    while status == "starting" and time.monotonic() < deadline:
        time.sleep(interval)
        status = read_status()
    return status

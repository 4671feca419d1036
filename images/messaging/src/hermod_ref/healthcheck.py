"""Container HEALTHCHECK: GET /actuator/health/liveness on the configured port and scheme.

The image has no curl; the port and http/https come from the same configuration file
the service reads, so the check follows `server.port` (or `management.server.port`, where the
actuator is when it is set) and `server.ssl.enabled`.
"""

import os
import ssl
import sys
import urllib.request

import yaml

from .config import normalise


def main() -> int:
    home = os.environ.get("HERMOD_HOME", os.getcwd())
    path = os.environ.get("HERMOD_CONFIG") or os.path.join(home, "config", "hermod-conf.yml")
    try:
        with open(path, encoding="utf-8") as fh:
            tree = normalise(yaml.safe_load(fh) or {}) or {}
    except Exception:
        tree = {}
    server = tree.get("server", {}) or {}
    management = (tree.get("management", {}) or {}).get("server", {}) or {}
    port = management.get("port") or server.get("port", 20400)
    tls = str((server.get("ssl") or {}).get("enabled", False)).lower() == "true"
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/actuator/health/liveness"
    # Liveness only asks whether this process answers; the certificate is checked elsewhere.
    context = ssl._create_unverified_context() if tls else None
    try:
        with urllib.request.urlopen(url, timeout=2, context=context) as resp:
            return 0 if resp.status == 200 else 1
    except Exception:
        return 1


if __name__ == "__main__":
    sys.exit(main())

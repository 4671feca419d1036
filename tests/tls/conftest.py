"""Fixtures of the TLS tests: a real Traefik test instance deployed with the traefik role.

By default the session deploys its own instance (everything named trtest-*):
  - networks trtest-net (the instance's "smartid" network) and trtest-outside (a separate
    network whose addresses are NOT in the instance's narrowed allow-list),
  - trtest-backend: a TEST FIXTURE stand-in for the messaging service
    (tests/tls/fixtures/standin_backend.py, alias `messaging` on trtest-net),
  - Traefik via `ansible-playbook tests/tls/deploy_test_instance.yml` with the bundle's
    generated CA, published on 127.0.0.1:$TRAEFIK_TEST_HTTP_PORT/$TRAEFIK_TEST_HTTPS_PORT.

Point the endpoint tests at a deployed stack instead (the allow-list and rotation tests always
use their own instance, because they need a narrowed list and must change certificates):
  TRAEFIK_TEST_URL        https://<host>[:port]  endpoint to test (e.g. https://localhost)
  TRAEFIK_TEST_CA         CA file that signs its certificate
                          (<smartid_home>/docker/compose/traefik/ca/smartid-local-ca.crt)
  TRAEFIK_TEST_CONNECT    address to connect to, when the host name does not resolve here
  TRAEFIK_TEST_HTTP_URL   http://<host>[:port] for the redirect test (default: port 80)
  TRAEFIK_TEST_CONTAINER  Traefik container, for the access-log test (default: smartid-traefik)
  TRAEFIK_TEST_BASE_PATH  base path of the messaging service (default: empty)
Test instance knobs: TRAEFIK_TEST_IMAGE (default: build images/traefik as smartid/traefik:trtest),
TRAEFIK_TEST_HTTP_PORT/TRAEFIK_TEST_HTTPS_PORT (18080/18443), TRAEFIK_TEST_KEEP=1 (leave it running).
"""

from __future__ import annotations

import os
import sys
import urllib.parse
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

# pylint: disable=wrong-import-position
from stack import (  # noqa: E402,F401  (re-exported for the test modules)
    BASE_IMAGE, NET, OUTSIDE_NET, REPO, SSLYZE_VENV, Instance, container_ip, container_state,
    create_test_instance, destroy_test_instance, docker, run,
)
from tlsclient import Endpoint  # noqa: E402


@pytest.fixture(scope="session")
def test_instance():
    """Our own Traefik instance with a narrowed allow-list (loopback + trtest-net)."""
    instance = create_test_instance()
    yield instance
    if os.environ.get("TRAEFIK_TEST_KEEP") != "1":
        destroy_test_instance(instance)


@pytest.fixture(scope="session")
def target(request):
    """The endpoint under test: $TRAEFIK_TEST_URL if set, else the session's test instance."""
    url = os.environ.get("TRAEFIK_TEST_URL")
    if not url:
        instance = request.getfixturevalue("test_instance")
        return instance
    parsed = urllib.parse.urlsplit(url)
    http_url = os.environ.get("TRAEFIK_TEST_HTTP_URL") or f"http://{parsed.hostname}"
    ca_file = os.environ.get("TRAEFIK_TEST_CA")
    if not ca_file:
        pytest.fail("TRAEFIK_TEST_URL needs TRAEFIK_TEST_CA (the CA file that signs the served certificate)")
    endpoint = Endpoint(
        hostname=parsed.hostname, connect=os.environ.get("TRAEFIK_TEST_CONNECT", parsed.hostname),
        port=parsed.port or 443, ca_file=ca_file, base_path=os.environ.get("TRAEFIK_TEST_BASE_PATH", ""),
    )
    return Instance(
        endpoint=endpoint, http_port=urllib.parse.urlsplit(http_url).port or 80, component_dir=None,
        container=os.environ.get("TRAEFIK_TEST_CONTAINER", "smartid-traefik"), variables={},
    )


@pytest.fixture(scope="session")
def sslyze_python():
    """A Python with sslyze: the test venv's when it has it (requirements/test.txt), else a separate venv
    made on first use from tests/tls/requirements-sslyze.txt (sslyze caps cryptography)."""
    if run(sys.executable, "-c", "import sslyze", check=False).returncode == 0:
        return Path(sys.executable)
    python = SSLYZE_VENV / "bin" / "python"
    if not python.exists():
        run(sys.executable, "-m", "venv", SSLYZE_VENV)
        run(python, "-m", "pip", "install", "-q", "-r", HERE / "requirements-sslyze.txt", timeout=900)
    return python

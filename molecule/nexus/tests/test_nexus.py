"""The nexus profile against the stand-in pulled from the authenticated registry.

First the converged stack (image shape, registry pull, start-up log, health from the host and
through Traefik under /hermod/rest), then negative runs of site.yml against the same instance:
a wrong registry password and a tag missing from the registry fail before anything changes,
and a service that logs no alias line is diagnosed with the cacerts mount named. The last one
changes the deployment, so it runs last."""
import json
import os
import re
import ssl
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
import yaml

PROJECT = os.environ.get("MOLECULE_PROJECT_DIRECTORY", os.path.join(os.path.dirname(__file__), "..", "..", ".."))
EPHEMERAL = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY", "")
SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOME = "/opt/smartid-molecule-nexus"
COMPOSE = HOME + "/docker/compose"
NETWORK = "smartid-molecule-nexus"
PUBLIC = "https://localhost:30443"

sys.path.insert(0, os.path.join(PROJECT, "collections"))
from ansible_collections.smartid.hermod.plugins.module_utils import messaging_startup  # noqa: E402  pylint: disable=wrong-import-position


def scenario_vars():
    with open(os.path.join(SCENARIO, "molecule.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)["provisioner"]["inventory"]["host_vars"]["nexus-molecule"]


VARS = scenario_vars()
IMAGE = VARS["messaging_image"]
PASSWORD = VARS["messaging_registry_password"]


def docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


def container(component):
    cid = docker("compose", "--project-directory", "%s/%s" % (COMPOSE, component), "ps", "-q",
                 component).stdout.strip()
    assert cid, component
    return json.loads(docker("inspect", cid).stdout)[0]


def messaging_log():
    info = container("messaging")
    logs = docker("logs", "--since", info["State"]["StartedAt"], info["Id"])
    return logs.stdout + logs.stderr


def compose_state():
    with open(COMPOSE + "/messaging/docker-compose.yml", encoding="utf-8") as handle:
        compose = handle.read()
    return compose, container("messaging")["State"]["StartedAt"]


def site(*extra_vars, verbosity=None):
    """site.yml against the scenario's instance, as molecule's converge runs it."""
    env = dict(os.environ,
               ANSIBLE_CONFIG=os.path.join(PROJECT, "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(PROJECT, "collections") + ":~/.ansible/collections:/usr/share/ansible/collections",
               ANSIBLE_PIPELINING="True", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    argv = [os.path.join(os.path.dirname(sys.executable), "ansible-playbook"),
            "-i", os.path.join(EPHEMERAL, "inventory"), os.path.join(PROJECT, "playbooks", "site.yml")]
    for item in extra_vars:
        argv += ["-e", json.dumps(item)]
    if verbosity:
        argv.append("-" + "v" * verbosity)
    run = subprocess.run(argv, capture_output=True, text=True, env=env, check=False, timeout=1800)
    return run.returncode, run.stdout + run.stderr


def recap_changed(output):
    match = re.search(r"nexus-molecule\s*:\s*ok=\d+\s+changed=(\d+)", output)
    assert match, output[-3000:]
    return int(match.group(1))


# ------------------------------------------------------------------ the converged stack

def test_image_is_product_shaped():
    info = json.loads(docker("image", "inspect", IMAGE).stdout)[0]
    assert info["Config"]["User"] == "docker"
    assert info["Config"].get("Healthcheck") is None
    probe = docker("run", "--rm", "--network", "none", "--entrypoint", "/bin/sh", IMAGE, "-c",
                   "id -un; echo $HOME; for t in python3 python curl wget; do command -v $t; done; true")
    assert probe.stdout.split() == ["docker", "/home/docker"], probe.stdout


def test_image_came_from_the_registry_with_credentials():
    info = json.loads(docker("image", "inspect", IMAGE).stdout)[0]
    assert any(d.startswith("127.0.0.1:5000/smartid-digitalaccess/hermod@sha256:") for d in info["RepoDigests"])
    assert container("messaging")["Config"]["Image"] == IMAGE
    # Anonymous pulls are refused: the deployment had to log in.
    anonymous = docker("--config", "/nonexistent-docker-config", "pull", "127.0.0.1:5000/smartid-digitalaccess/hermod:standin",
                       check=False)
    assert anonymous.returncode != 0 and "no basic auth credentials" in anonymous.stderr


def test_no_registry_credential_is_left_on_the_instance(host):
    config = host.file("/root/.docker/config.json")
    if config.exists:
        assert "127.0.0.1:5000" not in json.loads(config.content_string).get("auths", {})
    leftovers = host.run("find /tmp -maxdepth 1 -name '*-docker-login'")
    assert leftovers.rc == 0 and leftovers.stdout.strip() == ""


def test_nexus_profile_settings_reach_the_compose_file():
    compose = yaml.safe_load(compose_state()[0])
    service = compose["services"]["messaging"]
    assert service["image"] == IMAGE
    assert "healthcheck" not in service and "read_only" not in service
    assert "/home/docker/cacerts" in " ".join(service["volumes"])


def test_guide_shaped_log_passes_the_check():
    log = messaging_log()
    result = messaging_startup.analyze_startup_log(log, ["Callback-CA.cer"])
    assert result["ok"], log
    assert result["aliases"] == {"Callback-CA.cer": "callback-ca"}
    # The stand-in writes under its home: the writable root file system is what lets it start.
    files = docker("exec", container("messaging")["Id"], "ls", "/home/docker/logs").stdout.split()
    assert "hermod.log" in files


def test_actuator_answers_from_the_host_outside_the_base_path():
    address = container("messaging")["NetworkSettings"]["Networks"][NETWORK]["IPAddress"]
    with urllib.request.urlopen("http://%s:20400/actuator/health" % address, timeout=10) as resp:
        assert json.loads(resp.read()) == {"status": "UP"}


def test_traefik_health_check_keeps_the_backend_up_under_the_base_path():
    ctx = ssl.create_default_context(cafile=COMPOSE + "/traefik/ca/smartid-local-ca.crt")
    # The stand-in answers its own 404 only when Traefik's load-balancer health check on
    # /actuator/health has marked it up; a backend marked down gives Traefik's 503.
    try:
        urllib.request.urlopen(PUBLIC + "/hermod/rest/ms/command/x", context=ctx, timeout=15)
        status, body = 200, b""
    except urllib.error.HTTPError as err:
        status, body = err.code, err.read()
    assert status == 404, (status, body)
    assert json.loads(body)["path"] == "/hermod/rest/ms/command/x"
    dynamic = open(COMPOSE + "/traefik/config/dynamic/http.yml", encoding="utf-8").read()
    assert "path: \"/actuator/health\"" in dynamic


def test_nothing_restarted():
    assert container("messaging")["RestartCount"] == 0


# ------------------------------------------------------------------ negative runs

def test_wrong_registry_password_fails_clearly_and_changes_nothing():
    before = compose_state()
    wrong = "wrong-registry-pw-4471"
    rc, out = site({"messaging_image": VARS["nexus_missing_image"], "messaging_registry_password": wrong},
                   verbosity=3)
    assert rc != 0
    assert "127.0.0.1:5000 refused the login of messaging_registry_username 'nexus-ci'" in out, out[-3000:]
    assert wrong not in out and PASSWORD not in out
    assert recap_changed(out) == 0
    assert compose_state() == before


def test_tag_missing_from_the_registry_fails_clearly_and_changes_nothing():
    before = compose_state()
    rc, out = site({"messaging_image": VARS["nexus_missing_image"]}, verbosity=3)
    assert rc != 0
    assert "messaging_image '%s' could not be pulled" % VARS["nexus_missing_image"] in out, out[-3000:]
    assert "check messaging_image" in out
    assert PASSWORD not in out
    assert recap_changed(out) == 0
    assert compose_state() == before


def test_log_without_alias_lines_names_the_cacerts_mount():
    # An image that looks for its certificates elsewhere: the bundle mounts cacerts/ where the
    # image does not read it, so the service starts without a single alias line.
    rc, out = site({"messaging_container_cacerts_dir": "/home/docker/trusted"})
    assert rc != 0
    assert "no 'INFO: Adding certificate' line at all since the container started" in out, out[-3000:]
    assert "check the cacerts mount (%s/messaging/cacerts:/home/docker/trusted:ro" % COMPOSE in out

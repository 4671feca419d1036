"""The converged host: engine reachable from the instance, SMARTIDHOME skeleton, shared network."""
import json


def test_engine_answers_through_the_mounted_socket(host):
    version = host.run("docker version --format '{{.Server.Version}}'")
    assert version.rc == 0, version.stderr
    assert version.stdout.strip()[:2].isdigit()


def test_compose_v2_plugin_is_available(host):
    compose = host.run("docker compose version --short")
    assert compose.rc == 0
    assert int(compose.stdout.strip().split(".")[0]) >= 2


def test_smartid_home_skeleton(host):
    for path, mode in (
        ("/opt/smartid-molecule", 0o755),
        ("/opt/smartid-molecule/docker/compose", 0o755),
        ("/opt/smartid-molecule/backups", 0o700),
    ):
        folder = host.file(path)
        assert folder.is_directory, path
        assert folder.user == "root"
        assert folder.mode == mode, path


def test_shared_network_exists(host):
    network = host.run("docker network inspect smartid-molecule")
    assert network.rc == 0
    assert json.loads(network.stdout)[0]["Driver"] == "bridge"

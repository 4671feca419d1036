"""Unit tests of the orchestrator and swarm topology rules (docker role's validation).

A valid layout gives no message; each broken rule gives one message naming its group or
variable, before anything on a host changes.
"""

from __future__ import annotations

import pytest

from ansible_collections.smartid.hermod.plugins.action import validate
from ansible_collections.smartid.hermod.plugins.module_utils import swarm_rules

ONE_NODE = dict(orchestrator="swarm", host="n1", managers=["n1"], workers=[], edge=["n1"],
                database=["n1"], database_external=False)
STAGING = dict(orchestrator="swarm", host="w1", managers=["m1", "m2", "m3"], workers=["w1", "w2"],
               edge=["w1", "w2"], database=[], database_external=True)


@pytest.mark.parametrize("layout", [ONE_NODE, STAGING])
def test_valid_layouts_pass(layout):
    assert swarm_rules.check_topology(**layout) == []


def test_compose_ignores_the_swarm_groups():
    assert swarm_rules.check_topology(orchestrator="compose", managers=["a", "b"]) == []


@pytest.mark.parametrize("change, message", [
    ({"orchestrator": "k8s"}, "smartid_orchestrator (docker_orchestrator) is 'k8s'"),
    ({"managers": [], "workers": ["n1"]}, "group swarm_managers is empty"),
    ({"managers": ["n1", "n2"], "database": ["n1"]}, "group swarm_managers has 2 hosts (n1, n2): use an odd number"),
    ({"workers": ["n1"]}, "hosts in both swarm_managers and swarm_workers: n1"),
    ({"host": "n9"}, "host n9 deploys the stack but is in neither swarm_managers nor swarm_workers"),
    ({"edge": []}, "group swarm_edge is empty"),
    ({"edge": ["n1", "x"]}, "hosts in swarm_edge that are not swarm nodes (swarm_managers / swarm_workers): x"),
    ({"database": []}, "group swarm_database must hold exactly one host"),
    ({"database": ["n1", "n2"], "workers": ["n2"]}, "group swarm_database must hold exactly one host (the node with the PostgreSQL volume), it holds 2: n1, n2"),
    ({"database_external": True}, "database_external is true but group swarm_database lists n1"),
])
def test_each_broken_rule_names_its_group(change, message):
    errors = swarm_rules.check_topology(**dict(ONE_NODE, **change))
    assert len(errors) == 1 and errors[0].startswith(message), errors


def test_group_names_follow_the_role_variables():
    errors = swarm_rules.check_topology(**dict(ONE_NODE, edge=[], groups={"edge": "dmz"}))
    assert errors == ["group dmz is empty: Traefik runs on the edge nodes, at least one is needed"]


STATE = "/var/lib/docker/swarm/docker-state.json"


@pytest.mark.parametrize("kwargs, expected", [
    (dict(orchestrator="compose", configured=True), 0),
    (dict(orchestrator="swarm", configured=False), 0),
    (dict(orchestrator="swarm", configured=True), 1),
    # An external engine's daemon.json is not the role's: what the engine reports counts.
    (dict(orchestrator="swarm", install_source="external", configured=True, running=False), 0),
    (dict(orchestrator="swarm", install_source="external", configured=False, running=True), 1),
    (dict(orchestrator="swarm", install_source="external", running=None), 0),
    # An engine that never left a swarm starts in swarm mode: live-restore on would stop it.
    (dict(orchestrator="compose", configured=True, swarm_state=STATE), 1),
    (dict(orchestrator="compose", install_source="external", running=True, swarm_state=STATE), 0),
])
def test_live_restore_is_refused_on_a_swarm_node(kwargs, expected):
    errors, _warnings = swarm_rules.check_live_restore(**kwargs)
    assert len(errors) == expected, errors
    assert all("live-restore" in e for e in errors)


def test_an_operator_live_restore_on_a_leftover_swarm_member_names_the_state_file():
    errors, warnings = swarm_rules.check_live_restore(orchestrator="compose", configured=True,
                                                      swarm_state=STATE)
    assert warnings == []
    assert "docker_daemon_options" in errors[0] and STATE in errors[0]
    assert "docker swarm leave --force" in errors[0]


def test_a_leftover_swarm_member_keeps_live_restore_off_with_a_warning():
    errors, warnings = swarm_rules.check_live_restore(orchestrator="compose", configured=False,
                                                      swarm_state=STATE)
    assert errors == []
    assert len(warnings) == 1 and STATE in warnings[0] and "live-restore off" in warnings[0]
    # Not a member, or a swarm deployment (where that is expected): nothing to say.
    assert swarm_rules.check_live_restore(orchestrator="compose", configured=False) == ([], [])
    assert swarm_rules.check_live_restore(orchestrator="swarm", configured=False,
                                          swarm_state=STATE) == ([], [])


def test_the_validate_action_knows_the_swarm_concerns():
    assert validate.CONCERNS["swarm_topology"](**dict(ONE_NODE, edge=[]))[0] == [
        "group swarm_edge is empty: Traefik runs on the edge nodes, at least one is needed"]
    assert validate.CONCERNS["swarm_live_restore"](orchestrator="swarm", configured=True)[0]


@pytest.mark.parametrize("kwargs, message", [
    (dict(tls_termination="service"), "messaging_tls_termination is 'service'"),
    (dict(replicas=0), "messaging_replicas is '0'"),
    (dict(replicas="many"), "messaging_replicas is 'many'"),
    (dict(health_probe="outside"), "messaging_health_probe is 'outside'"),
])
def test_the_messaging_stack_refuses_what_a_swarm_cannot_run(kwargs, message):
    assert swarm_rules.check_swarm_service(orchestrator="swarm") == []
    assert swarm_rules.check_swarm_service(orchestrator="compose", **kwargs) == []
    errors = swarm_rules.check_swarm_service(orchestrator="swarm", **kwargs)
    assert len(errors) == 1 and errors[0].startswith(message), errors


def test_the_staging_inventory_is_a_valid_swarm_layout():
    """inventories/staging: three managers, two edge workers, an external database."""
    import pathlib  # noqa: PLC0415

    import yaml  # noqa: PLC0415
    from ansible.inventory.manager import InventoryManager  # noqa: PLC0415
    from ansible.parsing.dataloader import DataLoader  # noqa: PLC0415

    staging = pathlib.Path(__file__).resolve().parents[2] / "inventories" / "staging"
    settings = yaml.safe_load((staging / "group_vars" / "all" / "main.yml").read_text())
    groups = InventoryManager(loader=DataLoader(), sources=[str(staging / "hosts.yml")]).get_groups_dict()
    assert settings["smartid_orchestrator"] == "swarm" and settings["database_external"] is True
    assert len(groups["swarm_managers"]) == 3 and groups["swarm_edge"]
    for host in groups["smartid"]:
        assert swarm_rules.check_topology(
            orchestrator="swarm", host=host, managers=groups["swarm_managers"], workers=groups["swarm_workers"],
            edge=groups["swarm_edge"], database=groups.get("swarm_database", []), database_external=True) == [], host


class FakeSwarm:
    """A service whose tasks move on each `docker service ps` (one entry per call)."""

    def __init__(self, replicas, ps_answers, deployed=True):
        self.replicas, self.ps_answers, self.deployed, self.asked = replicas, list(ps_answers), deployed, []

    def __call__(self, argv):
        self.asked.append(argv)
        if argv[:3] == ["docker", "service", "inspect"]:
            return (0, "%d\n" % self.replicas, "") if self.deployed else (1, "", "no such service")
        if argv[:3] == ["docker", "service", "scale"]:
            self.replicas = int(argv[-1].split("=")[1])
            return 0, "", ""
        if argv[:3] == ["docker", "service", "ps"]:
            return 0, self.ps_answers.pop(0) if len(self.ps_answers) > 1 else self.ps_answers[0], ""
        raise AssertionError(argv)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_scale_to_0_waits_until_no_task_is_on_its_way_up_or_running():
    swarm = FakeSwarm(3, ["Running 1 minute ago\nRunning 1 minute ago\nShutdown 2 seconds ago",
                          "Running 1 minute ago\nShutdown 1 second ago",
                          "Shutdown 1 second ago\nShutdown 3 seconds ago\nFailed 2 hours ago"])
    clock = FakeClock()
    result = swarm_rules.scale_service(swarm, "s_messaging", 0, wait="stopped", timeout=60,
                                       sleep=clock.sleep, clock=clock)
    assert result == {"before": 3, "changed": True}
    assert ["docker", "service", "scale", "--detach", "s_messaging=0"] in swarm.asked
    assert clock.now == 4  # two waits of 2 s, then nothing runs


def test_scale_up_waits_for_every_replica_running_and_an_unchanged_service_is_not_scaled():
    swarm = FakeSwarm(1, ["Starting 1 second ago", "Running 1 second ago"])
    clock = FakeClock()
    assert swarm_rules.scale_service(swarm, "s_database", 1, wait="running", sleep=clock.sleep,
                                     clock=clock) == {"before": 1, "changed": False}
    assert not [a for a in swarm.asked if a[2] == "scale"]
    assert ["docker", "service", "ps", "--filter", "desired-state=running", "--format",
            "{{.CurrentState}}", "s_database"] in swarm.asked


def test_a_missing_service_is_reported_not_scaled_and_a_slow_one_times_out_naming_it():
    swarm = FakeSwarm(0, [""], deployed=False)
    assert swarm_rules.scale_service(swarm, "s_x", 0, wait="stopped") == {"before": None, "changed": False}
    assert len(swarm.asked) == 1
    swarm = FakeSwarm(1, ["Running 1 minute ago"])
    clock = FakeClock()
    with pytest.raises(swarm_rules.ScaleError, match="s_messaging did not reach 0 running tasks within 10 s"):
        swarm_rules.scale_service(swarm, "s_messaging", 0, wait="stopped", timeout=10,
                                  sleep=clock.sleep, clock=clock)


def test_check_mode_reports_the_change_and_neither_scales_nor_waits():
    swarm = FakeSwarm(2, ["Running"])
    assert swarm_rules.scale_service(swarm, "s_m", 0, wait="stopped", check_mode=True) == {"before": 2, "changed": True}
    assert [a[2] for a in swarm.asked] == ["inspect"]

"""Rules of the loop's inputs, as the validate action runs them: callback_reachable, the database
baseline and SQL substitutions, the callback stand-in."""

from __future__ import annotations

import pytest

from ansible_collections.smartid.hermod.plugins.action.validate import CONCERNS
from ansible_collections.smartid.hermod.plugins.module_utils import messaging_rules

KEY = "ab" * 32


def idm(**extra):
    client = {"client_id": "idm", "group": "g", "key": KEY,
              "callback_url": "https://idm.test/ws/hermod", "callback_basic_auth": "u:p"}
    client.update(extra)
    return client


def test_callback_reachable_must_be_a_boolean():
    errors, _ = messaging_rules.check_clients([idm(callback_reachable="later")])
    assert errors == ["messaging_clients[0] (client_id=idm).callback_reachable must be true or "
                      "false (false: the callback preflight only warns)"]
    for value in (True, False):
        assert messaging_rules.check_clients([idm(callback_reachable=value)])[0] == []


def test_callback_reachable_stays_out_of_the_service_configuration():
    assert "callback_reachable" not in messaging_rules.normalize_client(idm(callback_reachable=False))


@pytest.mark.parametrize("kwargs, message", [
    ({"baseline_version": "4.2"},
     "database_baseline_version must be empty or a version x.y.z (is 4.2)"),
    ({"baseline_version": "01.0.0"},
     "database_baseline_version must be empty or a version x.y.z (is 01.0.0)"),
    ({"baseline_version": 4},
     "database_baseline_version must be a string: empty, or the version x.y.z of a schema made "
     "by hand"),
    ({"baseline_version": "9.0.0", "schema_version": "4.2.0"},
     "database_baseline_version 9.0.0 is after database_schema_version 4.2.0: a downgrade is not "
     "possible"),
    ({"sql_substitutions": ["smartid"]},
     "database_sql_substitutions must be a mapping of text in the SQL files to its replacement"),
    ({"sql_substitutions": {"": "x"}},
     "database_sql_substitutions: every key must be a non-empty string (got '')"),
    ({"sql_substitutions": {"smartid": 5}},
     "database_sql_substitutions: the value of 'smartid' must be a string"),
])
def test_database_baseline_refusals(kwargs, message):
    errors, warnings = CONCERNS["database_baseline"](**kwargs)
    assert errors == [message]
    assert warnings == []


def test_database_baseline_accepts_the_usable_settings():
    assert CONCERNS["database_baseline"](baseline_version="", sql_substitutions={}) == ([], [])
    assert CONCERNS["database_baseline"](
        baseline_version="4.2.0", sql_substitutions={"OWNER TO smartid": "OWNER TO hermod"},
        schema_version="4.2.0") == ([], [])


GOOD_STANDIN = {"enabled": True, "hosts": ["idm.smartid.test", "da.smartid.test"],
                "basic_auth": "hermod:s3cret", "pki_dir": "/srv/pki",
                "compose_dir": "/opt/smartid/docker/compose/callback-standin", "port": 443}


@pytest.mark.parametrize("change, message", [
    ({"hosts": []}, "callback_standin_hosts must be a non-empty list of DNS names (the hosts of "
                    "the clients' callback_url)"),
    ({"hosts": ["idm.smartid.test", "bad_host"]}, "callback_standin_hosts: not DNS names: bad_host"),
    ({"hosts": ["idm.test", "IDM.test"]}, "callback_standin_hosts names idm.test more than once"),
    ({"basic_auth": "hermod"}, "callback_standin_basic_auth must have the form user:password (no "
                               "spaces, a non-empty user and password)"),
    ({"basic_auth": "hermod:with space"}, "callback_standin_basic_auth must have the form "
                                          "user:password (no spaces, a non-empty user and password)"),
    ({"pki_dir": ""}, "callback_standin_pki_dir must be an absolute path (is '')"),
    ({"compose_dir": "relative"}, "callback_standin_compose_dir must be an absolute path (is "
                                  "'relative')"),
    ({"port": 70000}, "callback_standin_port must be 1-65535 (is 70000)"),
])
def test_callback_standin_refusals(change, message):
    errors, _ = CONCERNS["callback_standin"](**dict(GOOD_STANDIN, **change))
    assert errors == [message]


def test_callback_standin_secret_never_in_a_message():
    errors, _ = CONCERNS["callback_standin"](**dict(GOOD_STANDIN, basic_auth="only secret"))
    assert errors and all("secret" not in e for e in errors)


def test_callback_standin_accepts_good_settings_and_checks_nothing_when_off():
    assert CONCERNS["callback_standin"](**GOOD_STANDIN) == ([], [])
    assert CONCERNS["callback_standin"](enabled=False, hosts=[], basic_auth="") == ([], [])

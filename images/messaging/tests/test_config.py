"""Configuration: Spring-style keys, validation naming the key, secrets kept out."""

import copy

import pytest

from hermod_ref import config

KEY = "ab" * 32
BASE = {
    "server": {"port": 20400},
    "spring": {"datasource": {"url": "jdbc:postgresql://database:5432/hermod", "username": "hermod",
                              "password": "db-pass-SECRET"}},
    "messaging": {"public-url": "https://example.test/ms"},
    "allowed-clients": [{"client-id": "idm", "key": KEY, "group": "g", "callback-url": "https://idm.test/cb",
                         "callback-basic-auth": "u:pw-SECRET"}],
}


def tree(**changes):
    t = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        node = t
        parts = dotted.split("__")
        for p in parts[:-1]:
            node = node[int(p)] if isinstance(node, list) else node.setdefault(p, {})
        if value is None:
            node.pop(parts[-1])
        else:
            node[parts[-1]] = value
    return t


def test_defaults_and_values():
    cfg = config.from_tree(tree())
    assert cfg.port == 20400 and cfg.base_path == "" and cfg.swagger_ui is True
    assert cfg.public_url == "https://example.test/ms"
    assert cfg.database.host == "database" and cfg.database.port == 5432 and cfg.database.name == "hermod"
    client = cfg.clients["idm"]
    assert client.basic_auth == ("u", "pw-SECRET") and client.group == "g"
    assert "SECRET" not in repr(cfg) and KEY not in repr(cfg)


@pytest.mark.parametrize("spelling", ["key-store-type", "keyStoreType"])
def test_ssl_key_store_type_both_spellings(spelling):
    t = tree(server__ssl={"enabled": True, "key-store": "certificates/x.p12", "key-store-password": "p",
                          spelling: "pkcs12"})
    cfg = config.from_tree(t)
    assert cfg.ssl.enabled and cfg.ssl.key_store_type == "PKCS12" and cfg.ssl.key_store == "certificates/x.p12"


def test_both_spellings_at_once_is_an_error():
    t = tree(server__ssl={"enabled": True, "key-store": "x.p12", "keyStoreType": "PKCS12",
                          "key-store-type": "PKCS12"})
    with pytest.raises(config.ConfigError, match=r"^server\.ssl\.key-store-type: set twice"):
        config.from_tree(t)


def test_dotted_keys_and_camel_case_are_relaxed():
    t = tree()
    t["server.port"] = 20401
    del t["server"]
    t["hermod"] = {"basePath": "/hermod/rest", "callback.maxAge": 60}
    cfg = config.from_tree(t)
    assert cfg.port == 20401 and cfg.base_path == "/hermod/rest" and cfg.callback_max_age == 60


def test_public_url_at_top_level():
    t = tree(messaging=None)
    t["public-url"] = "https://x.test/ms/"
    assert config.from_tree(t).public_url == "https://x.test/ms"


@pytest.mark.parametrize("changes, key", [
    ({"server__port": 70000}, "server.port"),
    ({"server__port": "abc"}, "server.port"),
    ({"spring__datasource__url": "jdbc:mysql://x/y"}, "spring.datasource.url"),
    ({"spring__datasource__username": None}, "spring.datasource.username"),
    ({"messaging": None}, "public-url"),
    ({"messaging__public-url": "ftp://x"}, "messaging.public-url"),
    ({"allowed-clients__0__key": "abc"}, "allowed-clients[0].key"),
    ({"allowed-clients__0__client-id": "bad id"}, "allowed-clients[0].client-id"),
    ({"allowed-clients__0__callback-url": "not a url"}, "allowed-clients[0].callback-url"),
    ({"allowed-clients__0__callback-url": None}, "allowed-clients[0].callback-url"),
    ({"allowed-clients__0__callback-url": "https://idm.test/a b"}, "allowed-clients[0].callback-url"),
    ({"allowed-clients__0__callback-basic-auth": "nocolon"}, "allowed-clients[0].callback-basic-auth"),
    ({"allowed-clients__0__colour": "red"}, "allowed-clients[0].colour"),
    ({"allowed-clients": "idm"}, "allowed-clients"),
    ({"hermod__base-path": "hermod/"}, "hermod.base-path"),
    ({"server__ssl": {"enabled": True}}, "server.ssl.key-store"),
    ({"server__ssl": {"enabled": True, "key-store": "x", "key-store-type": "JKS"}}, "server.ssl.key-store-type"),
    ({"springdoc": {"swagger-ui": {"enabled": "perhaps"}}}, "springdoc.swagger-ui.enabled"),
    ({"hermod": {"callback": {"lease": 2}}}, "hermod.callback.lease"),
    ({"hermod": {"command": {"default-lifespan": 100, "max-lifespan": 50}}}, "hermod.command.default-lifespan"),
])
def test_errors_name_the_key(changes, key):
    with pytest.raises(config.ConfigError) as err:
        config.from_tree(tree(**changes))
    assert str(err.value).startswith(key + ":"), str(err.value)
    assert "SECRET" not in str(err.value) and KEY not in str(err.value)


def test_duplicate_client_id():
    t = tree()
    t["allowed-clients"].append(dict(t["allowed-clients"][0]))
    with pytest.raises(config.ConfigError, match=r"^allowed-clients\[1\]\.client-id: duplicate"):
        config.from_tree(t)


def test_unknown_keys_are_reported_not_fatal():
    t = tree()
    t["hermod"] = {"no-such-thing": 1}
    t["spring"]["jpa"] = {"open-in-view": False}
    cfg = config.from_tree(t)
    assert "hermod.no-such-thing" in cfg.unknown_keys
    assert not any(k.startswith("spring") for k in cfg.unknown_keys)


def test_load_reports_yaml_errors(tmp_path):
    p = tmp_path / "c.yml"
    p.write_text("server: [unclosed\n")
    with pytest.raises(config.ConfigError, match="not valid YAML at line"):
        config.load(str(p))
    with pytest.raises(config.ConfigError, match="not found"):
        config.load(str(tmp_path / "missing.yml"))


def test_http_bounds_operator_listener_and_source_ranges():
    cfg = config.from_tree(tree())
    assert (cfg.http_max_connections, cfg.http_head_timeout, cfg.http_body_timeout, cfg.http_idle_timeout) == \
        (4096, 20.0, 60.0, 75.0)
    assert cfg.management_port is None and cfg.command_sources == () and cfg.util_sources == ()
    cfg = config.from_tree(tree(hermod={"http": {"max-connections": 100, "head-timeout": 5, "body-timeout": 30,
                                                 "idle-timeout": 10},
                                        "source-ranges": {"command": ["10.0.0.0/8", "::1"], "util": "127.0.0.1"}},
                                management={"server": {"port": 20401}}))
    assert (cfg.http_max_connections, cfg.http_head_timeout, cfg.http_body_timeout, cfg.http_idle_timeout) == \
        (100, 5.0, 30.0, 10.0)
    assert config.from_tree(tree()).shutdown_drain_delay == 0.0
    assert config.from_tree(tree(hermod={"shutdown": {"drain-delay": 8}})).shutdown_drain_delay == 8.0
    with pytest.raises(config.ConfigError, match="drain-delay"):
        config.from_tree(tree(hermod={"shutdown": {"drain-delay": -1}}))
    assert cfg.management_port == 20401 and cfg.management_address == "0.0.0.0"
    assert [str(n) for n in cfg.command_sources] == ["10.0.0.0/8", "::1/128"]
    assert [str(n) for n in cfg.util_sources] == ["127.0.0.1/32"]
    assert cfg.unknown_keys == ()


@pytest.mark.parametrize("changes, key", [
    ({"hermod": {"http": {"head-timeout": 0}}}, "hermod.http.head-timeout"),
    ({"hermod": {"http": {"max-connections": "many"}}}, "hermod.http.max-connections"),
    ({"hermod": {"source-ranges": {"command": ["10.0.0.0/33"]}}}, "hermod.source-ranges.command[0]"),
    ({"hermod": {"source-ranges": {"util": {"a": 1}}}}, "hermod.source-ranges.util"),
    ({"management": {"server": {"port": 20400}}}, "management.server.port"),
    ({"management": {"server": {"port": 70000}}}, "management.server.port"),
])
def test_http_and_listener_errors_name_the_key(changes, key):
    with pytest.raises(config.ConfigError) as err:
        config.from_tree(tree(**changes))
    assert str(err.value).startswith(key + ":")


@pytest.mark.parametrize("value", ["abc\n", "abc\r\n", "\nabc", "a" * 65, ".abc", ""])
def test_client_id_is_matched_in_full(value):
    assert not config.valid_client_id(value)
    assert config.valid_client_id("idm.da_x-1")


# The deployment's rule set (hermod_ref.rules is the collection's messaging_rules.py): the
# service refuses what the role refuses.


def test_the_shared_rules_module_is_the_collections_file():
    import pathlib

    from hermod_ref import rules
    shared = (pathlib.Path(__file__).resolve().parents[3] / "collections" / "ansible_collections"
              / "smartid" / "hermod" / "plugins" / "module_utils" / "messaging_rules.py")
    assert pathlib.Path(rules.__file__).read_bytes() == shared.read_bytes()


def test_client_id_of_65_characters_is_refused():
    t = tree()
    t["allowed-clients"][0]["client-id"] = "a" * 65
    with pytest.raises(config.ConfigError) as err:
        config.from_tree(t)
    assert str(err.value) == ("allowed-clients[0].client-id: has 65 characters: at most 64 are "
                              "allowed (1-64 of letters, digits, '.', '_', '-')")
    t["allowed-clients"][0]["client-id"] = "a" * 64
    assert list(config.from_tree(t).clients) == ["a" * 64]


def test_two_clients_with_the_same_key_are_refused():
    t = tree()
    t["allowed-clients"].append({"client-id": "portal", "key": KEY.upper(), "group": "web",
                                 "callback-url": "https://portal.test/cb"})
    with pytest.raises(config.ConfigError) as err:
        config.from_tree(t)
    assert str(err.value) == ("allowed-clients[1] (client-id=portal).key is the same as the key of "
                              "allowed-clients[0]: every client needs its own key")
    assert KEY not in str(err.value) and KEY.upper() not in str(err.value)


def test_idm_client_without_basic_auth_is_refused():
    t = tree()
    del t["allowed-clients"][0]["callback-basic-auth"]
    with pytest.raises(config.ConfigError, match=r"^allowed-clients\[0\] \(client-id=idm\)"
                       r"\.callback-basic-auth is missing"):
        config.from_tree(t)


def test_cacerts_whose_names_share_an_alias_refuse_the_start(tmp_path):
    from certs import make_ca, pem

    from hermod_ref.delivery import truststore
    (tmp_path / "My-Corp-CA.cer").write_bytes(pem(make_ca("one")[1]))
    (tmp_path / "my-corp-ca.cer").write_bytes(pem(make_ca("two")[1]))
    with pytest.raises(truststore.CacertsError) as err:
        truststore.load(str(tmp_path))
    assert str(err.value) == ("%s/My-Corp-CA.cer and %s/my-corp-ca.cer would both get the "
                              "certificate alias my-corp-ca: rename one" % (tmp_path, tmp_path))
    (tmp_path / "My-Corp-CA.cer").unlink()
    assert list(truststore.load(str(tmp_path)).entries) == ["my-corp-ca"]


def test_retention_settings():
    cfg = config.from_tree(tree())
    assert (cfg.retention_period, cfg.retention_poll_interval) == (604800, 60.0)
    cfg = config.from_tree(tree(hermod={"retention": {"period": 0, "poll-interval": 5}}))
    assert (cfg.retention_period, cfg.retention_poll_interval) == (0, 5.0)
    assert config.from_tree(tree(hermod={"retention.period": "86400"})).retention_period == 86400


@pytest.mark.parametrize("changes, key", [
    ({"hermod": {"retention": {"period": -1}}}, "hermod.retention.period"),
    ({"hermod": {"retention": {"period": 3650 * 86400 + 1}}}, "hermod.retention.period"),
    ({"hermod": {"retention": {"period": "7d"}}}, "hermod.retention.period"),
    ({"hermod": {"retention": {"period": 1.5}}}, "hermod.retention.period"),
    ({"hermod": {"retention": {"period": True}}}, "hermod.retention.period"),
    ({"hermod": {"retention": {"poll-interval": 0}}}, "hermod.retention.poll-interval"),
    ({"hermod": {"retention": {"poll-interval": "often"}}}, "hermod.retention.poll-interval"),
])
def test_retention_errors_name_the_key(changes, key):
    with pytest.raises(config.ConfigError) as err:
        config.from_tree(tree(**changes))
    assert str(err.value).startswith(key + ":"), str(err.value)


def test_pool_warm_up_is_off_unless_asked_and_must_be_a_boolean():
    assert config.from_tree(tree()).database.pool_warm is False
    assert config.from_tree(tree(hermod={"database": {"pool-warm": True}})).database.pool_warm is True
    assert config.from_tree(tree(hermod={"database": {"pool-warm": "false"}})).database.pool_warm is False
    with pytest.raises(config.ConfigError) as err:
        config.from_tree(tree(hermod={"database": {"pool-warm": "yes please"}}))
    assert str(err.value).startswith("hermod.database.pool-warm:"), str(err.value)

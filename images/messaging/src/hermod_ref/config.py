"""Read and validate config/hermod-conf.yml (Spring Boot style).

Keys are kebab-case; camelCase spellings (keyStoreType) and dotted keys
(`server.port: 20400`) are accepted too, as Spring Boot's relaxed binding does.
Any error raises ConfigError whose message starts with the offending key, and never
contains a secret value. Unknown keys are reported (the real service has more keys
than this reference implements; templates may carry them) but do not stop start-up.
"""

from __future__ import annotations

import ipaddress
import os
import re
import ssl
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlsplit

import yaml

# The deployment's rule set (the collection's module_utils/messaging_rules.py, copied into the
# build context by the images role): the role refuses what the service would refuse.
from . import rules


class ConfigError(ValueError):
    """Invalid configuration; str() names the key first."""


@dataclass(frozen=True)
class Client:
    client_id: str
    key: str
    group: str
    callback_url: str
    basic_auth: tuple[str, str] | None

    def __repr__(self) -> str:  # keep key and password out of any accidental log line
        return f"Client({self.client_id!r}, group={self.group!r}, callback_url={self.callback_url!r})"


@dataclass(frozen=True)
class Ssl:
    enabled: bool = False
    key_store: str = ""
    key_store_password: str = field(default="", repr=False)
    key_store_type: str = "PKCS12"


@dataclass(frozen=True)
class Database:
    host: str
    port: int
    name: str
    user: str
    password: str = field(repr=False)
    pool_size: int = 10
    # TLS to the server, from the JDBC URL's sslmode and sslrootcert (pgjdbc's parameters).
    sslmode: str = "disable"
    sslrootcert: str = ""
    # Open the pool's connections at start-up (db.warm) instead of on demand.
    pool_warm: bool = False


@dataclass(frozen=True)
class Config:
    port: int
    address: str
    workers: int
    base_path: str
    public_url: str
    ssl: Ssl
    database: Database
    clients: dict[str, Client]
    swagger_ui: bool
    max_body_size: int
    default_lifespan: int
    max_lifespan: int
    default_timeout: int
    max_timeout: int
    callback_timeout: float
    callback_max_age: int
    callback_initial_backoff: float
    callback_max_backoff: float
    callback_batch_size: int
    callback_concurrency: int
    callback_lease: int
    callback_poll_interval: float
    trust_system_cas: bool
    expiry_poll_interval: float
    log_level: str
    # Seconds finished commands are kept (store/retention.py); 0: kept for ever.
    retention_period: int = 604800
    retention_poll_interval: float = 60.0
    unknown_keys: tuple[str, ...] = ()
    # HTTP bounds (per worker and listener): see http/server.py.
    http_max_connections: int = 4096
    http_head_timeout: float = 20.0
    http_body_timeout: float = 60.0
    http_idle_timeout: float = 75.0
    # Seconds between SIGTERM and closing the listeners, readiness DOWN meanwhile (0: close at once).
    shutdown_drain_delay: float = 0.0
    # The operator endpoints (actuator, API docs, Swagger UI, generateclient) on a listener of
    # their own; None: on the main listener.
    management_port: int | None = None
    management_address: str = "0.0.0.0"
    # Source addresses allowed on <base>/command and /util; empty: any.
    command_sources: tuple = ()
    util_sources: tuple = ()
    # A listener for connections relayed with the PROXY protocol (Traefik's TLS passthrough);
    # None: none.
    proxy_protocol_port: int | None = None
    proxy_protocol_address: str = "0.0.0.0"


_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")
_JDBC = re.compile(r"jdbc:postgresql://(?P<host>[^/:?]+)(?::(?P<port>\d+))?/(?P<db>[^/?]+)(?:\?(?P<query>.*))?")
# pgjdbc's sslmode values the service implements; allow and prefer (TLS only if the server
# offers it, silently plain otherwise) are refused: a downgrade must not pass unnoticed.
SSLMODES = ("disable", "require", "verify-ca", "verify-full")
_BASE_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)*")


def valid_client_id(client_id: str) -> bool:
    """A client id as allowed-clients and /util/generateclient accept it (the whole string:
    `$` would also accept a trailing newline)."""
    return isinstance(client_id, str) and rules.client_id_problem(client_id) is None


def kebab(key: str) -> str:
    """keyStoreType -> key-store-type; already kebab keys are unchanged."""
    return _CAMEL.sub(r"-\1", key).lower()


def normalise(node, path: str = ""):
    """Return the tree with kebab-case keys and dotted keys expanded into mappings."""
    if isinstance(node, list):
        return [normalise(item, f"{path}[{i}]") for i, item in enumerate(node)]
    if not isinstance(node, dict):
        return node
    out: dict = {}
    spelled: dict[str, str] = {}
    for raw_key, value in node.items():
        if not isinstance(raw_key, str):
            raise ConfigError(f"{path or '<root>'}: key {raw_key!r} is not a string")
        parts = [kebab(p) for p in raw_key.split(".")]
        target = out
        for i, part in enumerate(parts[:-1]):
            sub_path = _join(path, ".".join(parts[: i + 1]))
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise ConfigError(f"{sub_path}: set both as a value and as a section")
        leaf = parts[-1]
        full = _join(path, ".".join(parts))
        if full in spelled:
            raise ConfigError(f"{full}: set twice (as {spelled[full]!r} and {raw_key!r})")
        spelled[full] = raw_key
        value = normalise(value, full)
        if isinstance(value, dict) and isinstance(target.get(leaf), dict):
            _merge(target[leaf], value, full)
        else:
            target[leaf] = value
    return out


def _merge(into: dict, extra: dict, path: str) -> None:
    for k, v in extra.items():
        if k in into:
            if isinstance(into[k], dict) and isinstance(v, dict):
                _merge(into[k], v, f"{path}.{k}")
                continue
            raise ConfigError(f"{path}.{k}: set twice")
        into[k] = v


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


class _Reader:
    """Typed access to the normalised tree; remembers which keys were used."""

    def __init__(self, tree: dict):
        self.tree = tree
        self.used: set[str] = set()

    def get(self, dotted: str, default=None):
        node = self.tree
        walked = []
        for part in dotted.split("."):
            walked.append(part)
            self.used.add(".".join(walked))
            if not isinstance(node, dict) or part not in node:
                return default
            node = node[part]
        return node

    def integer(self, dotted, default, lo, hi):
        value = self.get(dotted, default)
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, str) and value.strip().isdigit():
                value = int(value)
            else:
                raise ConfigError(f"{dotted}: must be an integer")
        if not lo <= value <= hi:
            raise ConfigError(f"{dotted}: must be between {lo} and {hi}")
        return value

    def number(self, dotted, default, lo, hi):
        value = self.get(dotted, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{dotted}: must be a number")
        if not lo <= value <= hi:
            raise ConfigError(f"{dotted}: must be between {lo} and {hi}")
        return float(value)

    def boolean(self, dotted, default):
        value = self.get(dotted, default)
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if not isinstance(value, bool):
            raise ConfigError(f"{dotted}: must be true or false")
        return value

    def string(self, dotted, default=None, required=False):
        value = self.get(dotted, default)
        if value is None:
            if required:
                raise ConfigError(f"{dotted}: is required")
            return default
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise ConfigError(f"{dotted}: must be a string")
        return value

    def unknown(self) -> list[str]:
        found = []

        def walk(node, path):
            if isinstance(node, dict):
                for k, v in node.items():
                    p = _join(path, k)
                    if p not in self.used:
                        found.append(p)
                    elif isinstance(v, dict):
                        walk(v, p)

        walk(self.tree, "")
        return sorted(found)


def _check_url(key: str, value: str, schemes=("http", "https")) -> str:
    if any(ch.isspace() or ord(ch) < 32 for ch in value):
        raise ConfigError(f"{key}: must not contain whitespace or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError as exc:
        raise ConfigError(f"{key}: not a valid URL ({exc})") from None
    if parts.scheme not in schemes or not parts.hostname:
        raise ConfigError(f"{key}: must be an absolute {' or '.join(schemes)} URL")
    if parts.query or parts.fragment:
        raise ConfigError(f"{key}: must not have a query or fragment")
    return value.rstrip("/")


def _find_public_url(reader: _Reader) -> str:
    """`public-url` at the top, or one level down in any block.

    The real service keeps it in a "message server library settings" block whose key
    is not public, so the reference accepts any parent.
    """
    if "public-url" in reader.tree:
        return _check_url("public-url", reader.string("public-url"))
    hits = [k for k, v in reader.tree.items() if isinstance(v, dict) and "public-url" in v]
    if len(hits) > 1:
        raise ConfigError(f"public-url: set in several blocks ({', '.join(sorted(hits))})")
    if not hits:
        raise ConfigError("public-url: is required (the device URL, e.g. https://host/ms)")
    key = f"{hits[0]}.public-url"
    return _check_url(key, reader.string(key))


def _clients(reader: _Reader) -> dict[str, Client]:
    raw = reader.get("allowed-clients", [])
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise ConfigError("allowed-clients: must be a list")
    clients: dict[str, Client] = {}
    for i, item in enumerate(raw):
        key = f"allowed-clients[{i}]"
        if not isinstance(item, dict):
            raise ConfigError(f"{key}: must be a mapping")
        unknown = set(item) - {"client-id", "key", "group", "callback-url", "callback-basic-auth"}
        if unknown:
            raise ConfigError(f"{key}.{sorted(unknown)[0]}: unknown client setting")
        cid = item.get("client-id")
        problem = rules.client_id_problem(cid)
        if problem:
            raise ConfigError(f"{key}.client-id: {problem} (1-64 of letters, digits, '.', '_', '-')")
        if cid in clients:
            raise ConfigError(f"{key}.client-id: duplicate client id {cid!r}")
        secret = item.get("key")
        if rules.key_problem(secret):
            raise ConfigError(f"{key}.key: must be 64 hexadecimal characters (256 bit)")
        group = item.get("group", cid)
        if not isinstance(group, (str, int)) or isinstance(group, bool) or not str(group):
            raise ConfigError(f"{key}.group: must be a non-empty string")
        url = item.get("callback-url")
        if not isinstance(url, str):
            raise ConfigError(f"{key}.callback-url: is required")
        url = _check_url(f"{key}.callback-url", url)
        auth = item.get("callback-basic-auth")
        basic = None
        if auth is not None and auth != "":
            if not isinstance(auth, str) or ":" not in auth or auth.startswith(":"):
                raise ConfigError(f"{key}.callback-basic-auth: must be user:password")
            user, password = auth.split(":", 1)
            basic = (user, password)
        clients[cid] = Client(cid, secret.lower(), str(group), url, basic)
    # The rules across clients (unique keys, one group for IDM and DA, basic auth on IDM
    # callbacks), as the deployment checks them; http callbacks stay the operator's choice.
    problems, _warnings = rules.check_clients(raw, field="allowed-clients", allow_http_callbacks=True,
                                              allow_empty=True, kebab_case=True)
    if problems:
        raise ConfigError("; ".join(problems))
    return clients


def _networks(reader: _Reader, dotted: str) -> tuple:
    """A list of CIDR ranges (a plain address is a range of one)."""
    value = reader.get(dotted, [])
    if value is None:
        return ()
    if isinstance(value, str):
        value = [part for part in value.replace(",", " ").split() if part]
    if not isinstance(value, list):
        raise ConfigError(f"{dotted}: must be a list of CIDR ranges")
    ranges = []
    for index, item in enumerate(value):
        try:
            ranges.append(ipaddress.ip_network(str(item).strip(), strict=False))
        except ValueError:
            raise ConfigError(f"{dotted}[{index}]: {item!r} is not an IP address or CIDR range") from None
    return tuple(ranges)


def _jdbc_tls(query: str) -> tuple[str, str]:
    """sslmode and sslrootcert from the JDBC URL's parameters, as pgjdbc reads them: `ssl=true`
    without sslmode means verify-full; other parameters are the driver's business."""
    key = "spring.datasource.url"
    params = {}
    for name, value in parse_qsl(query or "", keep_blank_values=True):
        if name in params:
            raise ConfigError(f"{key}: parameter {name} given twice")
        params[name] = value
    mode = params.get("sslmode")
    if mode is None:
        ssl_flag = params.get("ssl", "false").lower()
        if ssl_flag not in ("true", "false"):
            raise ConfigError(f"{key}: ssl must be true or false")
        mode = "verify-full" if ssl_flag == "true" else "disable"
    if mode not in SSLMODES:
        raise ConfigError(f"{key}: sslmode must be one of {', '.join(SSLMODES)} (is {mode!r})")
    rootcert = params.get("sslrootcert", "")
    if mode in ("verify-ca", "verify-full"):
        if not rootcert:
            raise ConfigError(f"{key}: sslmode={mode} needs sslrootcert=<CA file (PEM) in the container>")
        try:
            ssl.create_default_context(cafile=rootcert)
        except FileNotFoundError:
            raise ConfigError(f"{key}: sslrootcert {rootcert} not found") from None
        except (PermissionError, IsADirectoryError):
            raise ConfigError(f"{key}: sslrootcert {rootcert} is not a readable file") from None
        except ssl.SSLError:
            raise ConfigError(f"{key}: sslrootcert {rootcert} holds no PEM CA certificate") from None
    return mode, rootcert


def _database(reader: _Reader) -> Database:
    url = reader.string("spring.datasource.url", required=True)
    m = _JDBC.fullmatch(url)
    if not m:
        raise ConfigError("spring.datasource.url: must be jdbc:postgresql://<host>[:<port>]/<database>[?sslmode=...]")
    port = int(m["port"] or 5432)
    if not 1 <= port <= 65535:
        raise ConfigError("spring.datasource.url: port must be between 1 and 65535")
    sslmode, sslrootcert = _jdbc_tls(m["query"])
    user = reader.string("spring.datasource.username", required=True)
    password = reader.string("spring.datasource.password", default="")
    pool = reader.integer("hermod.database.pool-size", 10, 1, 200)
    warm = reader.boolean("hermod.database.pool-warm", False)
    return Database(m["host"], port, m["db"], user, password, pool, sslmode, sslrootcert, warm)


def _ssl(reader: _Reader) -> Ssl:
    enabled = reader.boolean("server.ssl.enabled", False)
    store = reader.string("server.ssl.key-store", "")
    password = reader.string("server.ssl.key-store-password", "")
    kind = reader.string("server.ssl.key-store-type", "PKCS12")
    if not enabled:
        return Ssl(False, store, password, kind)
    if not store:
        raise ConfigError("server.ssl.key-store: is required when server.ssl.enabled is true")
    if kind.upper() not in ("PKCS12", "P12"):
        raise ConfigError("server.ssl.key-store-type: only PKCS12 is supported")
    if store.startswith("file:"):  # Spring resource prefix
        store = store[len("file:"):]
    return Ssl(True, store, password, "PKCS12")


def from_tree(tree) -> Config:
    if tree is None:
        tree = {}
    if not isinstance(tree, dict):
        raise ConfigError("<root>: the configuration must be a YAML mapping")
    r = _Reader(normalise(tree))
    base_path = r.string("hermod.base-path", "")
    if base_path == "/":
        base_path = ""
    if not _BASE_PATH.fullmatch(base_path):
        raise ConfigError("hermod.base-path: must be empty or like /hermod/rest (no trailing slash)")
    default_workers = min(os.cpu_count() or 1, 4)
    cfg = dict(
        port=r.integer("server.port", 20400, 1, 65535),
        address=r.string("server.address", "0.0.0.0"),
        workers=r.integer("hermod.workers", default_workers, 1, 64),
        base_path=base_path,
        public_url=_find_public_url(r),
        ssl=_ssl(r),
        database=_database(r),
        clients=_clients(r),
        swagger_ui=r.boolean("springdoc.swagger-ui.enabled", True),
        max_body_size=r.integer("hermod.max-body-size", 65536, 1024, 16 * 1024 * 1024),
        default_lifespan=r.integer("hermod.command.default-lifespan", 300, 1, 7 * 86400),
        max_lifespan=r.integer("hermod.command.max-lifespan", 86400, 1, 30 * 86400),
        default_timeout=r.integer("hermod.command.default-timeout", 120, 1, 86400),
        max_timeout=r.integer("hermod.command.max-timeout", 3600, 1, 7 * 86400),
        callback_timeout=r.number("hermod.callback.timeout", 10, 0.1, 300),
        callback_max_age=r.integer("hermod.callback.max-age", 86400, 1, 30 * 86400),
        callback_initial_backoff=r.number("hermod.callback.initial-backoff", 1, 0.01, 3600),
        callback_max_backoff=r.number("hermod.callback.max-backoff", 300, 0.01, 86400),
        callback_batch_size=r.integer("hermod.callback.batch-size", 200, 1, 10000),
        callback_concurrency=r.integer("hermod.callback.concurrency", 64, 1, 1000),
        callback_lease=r.integer("hermod.callback.lease", 10, 3, 3600),
        callback_poll_interval=r.number("hermod.callback.poll-interval", 0.5, 0.01, 60),
        trust_system_cas=r.boolean("hermod.callback.trust-system-cas", True),
        expiry_poll_interval=r.number("hermod.expiry.poll-interval", 1, 0.05, 60),
        retention_period=r.integer("hermod.retention.period", 604800, 0, 3650 * 86400),
        retention_poll_interval=r.number("hermod.retention.poll-interval", 60, 1, 86400),
        log_level=r.string("logging.level.root", "INFO").upper(),
        http_max_connections=r.integer("hermod.http.max-connections", 4096, 1, 1_000_000),
        http_head_timeout=r.number("hermod.http.head-timeout", 20, 0.1, 3600),
        http_body_timeout=r.number("hermod.http.body-timeout", 60, 0.1, 3600),
        http_idle_timeout=r.number("hermod.http.idle-timeout", 75, 0.1, 86400),
        shutdown_drain_delay=r.number("hermod.shutdown.drain-delay", 0, 0, 600),
        command_sources=_networks(r, "hermod.source-ranges.command"),
        util_sources=_networks(r, "hermod.source-ranges.util"),
    )
    management_port = r.get("management.server.port")
    if management_port is not None:
        management_port = r.integer("management.server.port", None, 1, 65535)
        if management_port == cfg["port"]:
            raise ConfigError("management.server.port: must differ from server.port")
    cfg["management_port"] = management_port
    cfg["management_address"] = r.string("management.server.address", cfg["address"])
    proxy_port = r.get("hermod.proxy-protocol.port")
    if proxy_port is not None:
        proxy_port = r.integer("hermod.proxy-protocol.port", None, 1, 65535)
        if proxy_port in (cfg["port"], management_port):
            raise ConfigError("hermod.proxy-protocol.port: must differ from server.port and management.server.port")
    cfg["proxy_protocol_port"] = proxy_port
    cfg["proxy_protocol_address"] = r.string("hermod.proxy-protocol.address", cfg["address"])
    if cfg["log_level"] not in ("TRACE", "DEBUG", "INFO", "WARN", "WARNING", "ERROR"):
        raise ConfigError("logging.level.root: must be one of DEBUG, INFO, WARN, ERROR")
    if cfg["log_level"] in ("TRACE",):
        cfg["log_level"] = "DEBUG"
    if cfg["log_level"] == "WARN":
        cfg["log_level"] = "WARNING"
    if cfg["default_lifespan"] > cfg["max_lifespan"]:
        raise ConfigError("hermod.command.default-lifespan: must not exceed hermod.command.max-lifespan")
    if cfg["default_timeout"] > cfg["max_timeout"]:
        raise ConfigError("hermod.command.default-timeout: must not exceed hermod.command.max-timeout")
    if cfg["callback_initial_backoff"] > cfg["callback_max_backoff"]:
        raise ConfigError("hermod.callback.initial-backoff: must not exceed hermod.callback.max-backoff")
    # Accept the whole Spring tree without complaint: it is not ours to judge.
    r.get("spring")
    r.get("management")
    cfg["unknown_keys"] = tuple(k for k in r.unknown() if not k.startswith(("spring.", "management")))
    return Config(**cfg)


def load(path: str) -> Config:
    try:
        with open(path, encoding="utf-8") as fh:
            tree = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"<file>: {path} not found") from None
    except PermissionError:
        raise ConfigError(f"<file>: {path} is not readable") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"<file>: {path} is not valid YAML{where}") from None
    return from_tree(tree)

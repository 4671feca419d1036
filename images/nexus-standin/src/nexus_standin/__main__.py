"""Start-up of the stand-in, in the order the vendor's guide documents.

1. Logs and temporary files go under the home directory (as the JVM of the vendor's image
   does): a read-only home stops the start with an error.
2. config/hermod-conf.yml is read with the guide's spellings: Spring Boot's relaxed binding,
   so `keyStoreType` and `key-store-type` are the same key; `public-url` must be set.
3. One `INFO: Adding certificate <file> using alias <alias>` line per cacerts/*.cer.
4. The block-letter HERMOD banner.
5. HTTP (or HTTPS with server.ssl and a PKCS#12 keystore) on server.port, serving the
   Spring Boot actuator health endpoint `/actuator/health` -> {"status":"UP"} there, or on
   management.server.port when that is set (Spring Boot's separate management port).
"""

from __future__ import annotations

import json
import os
import re
import signal
import ssl
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

BANNER = r"""
 _   _ _____ ____  __  __  ___  ____
| | | | ____|  _ \|  \/  |/ _ \|  _ \
| |_| |  _| | |_) | |\/| | | | | | | |
|  _  | |___|  _ <| |  | | |_| | |_| |
|_| |_|_____|_| \_\_|  |_|\___/|____/

"""


class StartError(Exception):
    """A start-up problem: logged as ERROR, the process exits 2."""


class Log:
    """`LEVEL: message` on stdout and in <home>/logs/hermod.log."""

    def __init__(self, path: str):
        self._file = open(path, "a", encoding="utf-8")  # noqa: SIM115  pylint: disable=consider-using-with

    def write(self, level: str, message: str) -> None:
        line = f"{level}: {message}\n"
        sys.stdout.write(line)
        sys.stdout.flush()
        self._file.write(line)
        self._file.flush()

    def raw(self, text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()
        self._file.write(text)
        self._file.flush()


def prepare_home(home: str) -> tuple[str, str]:
    """<home>/logs and <home>/tmp, proven writable."""
    logs, tmp = os.path.join(home, "logs"), os.path.join(home, "tmp")
    try:
        os.makedirs(logs, exist_ok=True)
        os.makedirs(tmp, mode=0o700, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=tmp, prefix="start-"):
            pass
    except OSError as exc:
        raise StartError(f"cannot write logs and temporary files under {home}: "
                         f"{exc.strerror or exc} (the home directory must be writable)") from None
    tempfile.tempdir = tmp
    return logs, tmp


_CAMEL = re.compile(r"(?<=[a-z0-9])([A-Z])")


def relaxed(key: str) -> str:
    """Spring Boot relaxed binding: keyStoreType, key-store-type and key_store_type are one key."""
    return _CAMEL.sub(r"-\1", str(key)).replace("_", "-").lower()


def normalise(data, path=""):
    if isinstance(data, dict):
        out = {}
        for key, value in data.items():
            parts = [relaxed(p) for p in str(key).split(".")]
            target = out
            for part in parts[:-1]:
                target = target.setdefault(part, {})
                if not isinstance(target, dict):
                    raise StartError(f"{path}{key}: a value and a section at once")
            name = parts[-1]
            value = normalise(value, f"{path}{key}.")
            if isinstance(target.get(name), dict) and isinstance(value, dict):
                target[name].update(value)
            else:
                target[name] = value
        return out
    if isinstance(data, list):
        return [normalise(item, path) for item in data]
    return data


def load_config(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle) or {}
    except FileNotFoundError:
        raise StartError(f"configuration file {path} not found (mount config/ at "
                         f"{os.path.dirname(path)})") from None
    except OSError as exc:
        raise StartError(f"configuration file {path} is not readable: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise StartError(f"configuration file {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise StartError(f"configuration file {path}: the top level must be a mapping")
    return normalise(data)


def find_key(data, name):
    """First value of `name` at any depth (the parent key of public-url is not public)."""
    if isinstance(data, dict):
        if name in data:
            return data[name]
        for value in data.values():
            found = find_key(value, name)
            if found is not None:
                return found
    return None


def trust_cacerts(folder: str, log: Log) -> int:
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".cer"))
    except OSError as exc:
        log.write("WARN", f"Certificate folder {folder} is not readable ({exc.strerror}): no callback CA is trusted")
        return 0
    added = 0
    for name in names:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        try:
            context.load_verify_locations(cafile=os.path.join(folder, name))
        except (OSError, ssl.SSLError) as exc:
            log.write("ERROR", f"Certificate {name} not added: {exc}")
            continue
        log.write("INFO", f"Adding certificate {name} using alias {name[:-len('.cer')].lower()}")
        added += 1
    return added


def server_ssl_context(home: str, ssl_cfg: dict) -> ssl.SSLContext:
    from cryptography.hazmat.primitives.serialization import (
        Encoding, NoEncryption, PrivateFormat, pkcs12)

    kind = str(ssl_cfg.get("key-store-type", "PKCS12"))
    if kind.upper() != "PKCS12":
        raise StartError(f"server.ssl.key-store-type {kind}: only PKCS12 is supported")
    store = ssl_cfg.get("key-store")
    if not store:
        raise StartError("server.ssl.enabled is true but server.ssl.key-store is not set")
    password = ssl_cfg.get("key-store-password")
    if password is None:
        raise StartError("server.ssl.enabled is true but server.ssl.key-store-password is not set")
    store = store[len("file:"):] if str(store).startswith("file:") else str(store)
    if not os.path.isabs(store):
        store = os.path.join(home, store)
    try:
        with open(store, "rb") as handle:
            key, cert, chain = pkcs12.load_key_and_certificates(handle.read(), str(password).encode())
    except OSError as exc:
        raise StartError(f"server.ssl.key-store {store}: {exc.strerror}") from None
    except ValueError:
        raise StartError(f"server.ssl.key-store {store}: wrong key-store-password or not PKCS#12") from None
    if key is None or cert is None:
        raise StartError(f"server.ssl.key-store {store}: no private key with a certificate")
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    pem += b"".join(c.public_bytes(Encoding.PEM) for c in [cert, *(chain or [])])
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # The keystore is unpacked into the private temp folder for the ssl module and removed at once.
    with tempfile.NamedTemporaryFile(prefix="keystore-", suffix=".pem") as handle:
        os.chmod(handle.name, 0o600)
        handle.write(pem)
        handle.flush()
        context.load_cert_chain(handle.name)
    return context


class Handler(BaseHTTPRequestHandler):
    server_version = "Hermod"
    sys_version = ""
    access_log = None
    actuator = True

    def _send(self, status: int, body: dict) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def do_GET(self):  # noqa: N802  pylint: disable=invalid-name
        path = self.path.split("?", 1)[0]
        if path == "/actuator/health" and self.actuator:
            self._send(200, {"status": "UP"})
        else:
            self._send(404, {"status": 404, "error": "Not Found", "path": path})

    do_HEAD = do_GET

    def log_message(self, format, *args):  # pylint: disable=redefined-builtin
        if self.access_log is not None:
            self.access_log.write("%s - %s\n" % (self.address_string(), format % args))
            self.access_log.flush()


def main() -> int:
    home = os.environ.get("HOME") or "/home/docker"
    try:
        logs, _tmp = prepare_home(home)
    except StartError as exc:
        sys.stdout.write(f"ERROR: {exc}\n")
        return 2
    log = Log(os.path.join(logs, "hermod.log"))
    try:
        cfg = load_config(os.path.join(home, "config", "hermod-conf.yml"))
        public_url = find_key(cfg, "public-url")
        if not public_url:
            raise StartError("public-url is not set in config/hermod-conf.yml")
        trust_cacerts(os.path.join(home, "cacerts"), log)
        log.raw(BANNER)
        server_cfg = cfg.get("server") or {}
        port = int(server_cfg.get("port", 20400))
        ssl_cfg = server_cfg.get("ssl") or {}
        context = server_ssl_context(home, ssl_cfg) if ssl_cfg.get("enabled") is True else None
        # Spring Boot: management.server.port moves the actuator to a listener of its own.
        management_port = ((cfg.get("management") or {}).get("server") or {}).get("port")
        management_port = int(management_port) if management_port not in (None, "") else None
        servers = [ThreadingHTTPServer(("0.0.0.0", port), type("AppHandler", (Handler,), {
            "actuator": management_port in (None, port)}))]
        if management_port not in (None, port):
            servers.append(ThreadingHTTPServer(("0.0.0.0", management_port), Handler))
    except StartError as exc:
        log.write("ERROR", str(exc))
        return 2
    except OSError as exc:
        log.write("ERROR", f"cannot listen on server.port: {exc.strerror or exc}")
        return 2
    if context is not None:
        for httpd in servers:
            httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    Handler.access_log = open(os.path.join(logs, "access.log"), "a", encoding="utf-8")  # pylint: disable=consider-using-with
    signal.signal(signal.SIGTERM, lambda *_: [threading.Thread(target=h.shutdown).start() for h in servers])
    for httpd in servers[1:]:
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
    log.write("INFO", f"Started Hermod on port {port} ({'https' if context else 'http'}), public-url {public_url}"
              + (f", actuator on port {management_port}" if len(servers) > 1 else ""))
    servers[0].serve_forever()
    for httpd in servers[1:]:
        httpd.shutdown()
    log.write("INFO", "Stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())

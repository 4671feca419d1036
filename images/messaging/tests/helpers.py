"""Test helpers: service process, home folder, in-thread callback receiver."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import requests
import yaml

import pgtools

SRC = Path(__file__).resolve().parent.parent / "src"
IDM_KEY = "0123456789abcdef" * 4
DA_KEY = "fedcba9876543210" * 4


def api_key(client_id: str, key: str) -> str:
    return base64.b64encode(f"{client_id}:{key}".encode()).decode()


IDM = {"X-Api-Key": api_key("idm", IDM_KEY)}
DA = {"X-Api-Key": api_key("da", DA_KEY)}


def jdbc(dsn: str) -> tuple[str, str]:
    u = urlsplit(dsn)
    return f"jdbc:postgresql://{u.hostname}:{u.port}{u.path}", u.username


def make_home(home: Path, dsn: str, callback_url: str, extra: dict | None = None, port: int | None = None,
              workers: int = 1) -> Path:
    """A home folder like /home/docker: config/hermod-conf.yml, cacerts/, certificates/."""
    for sub in ("config", "cacerts", "certificates"):
        (home / sub).mkdir(parents=True, exist_ok=True)
    port = port or pgtools.free_port()
    url, user = jdbc(dsn)
    conf = {
        "server": {"port": port, "address": "127.0.0.1"},
        "spring": {"datasource": {"url": url, "username": user, "password": "db-secret-pw"}},
        "message-server-library": {"public-url": f"http://127.0.0.1:{port}/ms"},
        "hermod": {"workers": workers, "callback": {"initial-backoff": 0.05, "max-backoff": 0.2,
                                                    "timeout": 2, "poll-interval": 0.05},
                   "expiry": {"poll-interval": 0.1}},
        "allowed-clients": [
            {"client-id": "idm", "key": IDM_KEY, "group": "g1", "callback-url": callback_url,
             "callback-basic-auth": "cbuser:cb-secret-pw"},
            {"client-id": "da", "key": DA_KEY, "group": "g1", "callback-url": callback_url,
             "callback-basic-auth": "cbuser:cb-secret-pw"},
        ],
    }
    for key, value in (extra or {}).items():
        node = conf
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        if value is None:
            node.pop(parts[-1], None)
        else:
            node[parts[-1]] = value
    (home / "config" / "hermod-conf.yml").write_text(yaml.safe_dump(conf, sort_keys=False))
    return home


def read_conf(home: Path) -> dict:
    return yaml.safe_load((home / "config" / "hermod-conf.yml").read_text())


class ServiceProcess:
    def __init__(self, home: Path, release: str = "1.1.0", env: dict | None = None):
        self.home = Path(home)
        conf = read_conf(self.home)
        self.port = conf["server"]["port"]
        scheme = "https" if conf["server"].get("ssl", {}).get("enabled") else "http"
        self.url = f"{scheme}://127.0.0.1:{self.port}"
        # The operator endpoints (actuator, docs, generateclient): on a listener of their own
        # when management.server.port is set.
        operator_port = (conf.get("management") or {}).get("server", {}).get("port") or self.port
        self.operator_url = f"{scheme}://127.0.0.1:{operator_port}"
        self.release = release
        self.env = env or {}
        self.log_path = self.home / f"service-{time.monotonic_ns()}.log"
        self.proc = None

    def start(self, wait: bool = True, timeout: float = 20) -> "ServiceProcess":
        env = dict(os.environ, PYTHONPATH=str(SRC), HERMOD_RELEASE=self.release, HERMOD_DB_WAIT="3", **self.env)
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "hermod_ref", "--home", str(self.home)],
                                     stdout=self.log, stderr=subprocess.STDOUT, env=env, cwd=self.home)
        if wait:
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"service exited {self.proc.returncode}:\n{self.output()}")
                try:
                    if requests.get(f"{self.operator_url}/actuator/health/readiness", timeout=1, verify=False).ok:
                        return self
                except requests.RequestException:
                    pass
                time.sleep(0.1)
            raise RuntimeError(f"service not ready:\n{self.output()}")
        return self

    def wait_exit(self, timeout: float = 20) -> int:
        return self.proc.wait(timeout)

    def output(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.log.close()

    def command(self, command_type: str, body: dict, headers=IDM, base: str = "") -> requests.Response:
        return requests.post(f"{self.url}{base}/command/{command_type}", json=body, headers=headers, timeout=10,
                             verify=False)


class ReceiverThread:
    """The package's callback receiver, run on its own event loop in a thread."""

    def __init__(self, basic_auth=None, fail_first=0, ssl_context=None, port=None):
        from hermod_ref.tools.callbackreceiver import Receiver, start

        self.port = port or pgtools.free_port()
        self.url = f"{'https' if ssl_context else 'http'}://{'localhost' if ssl_context else '127.0.0.1'}:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

        async def setup():
            self.receiver = Receiver(basic_auth, fail_first=fail_first)
            return await start(self.receiver, "127.0.0.1", self.port, ssl_context)

        self.runner = asyncio.run_coroutine_threadsafe(setup(), self.loop).result(10)

    @property
    def callbacks(self) -> list[dict]:
        return list(self.receiver.callbacks)

    def wait_for(self, predicate, timeout: float = 10) -> list[dict]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            got = self.callbacks
            if predicate(got):
                return got
            time.sleep(0.02)
        raise AssertionError(f"callbacks not as expected within {timeout}s: {self.callbacks}")

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)

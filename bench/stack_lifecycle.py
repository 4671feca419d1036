#!/usr/bin/env python3
"""Complete messaging lifecycles against the deployed stack, through Traefik TLS and direct.

One lifecycle, as IDM/DA and a phone do it: POST <base>/command/ping with X-Api-Key (the keys the
messaging role derives from messaging_client_key_secret) -> GET /ms/command/<ref> -> ES256-signed
answer (device keys provisioned before the clock starts) -> callback delivered over HTTPS with
basic auth to a receiver on the stack's network (bench/stack_receiver.py in a container with the
aliases of the local inventory's callback hosts; its CA deployed through messaging_cacerts_dir).
Every accepted command must come back as exactly one callback.

    python bench/stack_lifecycle.py setup        # CA, receiver certificate, extra vars; prints the deploy command
    python bench/stack_lifecycle.py setup --termination service   # TLS in the service, Traefik passes it through
    python bench/stack_lifecycle.py bench        # closed loop (max) + open loop at 25/50/75 %, both paths
    python bench/stack_lifecycle.py fault --kind kill9|pgrestart|cb500|cbdown
    python bench/stack_lifecycle.py plot         # PNGs from the newest results
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import multiprocessing as mp
import os
import random
import resource
import secrets
import ssl
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
BENCH = REPO / "bench"
WORK = BENCH / ".stack"
RESULTS = BENCH / "results"
sys.path[:0] = [str(REPO / "images" / "messaging" / "src"), str(REPO / "collections")]

# pylint: disable=wrong-import-position
from ansible_collections.smartid.hermod.plugins.module_utils.messaging_keys import (  # noqa: E402
    api_key_header,
    derive_client_key,
)

SECRET = REPO / "inventories" / "local" / ".secrets" / "messaging_client_key_secret"
CLIENTS = ("idm", "da")
CALLBACK_HOSTS = {"idm": "idm.localdomain", "da": "da.localdomain"}
RECEIVER = "smartid-bench-receiver"
CONTROL = "http://127.0.0.1:20490"
NETWORK = "smartid"
SMARTID_HOME = Path("/opt/smartid")
TRAEFIK_CA = SMARTID_HOME / "docker" / "compose" / "traefik" / "ca" / "smartid-local-ca.crt"
PATHS = {
    "direct": {"addr": "127.0.0.1", "port": 20400, "tls": False, "host": "127.0.0.1:20400", "ca": None},
    "traefik": {"addr": "127.0.0.1", "port": 443, "tls": True, "host": "localhost", "ca": str(TRAEFIK_CA)},
}
# With messaging_tls_termination: service (setup --termination service) the service speaks TLS with
# a certificate for localhost from the bench CA, on its published port and behind Traefik's
# passthrough alike: both paths are TLS, and the hop is Traefik's TCP proxy alone.
SERVICE_CERT_NAME = "localhost"


# Closed loop: answers signed in advance for this many lifecycles/s (signing is not measured). Above
# what either path reaches on this machine, so that a closed loop never runs out of answers.
PLAN_RATE = 4000


def pct(values, q):
    values = sorted(values)
    return round(values[min(len(values) - 1, int(q / 100 * len(values)))] * 1000, 2) if values else None


# --------------------------------------------------------------------------- setup


def setup(args) -> int:
    """A CA, the receiver's certificate for the callback hosts, basic auth, and the extra vars."""
    from cryptography import x509  # noqa: PLC0415
    from cryptography.hazmat.primitives import hashes, serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from cryptography.x509.oid import NameOID  # noqa: PLC0415

    (WORK / "cacerts").mkdir(parents=True, exist_ok=True)
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Smart ID bench callback CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name).public_key(ca_key.public_key())
          .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
          .not_valid_after(now + dt.timedelta(days=400))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM

    def server_cert(stem, names):
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])]))
                .issuer_name(ca_name).public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=400))
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in names]), critical=False)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                               critical=False)
                .sign(ca_key, hashes.SHA256()))
        (WORK / f"{stem}.pem").write_bytes(cert.public_bytes(pem) + ca.public_bytes(pem))
        (WORK / f"{stem}.key").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                             serialization.NoEncryption()))

    (WORK / "cacerts" / "bench-callback-ca.cer").write_bytes(ca.public_bytes(pem))
    server_cert("receiver", list(CALLBACK_HOSTS.values()))
    auth = f"bench:{secrets.token_hex(16)}"
    (WORK / "basic-auth").write_text(auth + "\n")
    for name in ("cacerts/bench-callback-ca.cer", "receiver.pem", "receiver.key", "basic-auth"):
        os.chmod(WORK / name, 0o644)  # read by the receiver's container user
    # callback_reachable: false -- the bench's receiver, which answers for these hosts, is started
    # by the bench step after the deploy, so the deploy's preflight would find nothing there yet.
    clients = [{"client_id": c, "group": "smartid", "callback_url": f"https://{h}:8443/messaging",
                "callback_basic_auth": auth, "callback_reachable": False} for c, h in CALLBACK_HOSTS.items()]
    extra = {"messaging_clients": clients, "messaging_cacerts_dir": str(WORK / "cacerts")}
    if args.termination == "service":
        server_cert("service", [SERVICE_CERT_NAME])
        extra |= {"messaging_tls_termination": "service",
                  "messaging_keystore_key_src": str(WORK / "service.key"),
                  "messaging_keystore_cert_src": str(WORK / "service.pem"),
                  "messaging_keystore_password": secrets.token_hex(16)}
    (WORK / "vars.yml").write_text("---\n" + json.dumps(extra, indent=1) + "\n")
    (WORK / "vars.yml").chmod(0o600)  # the keystore password and the callbacks' basic auth
    # A running receiver still holds the certificate of an earlier setup.
    subprocess.run(["docker", "rm", "-f", RECEIVER], check=False, capture_output=True)
    print("deploy with:\n  flock /tmp/lock.deploy ansible-playbook playbooks/site.yml -e @bench/.stack/vars.yml")
    return 0


# --------------------------------------------------------------------------- receiver container


def docker(*args, check=True) -> str:
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True).stdout.strip()


def control(path: str, body: dict | None = None):
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(CONTROL + path, data=data), timeout=30) as resp:
        return json.loads(resp.read())


def start_receiver() -> None:
    image = docker("inspect", "-f", "{{.Config.Image}}", messaging_container())
    running = docker("ps", "-q", "-f", f"name=^{RECEIVER}$")
    if not running:
        docker("rm", "-f", RECEIVER, check=False)
        aliases = [a for h in CALLBACK_HOSTS.values() for a in ("--network-alias", h)]
        docker("run", "-d", "--name", RECEIVER, "--network", NETWORK, *aliases, "-p", "127.0.0.1:20490:8080",
               "--read-only", "--cap-drop", "ALL", "--no-healthcheck", "-v", f"{BENCH}:/bench:ro", "-v", f"{WORK}:/work:ro",
               "--entrypoint", "python3", image, "/bench/stack_receiver.py", "--cert", "/work/receiver.pem",
               "--key", "/work/receiver.key", "--auth-file", "/work/basic-auth")
    for _ in range(100):
        try:
            control("/stats")
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{RECEIVER} did not answer on {CONTROL}: {docker('logs', RECEIVER, check=False)}")


def containers() -> dict[str, str]:
    """name -> id of the stack's containers (compose projects smartid-*) and the receiver."""
    out = docker("ps", "--format", "{{.Names}} {{.ID}} {{.Label \"com.docker.compose.project\"}}", "--no-trunc")
    found = {}
    for line in out.splitlines():
        name, cid, *project = line.split()
        if name == RECEIVER or (project and project[0] in ("smartid-traefik", "smartid-messaging",
                                                             "smartid-database")):
            found[name] = cid
    return found


def messaging_container() -> str:
    for name in containers():
        if "messaging" in name:
            return name
    raise SystemExit("no smartid-messaging container: deploy the stack first (see `setup`)")


# --------------------------------------------------------------------------- CPU accounting


def cgroup_usage(cid: str) -> float:
    """CPU seconds of a container (cgroup v2 cpu.stat, or v1 cpuacct)."""
    for path in (f"/sys/fs/cgroup/system.slice/docker-{cid}.scope/cpu.stat", f"/sys/fs/cgroup/docker/{cid}/cpu.stat"):
        if os.path.exists(path):
            with open(path, encoding="ascii") as handle:
                for line in handle:
                    if line.startswith("usage_usec"):
                        return int(line.split()[1]) / 1e6
    with open(f"/sys/fs/cgroup/cpuacct/docker/{cid}/cpuacct.usage", encoding="ascii") as handle:
        return int(handle.read()) / 1e9


def proc_cpu(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


def host_processes() -> dict[str, list[int]]:
    procs = {"docker-proxy": [], "dockerd": []}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        exe = os.path.basename(cmd[0].decode(errors="replace"))
        if exe == "dockerd":
            procs["dockerd"].append(int(pid))
        elif exe == "docker-proxy" and any(p in cmd for p in (b"443", b"20400", b"20490")):
            procs["docker-proxy"].append(int(pid))
    return procs


class CpuMeter:
    def __init__(self):
        self.cids = containers()
        self.procs = host_processes()

    def sample(self) -> dict[str, float]:
        out = {name: cgroup_usage(cid) for name, cid in self.cids.items()}
        out.update({name: sum(proc_cpu(p) for p in pids) for name, pids in self.procs.items()})
        return out


# --------------------------------------------------------------------------- load generator


class Conn(asyncio.Protocol):
    def __init__(self):
        self.buf, self.waiter, self.transport = bytearray(), None, None

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0 or self.waiter is None:
            return
        lines = bytes(self.buf[:end]).split(b"\r\n")
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(self.buf) < end + 4 + length:
            return
        body = bytes(self.buf[end + 4:end + 4 + length])
        del self.buf[:end + 4 + length]
        waiter, self.waiter = self.waiter, None
        if not waiter.done():
            waiter.set_result((int(lines[0].split(b" ", 2)[1]), body))

    def connection_lost(self, exc):
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError(f"connection lost: {exc}"))

    async def request(self, raw: bytes, timeout: float = 30):
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        return await asyncio.wait_for(self.waiter, timeout)


def loadgen(index, nproc, path, mode, rate, duration, concurrency, users, run_tag, ready, start_at, out):
    """One process: provision its devices, pre-sign every answer, run lifecycles (closed or open loop)."""
    import orjson  # noqa: PLC0415
    import uvloop  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415
    from hermod_ref.api import jws  # noqa: PLC0415

    spec = PATHS[path]
    secret = SECRET.read_bytes().strip()
    keys = [api_key_header(c, derive_client_key(secret, c)) for c in CLIENTS]
    ctx = None
    if spec["tls"]:
        ctx = ssl.create_default_context(cafile=spec["ca"])
    host = spec["host"]

    def command(kind, client, userid, nonce):
        name = "provCommand" if kind == "provision" else f"{kind}Command"
        body = (f'{{"commandHeader":{{"lifespan":120,"timeout":90}},"{name}":{{"nonce":"{nonce}",'
                f'"userid":"{userid}","responseformat":"jws"}}}}').encode()
        return (f"POST /command/{kind} HTTP/1.1\r\nHost: {host}\r\nX-Api-Key: {keys[client]}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body

    def post(target, body):
        return (f"POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode() + body

    async def connect():
        loop = asyncio.get_running_loop()
        return (await loop.create_connection(Conn, spec["addr"], spec["port"], ssl=ctx,
                                             server_hostname="localhost" if ctx else None))[1]

    async def lifecycle(conn, kind, client, userid, nonce, answer):
        t0 = time.time()
        status, resp = await conn.request(command(kind, client, userid, nonce))
        if status != 202:
            raise RuntimeError(f"command {status} {resp[:200]!r}")
        t_accept = time.time()
        accepted = orjson.loads(resp)
        target = "/ms/" + accepted["deviceUrl"].split("/ms/", 1)[1]
        status, resp = await conn.request(f"GET {target} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        if status != 200 or orjson.loads(resp)["nonce"] != nonce:
            raise RuntimeError(f"fetch {status} {resp[:200]!r}")
        status, resp = await conn.request(post(target + "/response", answer(nonce)))
        if status != 202:
            raise RuntimeError(f"answer {status} {resp[:200]!r}")
        return accepted["messageId"], t0, t_accept - t0, time.time()

    async def run():
        conns = [await connect() for _ in range(concurrency)]
        device = {}
        for u in range(users):
            key = ec.generate_private_key(ec.SECP256R1())
            jwk = {"jwk": jws.public_jwk(key.public_key())}
            userid = f"{run_tag}-{index}-{u}"
            await lifecycle(conns[0], "provision", u % 2, userid, f"p-{userid}", lambda n, k=key, j=jwk: json.dumps(
                {"nonce": n, "response": jws.sign({"nonce": n}, k, j)}).encode())
            device[u] = (userid, key)
        planned = int((rate * duration if mode == "open" else PLAN_RATE * duration / nproc) * 1.05) + 10
        plan = []
        for i in range(planned):
            u = i % users
            nonce = f"{run_tag}-{index}-{i:08d}"
            plan.append((u % 2, device[u][0], nonce,
                         json.dumps({"nonce": nonce, "response": jws.sign({"nonce": nonce}, device[u][1])}).encode()))
        ready.set()
        while time.time() < start_at.value:
            await asyncio.sleep(0.001)
        t_begin = time.time()
        deadline = t_begin + duration
        done, errors, free = [], [], list(conns)
        cursor = [0]

        async def one(conn, i, t_sched=None):
            client, userid, nonce, body = plan[i]
            try:
                mid, t0, accept, t_done = await lifecycle(conn, "ping", client, userid, nonce, lambda _n: body)
                if t_sched is not None:  # open loop: latency from the intended start (no coordinated omission)
                    accept += t0 - t_sched
                    t0 = t_sched
                done.append((mid, t0, accept, t_done))
                return conn
            except Exception as exc:  # noqa: BLE001 - counted, and the run goes on
                errors.append(f"{type(exc).__name__}: {exc}"[:300])
                conn.transport.close()
                return await reconnect()

        async def reconnect():
            """The service may be restarting (fault modes): retry for up to two minutes."""
            for _ in range(600):
                try:
                    return await connect()
                except OSError:
                    await asyncio.sleep(0.2)
            return await connect()

        if mode == "closed":
            async def worker(conn):
                while time.time() < deadline and cursor[0] < len(plan):
                    i = cursor[0]
                    cursor[0] += 1
                    conn = await one(conn, i)
            await asyncio.gather(*(worker(c) for c in conns))
        else:
            sem = asyncio.Semaphore(len(conns))
            tasks = []

            async def scheduled(i, t_sched):
                async with sem:
                    conn = free.pop()
                    free.append(await one(conn, i, t_sched))

            interval, i = 1.0 / rate, 0
            t_next = t_begin + random.random() * interval
            while t_next < deadline and i < len(plan):
                delay = t_next - time.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.ensure_future(scheduled(i, t_next)))
                i += 1
                t_next += interval
            await asyncio.gather(*tasks)
        t_end = time.time()
        for c in free if mode == "open" else conns:
            c.transport.close()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        out.put({"done": done, "errors": errors, "t_begin": t_begin, "t_end": t_end,
                 "cpu": usage.ru_utime + usage.ru_stime})

    uvloop.run(run())


def run_load(path, mode, rate, duration, args, during=None) -> dict:
    """Start the load processes, meter CPU, wait for every callback; one result dict."""
    ctxmp = mp.get_context("fork")
    start_at = ctxmp.Value("d", float("inf"))  # the load waits until the receiver is reset and CPU sampled
    out = ctxmp.Queue()
    readies, procs = [], []
    tag = f"b{int(time.time()) % 100000}{path[0]}{mode[0]}"
    for i in range(args.loadgens):
        ready = ctxmp.Event()
        conc = max(1, args.concurrency // args.loadgens)
        procs.append(ctxmp.Process(target=loadgen, args=(i, args.loadgens, path, mode, rate / args.loadgens,
                                                         duration, conc, args.users, tag, ready, start_at, out)))
        readies.append(ready)
    for p in procs:
        p.start()
    for r in readies:
        if not r.wait(300):
            raise SystemExit("load generator not ready")
    control("/reset", {})
    meter = CpuMeter()
    load0 = os.getloadavg()
    before = meter.sample()
    start_at.value = time.time() + 0.2
    fault = None
    if during:
        fault = during(start_at.value)
    parts = [out.get(timeout=duration + 600) for _ in procs]
    for p in procs:
        p.join()
    done = [d for part in parts for d in part["done"]]
    errors = [e for part in parts for e in part["errors"]]
    wanted = {d[0] for d in done}
    wait_until = time.time() + args.callback_wait
    last_count, last_change = -1, time.time()
    while time.time() < wait_until:
        stats = control("/stats")
        # Callbacks of the devices' provisioning may land after the reset: count, then check ids.
        if stats["received"] >= len(wanted) and wanted <= set(control("/dump")["arrivals"]):
            break
        if stats["received"] != last_count:
            last_count, last_change = stats["received"], time.time()
        elif during is None and time.time() - last_change > args.stall:
            break  # nothing new for a while (no fault running): what is missing is lost
        time.sleep(0.2)
    t_last = time.time()
    after = meter.sample()
    if fault:
        fault.join()
    dump = control("/dump")
    arrivals = dump["arrivals"]
    got = {m for m in wanted if m in arrivals}
    lost = len(wanted) - len(got)
    unexpected = len({m for m in arrivals if (arrivals[m] + [None])[3] != "provision"} - wanted)
    t_begin = min(p["t_begin"] for p in parts)
    last_cb = max((arrivals[m][0] for m in got), default=t_begin)
    complete = [arrivals[m][0] - t0 for m, t0, _, _ in done if m in arrivals]
    after_answer = [arrivals[m][0] - t_done for m, _, _, t_done in done if m in arrivals]
    accept = [a for _, _, a, _ in done]
    n = len(done)
    cpu = {k: round((after[k] - before.get(k, 0.0)) / n * 1000, 3) if n else None for k in after}
    cpu["load generator"] = round(sum(p["cpu"] for p in parts) / n * 1000, 3) if n else None
    result = {
        "path": path, "mode": mode, "offered_per_s": rate if mode == "open" else None,
        "duration_s": duration, "loadgens": args.loadgens, "concurrency": args.concurrency,
        "lifecycles": n, "errors": len(errors), "error_samples": errors[:5],
        "callbacks": len(got), "lost": lost, "unexpected": unexpected,
        "duplicate_ids": dump["duplicate_ids"], "duplicate_keys": dump["duplicate_keys"],
        "receiver_refused": dump["refused_500"], "unauthorized": dump["unauthorized"],
        "lifecycles_per_s": round(len(got) / max(last_cb - t_begin, 1e-9), 1),
        "answered_per_s": round(n / (max(p["t_end"] for p in parts) - t_begin), 1),
        "accept_ms": {"p50": pct(accept, 50), "p99": pct(accept, 99), "p99.9": pct(accept, 99.9)},
        "lifecycle_ms": {"p50": pct(complete, 50), "p99": pct(complete, 99), "p99.9": pct(complete, 99.9)},
        "answer_to_callback_max_s": round(max(after_answer), 3) if after_answer else None,
        "cpu_ms_per_lifecycle": cpu,
        "load_avg_start": [round(x, 2) for x in load0], "load_avg_end": [round(x, 2) for x in os.getloadavg()],
        "t_last_check": t_last,
    }
    if lost:
        missing = sorted(m for m in wanted if m not in arrivals)[:20]
        # What the service recorded for them (state, attempts, last HTTP status), for diagnosis.
        query = ("SELECT command_id, state, attempts, last_http_status, lease_owner FROM hermod_callback "
                 f"WHERE command_id IN ({','.join(repr(m) for m in missing)})")
        result["lost_in_database"] = docker("exec", "smartid-database", "psql", "-U", "hermod", "-d", "hermod",
                                            "-Atc", query, check=False).splitlines()
        result["lost_samples"] = missing
    status_ok = lost == 0 and unexpected == 0 and dump["duplicate_ids"] == 0
    result["accounted"] = status_ok
    print(f"{path:8} {mode:6} offered={rate or '-'} lifecycles={n} cb/s={result['lifecycles_per_s']} "
          f"accept p50/p99/p99.9={result['accept_ms']} lifecycle={result['lifecycle_ms']} "
          f"lost={lost} dup={dump['duplicate_ids']} errors={len(errors)}", flush=True)
    return result


def save(kind: str, doc: dict) -> Path:
    RESULTS.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    target = RESULTS / f"stack_lifecycle-{kind}-{stamp}.json"
    target.write_text(json.dumps(doc, indent=1))
    print(f"wrote {target.relative_to(REPO)}")
    return target


def common_info(args) -> dict:
    return {"when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "note": args.note,
            "load_avg": [round(x, 2) for x in os.getloadavg()], "cores": os.cpu_count(),
            "other_containers": sorted(set(docker("ps", "--format", "{{.Names}}").split()) - set(containers()))}


def use_container_addresses() -> None:
    """Connect to the containers' own addresses: no docker-proxy (userland proxy) on the way."""
    for path, port, pattern in (("direct", 20400, "messaging"), ("traefik", 8443, "traefik")):
        name = next(n for n in containers() if pattern in n)
        PATHS[path]["addr"] = docker("inspect", "-f", f"{{{{(index .NetworkSettings.Networks \"{NETWORK}\").IPAddress}}}}",
                                     name)
        PATHS[path]["port"] = port


def termination() -> str:
    """Where TLS ends in the stack the bench's vars deployed: traefik (default) or service."""
    try:
        return (yaml.safe_load((WORK / "vars.yml").read_text()) or {}).get("messaging_tls_termination", "traefik")
    except (OSError, yaml.YAMLError):
        return "traefik"


def prepare(args) -> str:
    """The receiver running, the paths set for the deployed TLS mode and --via; that mode."""
    start_receiver()
    mode = termination()
    if mode == "service":
        for spec in PATHS.values():
            spec.update(tls=True, host=SERVICE_CERT_NAME, ca=str(WORK / "cacerts" / "bench-callback-ca.cer"))
    if args.via == "container":
        use_container_addresses()
    return mode


def bench(args) -> int:
    mode = prepare(args)
    doc = {**common_info(args), "via": args.via, "tls_termination": mode, "closed": [], "open": []}
    for _ in range(args.rounds):  # alternate so that a change in the host's load hits both paths
        for path in args.paths:
            doc["closed"].append(run_load(path, "closed", 0, args.duration, args))
    best = {}
    for path in args.paths:
        rates = [r["lifecycles_per_s"] for r in doc["closed"] if r["path"] == path]
        best[path] = sorted(rates)[len(rates) // 2]
    doc["max_per_s"] = best
    for frac in args.fractions:
        for path in args.paths:
            doc["open"].append(run_load(path, "open", round(best[path] * frac, 1), args.duration, args)
                               | {"fraction": frac})
    if "traefik" in best and "direct" in best:
        doc["ratio"] = round(best["traefik"] / best["direct"], 3)
    doc["accounted"] = all(r["accounted"] for r in doc["closed"] + doc["open"])
    save("bench", doc)
    print(json.dumps({"max_per_s": best, "ratio": doc.get("ratio"), "accounted": doc["accounted"]}))
    return 0 if doc["accounted"] else 1


# --------------------------------------------------------------------------- faults


class Fault:
    def __init__(self, kind: str, at: float, hold: float):
        import threading  # noqa: PLC0415
        self.kind, self.log = kind, []
        self.claimed, self.killed_at = {}, None
        self.thread = threading.Thread(target=self.run, args=(at, hold), daemon=True)
        self.thread.start()

    def run(self, at, hold):
        time.sleep(max(0.0, at - time.time()))
        self.log.append(("start", time.time()))
        if self.kind == "kill9":
            name = messaging_container()
            pid = int(docker("inspect", "-f", "{{.State.Pid}}", name))
            # The service's own process (PID 1 of the container this stack deployed), killed as
            # a crash would: the restart policy starts a new one (`docker kill` would count as a
            # manual stop and leave it down).
            host = docker("inspect", "-f", "{{.Config.Hostname}}", name)
            os.kill(pid, 9)
            killed = time.time()
            self.log.append(("killed", killed, pid))
            # What the dead processes held (node names are <hostname>-<pid>): callbacks claimed
            # under a lease and not delivered. Asked at once: nobody else may claim them before
            # their lease runs out, so the answer stays true until the takeover.
            rows = docker("exec", "smartid-database", "psql", "-U", "hermod", "-d", "hermod", "-Atc",
                          "SELECT command_id, extract(epoch FROM lease_until) FROM hermod_callback "
                          f"WHERE state = 'pending' AND lease_owner LIKE '{host}-%'", check=False)
            self.claimed = {line.split("|")[0]: float(line.split("|")[1]) for line in rows.splitlines() if "|" in line}
            self.log.append(("claimed_by_dead", time.time(), len(self.claimed)))
            self.killed_at = killed
        elif self.kind == "pgrestart":
            subprocess.run(["docker", "restart", "smartid-database"], check=True, capture_output=True)
            self.log.append(("restarted", time.time()))
        elif self.kind in ("cb500", "cbdown"):
            control("/mode", {"status": 500} if self.kind == "cb500" else {"down": True})
            time.sleep(hold)
            control("/mode", {"status": 0, "down": False})
            self.log.append(("restored", time.time()))

    def join(self):
        self.thread.join()


def fault(args) -> int:
    prepare(args)
    holder = {}

    def during(start):
        holder["f"] = Fault(args.kind, start + args.fault_after, args.hold)
        return holder["f"]

    doc = {**common_info(args), "kind": args.kind, "fault_after_s": args.fault_after, "hold_s": args.hold,
           "callback_delay_s": args.callback_delay, "rate": args.rate}
    # A slow client endpoint keeps callbacks in flight, so a kill -9 finds some claimed.
    control("/mode", {"delay": args.callback_delay})
    try:
        doc["result"] = run_load(args.paths[0], "open", args.rate, args.duration, args, during=during)
    finally:
        control("/mode", {"delay": 0})
    f = holder["f"]
    doc["fault_log"] = f.log
    dump = control("/dump")
    doc["result"]["abandoned_by_sender"] = dump.get("abandoned", 0)
    if f.killed_at is not None:
        arrivals = dump["arrivals"]
        delays = {m: arrivals[m][0] - f.killed_at for m in f.claimed if m in arrivals}
        doc["claimed_by_dead"] = {
            "count": len(f.claimed), "delivered": len(delays),
            "undelivered": sorted(set(f.claimed) - set(delays))[:20],
            "kill_to_delivery_max_s": round(max(delays.values()), 2) if delays else None,
            "kill_to_delivery_p50_s": round(sorted(delays.values())[len(delays) // 2], 2) if delays else None,
            "lease_left_at_kill_max_s": round(max(f.claimed.values()) - f.killed_at, 2) if f.claimed else None,
        }
        print(f"claimed by the dead process: {doc['claimed_by_dead']}", flush=True)
        doc["result"]["accounted"] = doc["result"]["accounted"] and len(delays) == len(f.claimed)
    save(f"fault-{args.kind}", doc)
    return 0 if doc["result"]["accounted"] else 1


def wait_healthy(name: str, timeout: float = 120.0) -> float:
    """Seconds until the container's health check reports healthy again."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        if docker("inspect", "-f", "{{.State.Health.Status}}", name, check=False) == "healthy":
            return time.time() - t0
        time.sleep(0.5)
    raise SystemExit(f"{name} not healthy after {timeout:.0f} s")


def warmup(args) -> int:
    """Open-loop runs right after a restart of the service: the first seconds of load after a
    start (or a deploy, or a crash) against the same rate once the service is warm."""
    prepare(args)
    name = next(n for n in containers() if "messaging" in n)
    doc = {**common_info(args), "rate": args.rate, "settle_s": args.settle, "restarts": []}
    for _ in range(args.restarts):
        docker("restart", name)
        healthy_after = wait_healthy(name)
        time.sleep(args.settle)
        runs = [run_load(args.paths[0], "open", args.rate, args.duration, args) for _ in range(args.runs)]
        doc["restarts"].append({"healthy_after_s": round(healthy_after, 1), "runs": runs})
    for k in range(args.runs):
        print(f"run {k + 1} after a restart: accept p99 " +
              ", ".join(f"{r['runs'][k]['accept_ms']['p99']}" for r in doc["restarts"]) + " ms")
    save("warmup", doc)
    return 0 if all(run["accounted"] for r in doc["restarts"] for run in r["runs"]) else 1


# --------------------------------------------------------------------------- plots


def plot(args) -> int:
    import matplotlib  # noqa: PLC0415
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    source = Path(args.results) if args.results else sorted(RESULTS.glob("stack_lifecycle-bench-*.json"))[-1]
    doc = json.loads(source.read_text())
    out = BENCH / "plots"
    out.mkdir(exist_ok=True)
    paths = sorted({r["path"] for r in doc["closed"]})
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, path in enumerate(paths):
        rates = [r["lifecycles_per_s"] for r in doc["closed"] if r["path"] == path]
        ax.bar([i + 0.8 * k / len(rates) - 0.3 for k in range(len(rates))], rates, width=0.7 / len(rates))
    ax.set_xticks(range(len(paths)), paths)
    ax.set_ylabel("complete lifecycles/s (closed loop, each round)")
    ax.set_title(f"Max throughput ({doc['when'][:16]}, load {doc['load_avg'][0]})")
    fig.tight_layout()
    fig.savefig(out / "stack_throughput.png", dpi=90)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("accept_ms", "lifecycle_ms")):
        for path in paths:
            rows = sorted((r for r in doc["open"] if r["path"] == path), key=lambda r: r["offered_per_s"])
            for q, style in (("p50", "-"), ("p99", "--"), ("p99.9", ":")):
                ax.plot([r["offered_per_s"] for r in rows], [r[metric][q] for r in rows], style, marker="o",
                        label=f"{path} {q}")
        ax.set_xlabel("offered lifecycles/s (open loop)")
        ax.set_ylabel(f"{metric.replace('_ms', '')} latency, ms")
        ax.set_yscale("log")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "stack_latency.png", dpi=90)
    fig, ax = plt.subplots(figsize=(8, 4))
    comps = sorted({k for r in doc["closed"] for k in r["cpu_ms_per_lifecycle"]})
    for i, path in enumerate(paths):
        rows = [r for r in doc["closed"] if r["path"] == path]
        vals = [sum(r["cpu_ms_per_lifecycle"].get(c) or 0 for r in rows) / len(rows) for c in comps]
        ax.barh([k + 0.4 * i for k in range(len(comps))], vals, height=0.4, label=path)
    ax.set_yticks([k + 0.2 for k in range(len(comps))], comps, fontsize=7)
    ax.set_xlabel("CPU ms per lifecycle (closed loop)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "stack_cpu.png", dpi=90)
    if args.warmup:
        plot_warmup([Path(w) for w in args.warmup], out / "stack_warmup.png", args.labels)
    if args.variants:
        plot_variants([Path(v) for v in args.variants], out / (args.variants_out or "stack_hop.png"),
                      args.labels)
    print(f"plots in {out.relative_to(REPO)} from {source.name}")
    return 0


def plot_warmup(files, target, labels=None) -> None:
    """Accept p50 and p99 of each open-loop run after a restart, by its place after the restart,
    one series per warmup result file."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, ax = plt.subplots(figsize=(7, 4))
    places = set()
    for i, f in enumerate(files):
        doc = json.loads(f.read_text())
        label = labels[i] if labels and len(labels) == len(files) else doc.get("note") or f.name
        for q, marker in (("p99", "o"), ("p50", "x")):
            xs, ys = [], []
            for restart in doc["restarts"]:
                for k, run in enumerate(restart["runs"]):
                    places.add(k + 1)
                    xs.append(k + 1 + 0.12 * (i - (len(files) - 1) / 2))
                    ys.append(run["accept_ms"][q])
            ax.scatter(xs, ys, marker=marker, color=plt.cm.tab10(i), label=f"{label}: {q}")
    ax.axhline(25, color="grey", linestyle=":", linewidth=1)
    ax.set_xticks(sorted(places))
    ax.set_xlabel("open-loop run after the service's restart (each 10 s at the same rate)")
    ax.set_ylabel("command accept latency, ms")
    ax.set_yscale("log")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(target, dpi=90)


def plot_variants(files, target, labels=None) -> None:
    """CPU per lifecycle by component on the Traefik path, one bar per run (its note, or the
    given label), with the through-Traefik / direct ratio of that run."""
    import matplotlib.pyplot as plt  # noqa: PLC0415

    docs = [json.loads(f.read_text()) for f in files]
    comps = ["smartid-traefik", "dockerd", "docker-proxy", "smartid-messaging-messaging-1", "smartid-database",
             "load generator", RECEIVER]
    fig, ax = plt.subplots(figsize=(10, 0.5 + 0.55 * len(docs)))
    for i, doc in enumerate(docs):
        row = next(r for r in doc["closed"] if r["path"] == "traefik")
        left = 0.0
        for k, comp in enumerate(comps):
            val = row["cpu_ms_per_lifecycle"].get(comp) or 0
            ax.barh(i, val, left=left, color=plt.cm.tab10(k), label=comp if i == 0 else None)
            left += val
        ax.text(left + 0.03, i, f"{row['lifecycles_per_s']:.0f}/s, ratio {doc.get('ratio')}", va="center", fontsize=7)
    names = labels if labels and len(labels) == len(docs) else [d.get("note", "")[:48] for d in docs]
    ax.set_yticks(range(len(docs)), names, fontsize=7)
    ax.set_xlabel("CPU ms per lifecycle through Traefik (closed loop), by component")
    ax.set_xlim(0, ax.get_xlim()[1] * 1.2)  # room for the labels at the bars' ends
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, hiding none
    fig.tight_layout()
    fig.savefig(target, dpi=90)


def report(args) -> int:
    """Markdown tables of result files (bench and fault), for bench/stack_lifecycle.md."""
    for name in args.files:
        doc = json.loads(Path(name).read_text())
        print(f"\n**{Path(name).name}** ({doc['when']}, load average {doc['load_avg']}, note: {doc.get('note') or '-'},"
              f" via {doc.get('via', 'published')} ports)\n")
        if "result" in doc:
            r = doc["result"]
            print("| fault | lifecycles answered | errors (refused/lost connections) | callbacks delivered | lost |"
                  " duplicate callbacks | longest answer-to-callback s |\n|---|---:|---:|---:|---:|---:|---:|")
            print(f"| {doc['kind']} | {r['lifecycles']} | {r['errors']} | {r['callbacks']} | {r['lost']} |"
                  f" {r['duplicate_ids']} | {r['answer_to_callback_max_s']} |")
            if doc.get("claimed_by_dead"):
                c = doc["claimed_by_dead"]
                print(f"\nClaimed by the killed process: {c['count']}, delivered {c['delivered']}, kill to delivery"
                      f" p50 {c['kill_to_delivery_p50_s']} s, max {c['kill_to_delivery_max_s']} s (lease left at"
                      f" the kill: up to {c['lease_left_at_kill_max_s']} s); abandoned by the sender mid-request:"
                      f" {r.get('abandoned_by_sender')}")
            continue
        print("| path | mode | offered/s | lifecycles | lifecycles/s | accept p50/p99/p99.9 ms |"
              " lifecycle p50/p99/p99.9 ms | lost | dup | errors |\n|---|---|---:|---:|---:|---|---|---:|---:|---:|")
        for r in doc["closed"] + doc["open"]:
            a, c = r["accept_ms"], r["lifecycle_ms"]
            print(f"| {r['path']} | {r['mode']} | {r['offered_per_s'] or '-'} | {r['lifecycles']} |"
                  f" {r['lifecycles_per_s']} | {a['p50']} / {a['p99']} / {a['p99.9']} |"
                  f" {c['p50']} / {c['p99']} / {c['p99.9']} | {r['lost']} | {r['duplicate_ids']} | {r['errors']} |")
        if doc.get("ratio") is not None:
            print(f"\nThrough Traefik / direct (closed loop): **{doc['ratio']}**")
        comps = sorted({k for r in doc["closed"] for k in r["cpu_ms_per_lifecycle"]})
        print("\nCPU ms per lifecycle (closed loop):\n\n| component | " +
              " | ".join(r["path"] for r in doc["closed"]) + " |\n|---|" + "---:|" * len(doc["closed"]))
        for comp in comps:
            print(f"| {comp} | " + " | ".join(str(r["cpu_ms_per_lifecycle"].get(comp)) for r in doc["closed"]) + " |")
        print("| **total** | " + " | ".join(str(round(sum(v or 0 for v in r["cpu_ms_per_lifecycle"].values()), 2))
                                          for r in doc["closed"]) + " |")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("setup")
    p.add_argument("--termination", choices=["traefik", "service"], default="traefik",
                   help="where TLS ends (messaging_tls_termination); service: a keystore from the bench CA")
    for name in ("bench", "fault", "warmup"):
        p = sub.add_parser(name)
        p.add_argument("--duration", type=float, default={"bench": 15.0, "fault": 40.0, "warmup": 10.0}[name])
        p.add_argument("--loadgens", type=int, default=2)
        p.add_argument("--concurrency", type=int, default=128)
        p.add_argument("--users", type=int, default=8, help="devices per load generator")
        p.add_argument("--callback-wait", type=float, default=120.0)
        p.add_argument("--stall", type=float, default=30.0,
                       help="bench: stop waiting when no callback arrived for this long")
        p.add_argument("--paths", nargs="+", default=["traefik", "direct"], choices=list(PATHS))
        p.add_argument("--note", default="")
        p.add_argument("--via", choices=["published", "container"], default="published",
                       help="published ports (docker-proxy for loopback clients) or the containers' addresses")
        if name == "bench":
            p.add_argument("--rounds", type=int, default=2)
            p.add_argument("--fractions", type=float, nargs="*", default=[0.25, 0.5, 0.75])
        elif name == "warmup":
            p.add_argument("--rate", type=float, default=550.0, help="open-loop lifecycles/s (the first path)")
            p.add_argument("--restarts", type=int, default=4)
            p.add_argument("--runs", type=int, default=2, help="runs after each restart")
            p.add_argument("--settle", type=float, default=10.0, help="seconds between healthy and the first run")
        else:
            p.add_argument("--kind", required=True, choices=["kill9", "pgrestart", "cb500", "cbdown"])
            p.add_argument("--rate", type=float, default=200.0)
            p.add_argument("--fault-after", type=float, default=5.0)
            p.add_argument("--hold", type=float, default=60.0)
            p.add_argument("--callback-delay", type=float, default=0.0,
                           help="the receiver answers each callback after this many seconds (a slow IDM)")
    p = sub.add_parser("plot")
    p.add_argument("--results")
    p.add_argument("--variants", nargs="*", help="bench results, one bar each in stack_hop.png")
    p.add_argument("--variants-out", help="file name of that plot instead of stack_hop.png")
    p.add_argument("--labels", nargs="*", help="one label per --variants (or --warmup) file instead of its note")
    p.add_argument("--warmup", nargs="*", help="warmup results, one series each in stack_warmup.png")
    p = sub.add_parser("report")
    p.add_argument("files", nargs="+")
    args = parser.parse_args()
    return {"setup": setup, "bench": bench, "fault": fault, "warmup": warmup, "plot": plot,
            "report": report}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())

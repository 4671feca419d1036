"""The HTTPS callback receiver that the scenarios' tests start next to the stack.

It is the service image's hermod-callback-receiver, run on the scenario network under the alias
`callbacks`, port 8443: the clients' callback_url in molecule.yml (https://callbacks:8443/ws/hermod), and the
name the certificate made by callback_pki.yml is issued for. The tests add molecule/shared to sys.path
to import it: pytest, run by testinfra on the scenario's tests folder, puts only that folder there.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time

# Where the receiver records every callback it accepts (JSON lines), inside its container.
RECORD = "/tmp/callbacks.jsonl"


def _docker(*args, check=True):
    return subprocess.run(["docker", *args], capture_output=True, text=True, check=check)


@contextlib.contextmanager
def callback_receiver_running(name, network, image, basic_auth, pki_dir):
    """Run the receiver as container `name` while the block runs, then remove it.

    image: the messaging service image (it ships the receiver); basic_auth: "user:password" the
    callbacks must carry; pki_dir: the host folder with callbacks.pem and callbacks.key.
    """
    # A container left by an interrupted run would hold the name.
    _docker("rm", "-f", name, check=False)
    _docker("run", "-d", "--name", name, "--network", network, "--network-alias", "callbacks",
            "-v", "%s:/pki:ro" % pki_dir, "--entrypoint", "/opt/hermod/bin/hermod-callback-receiver", image,
            "--host", "0.0.0.0", "--port", "8443", "--basic-auth", basic_auth,
            "--tls-cert", "/pki/callbacks.pem", "--tls-key", "/pki/callbacks.key", "--record", RECORD)
    try:
        yield
    finally:
        _docker("rm", "-f", name, check=False)


def callback_receiver_stats(name):
    """The receiver's /stats as a dict, or None while it does not answer."""
    # Asked from inside its container: the port is not published on the host.
    probe = ("import json, ssl, urllib.request; ctx = ssl._create_unverified_context(); "
             "print(urllib.request.urlopen('https://127.0.0.1:8443/stats', context=ctx).read().decode())")
    result = _docker("exec", name, "python3", "-c", probe, check=False)
    return json.loads(result.stdout) if result.returncode == 0 else None


def callback_receiver_records(name):
    """Every callback the receiver accepted: [{type, idempotencyKey, attempt, body}], oldest first."""
    result = _docker("exec", name, "cat", RECORD, check=False)
    return [json.loads(line) for line in result.stdout.splitlines() if line.strip()]


def callback_receiver_wait_for_callback(name, timeout):
    """Poll the stats until the receiver took a callback or `timeout` seconds are over.

    Returns the last stats (None if the receiver never answered); the caller asserts on them.
    """
    deadline = time.monotonic() + timeout
    stats = None
    while time.monotonic() < deadline:
        stats = callback_receiver_stats(name)
        if stats and stats.get("unique", 0) >= 1:
            break
        time.sleep(1)
    return stats

"""playbooks/rotate_certs.yml: new certificates are served without a restart and without a
failed request; a bad certificate is refused before anything changes."""

from __future__ import annotations

import asyncio
import time

import pytest

from conftest import container_state
from loadgen import run_load
from stack import issue, served_serial


def cert_files(instance):
    return sorted(p.name for p in (instance.component_dir / "certificates").iterdir())


def test_rotation_under_load_serves_new_certificates_without_restart_or_failed_request(test_instance, tmp_path):
    inst = test_instance
    state_before = container_state(inst.container)
    serial_before = served_serial(inst.endpoint)
    cert_file, key_file, operator_serial = issue(inst, tmp_path, "localhost")
    ep = inst.endpoint
    url = f"https://{ep.hostname}:{ep.port}{ep.base_path}/command/ping"
    serials = {}

    async def scenario():
        stop = asyncio.Event()
        load = asyncio.create_task(run_load(url, duration=None, keepalive=4, fresh=4, ca_file=ep.ca_file,
                                            connect=ep.connect, stop_event=stop))
        await asyncio.sleep(2)
        # 1: an operator certificate (validated on the controller, then swapped in).
        await asyncio.to_thread(inst.rotate, traefik_tls_cert_file=cert_file, traefik_tls_key_file=key_file,
                                traefik_tls_trust_file=str(inst.ca_cert))
        serials["operator"] = served_serial(ep)
        await asyncio.sleep(1)
        # 2: back to a generated certificate, renewed now.
        await asyncio.to_thread(inst.rotate, traefik_generated_cert_force_renew=True)
        serials["generated"] = served_serial(ep)
        await asyncio.sleep(2)
        stop.set()
        return await load

    result = asyncio.run(scenario())
    assert result.failed == 0, result.errors
    assert result.ok > 100, result.summary()
    assert serials["operator"] == operator_serial
    assert len({serial_before, serials["operator"], serials["generated"]}) == 3
    # Fresh handshakes under load saw the old, the operator and the renewed certificate.
    assert {serial_before, serials["operator"], serials["generated"]} <= result.serials
    assert container_state(inst.container) == state_before, "Traefik was restarted"
    # Only the served pair remains.
    assert len(cert_files(inst)) == 2


def test_rotation_refuses_a_certificate_for_another_host_and_changes_nothing(test_instance, tmp_path):
    inst = test_instance
    serial_before = served_serial(inst.endpoint)
    files_before = cert_files(inst)
    tls_before = (inst.component_dir / "config" / "dynamic" / "tls.yml").read_text()
    cert_file, key_file, _ = issue(inst, tmp_path, "other.example.org")
    with pytest.raises(RuntimeError) as err:
        inst.rotate(traefik_tls_cert_file=cert_file, traefik_tls_key_file=key_file,
                    traefik_tls_trust_file=str(inst.ca_cert))
    message = str(err.value)
    assert f"{cert_file}: subjectAltName does not cover the host name 'localhost'" in message
    assert "PRIVATE KEY" not in message
    assert served_serial(inst.endpoint) == serial_before
    assert cert_files(inst) == files_before
    assert (inst.component_dir / "config" / "dynamic" / "tls.yml").read_text() == tls_before


def test_rotation_refuses_a_key_that_does_not_match(test_instance, tmp_path):
    inst = test_instance
    cert_file, _, _ = issue(inst, tmp_path, "localhost")
    (tmp_path / "b").mkdir()
    _, other_key, _ = issue(inst, tmp_path / "b", "localhost")
    with pytest.raises(RuntimeError) as err:
        inst.rotate(traefik_tls_cert_file=cert_file, traefik_tls_key_file=other_key,
                    traefik_tls_trust_file=str(inst.ca_cert))
    assert f"{other_key}: the private key does not match the certificate in {cert_file}" in str(err.value)


def test_rotation_puts_the_previous_tls_config_back_when_the_new_certificate_is_not_confirmed(
        test_instance, tmp_path):
    inst = test_instance
    tls_yml = inst.component_dir / "config" / "dynamic" / "tls.yml"
    tls_before = tls_yml.read_text()
    serial_before = served_serial(inst.endpoint)
    cert_file, key_file, _ = issue(inst, tmp_path, "localhost")
    # The confirmation handshake goes from the host to traefik_verify_served_address: point it
    # at a loopback address nothing listens on (Traefik is published on 127.0.0.1 only), so the
    # new certificate is never confirmed.
    with pytest.raises(RuntimeError) as err:
        inst.rotate(traefik_tls_cert_file=cert_file, traefik_tls_key_file=key_file,
                    traefik_tls_trust_file=str(inst.ca_cert), traefik_verify_served_address="127.0.0.2")
    assert "tls.yml was put back to the previous certificate" in str(err.value)
    assert tls_yml.read_text() == tls_before
    deadline = time.monotonic() + 20
    while served_serial(inst.endpoint) != serial_before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert served_serial(inst.endpoint) == serial_before

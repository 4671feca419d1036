"""server.ssl: HTTPS from a PKCS#12 keystore; a wrong password stops start-up clearly."""

import requests

from certs import make_ca, make_leaf, p12, pem
from helpers import make_home


def keystore_home(tmp_path, dsn, receiver_url, password, given_password):
    ca_key, ca = make_ca()
    key, cert = make_leaf(ca_key, ca)
    home = make_home(tmp_path / "home", dsn, receiver_url, extra={"server.ssl": {
        "enabled": True, "key-store": "certificates/messaging.p12", "key-store-password": given_password,
        "keyStoreType": "PKCS12"}})
    (home / "certificates" / "messaging.p12").write_bytes(p12(key, cert, password, [ca]))
    (tmp_path / "ca.pem").write_bytes(pem(ca))
    return home


def test_https_from_relative_keystore_path(database, receiver, services, tmp_path):
    dsn = database("V1.1.0__base_version.sql")
    home = keystore_home(tmp_path, dsn, receiver.url, "ks-secret-pw", "ks-secret-pw")
    proc = services(home)
    r = requests.get(f"{proc.url}/actuator/health/liveness", verify=str(tmp_path / "ca.pem"), timeout=5)
    assert r.status_code == 200 and proc.url.startswith("https://")
    assert "ks-secret-pw" not in proc.output()


def test_wrong_keystore_password_is_a_clear_error(database, services, tmp_path):
    dsn = database("V1.1.0__base_version.sql")
    home = keystore_home(tmp_path, dsn, "http://127.0.0.1:9", "ks-secret-pw", "not-the-password")
    proc = services(home, wait=False)
    assert proc.wait_exit() == 2
    out = proc.output()
    assert "server.ssl.key-store-password: cannot open" in out and "wrong password" in out
    assert "not-the-password" not in out and "ks-secret-pw" not in out

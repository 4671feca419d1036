"""Start-up log (alias lines before the banner), refusals with clear messages."""

import re

import psycopg
import pytest

from certs import make_ca, pem
from helpers import make_home

BANNER_LAST = re.compile(r"^\s*:: .+ ::")
# Last line of the guide's block-letter HERMOD (the bundle's default messaging_banner_regex).
HERMOD_ART_LAST = re.compile(r"\|_\|\s+\|_\|_____\|_\|\s+\\_\\_\|\s+\|_\|\\___/\|____/")


def lines_of(proc):
    return proc.output().splitlines()


def test_alias_lines_then_banner_and_bad_file_reported(database, receiver, services, tmp_path):
    dsn = database("V1.1.0__base_version.sql")
    home = make_home(tmp_path / "home", dsn, receiver.url)
    _, root = make_ca("Root")
    _, inter = make_ca("Intermediate")
    (home / "cacerts" / "IDM-Chain.cer").write_bytes(pem(inter) + pem(root))
    (home / "cacerts" / "da_ca.cer").write_bytes(pem(root))
    (home / "cacerts" / "broken.cer").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    (home / "cacerts" / "readme.txt").write_text("ignored: not a .cer")
    proc = services(home)
    out = lines_of(proc)
    assert "INFO: Adding certificate IDM-Chain.cer using alias idm-chain" in out
    assert "INFO: Adding certificate da_ca.cer using alias da_ca" in out
    assert not any("broken.cer using alias" in line or "readme" in line for line in out)
    errors = [line for line in out if line.startswith("ERROR:") and "broken.cer" in line]
    assert errors and "malformed PEM certificate" in errors[0]
    banner_at = max(i for i, line in enumerate(out) if BANNER_LAST.match(line))
    alias_at = [i for i, line in enumerate(out) if line.startswith("INFO: Adding certificate")]
    assert len(alias_at) == 2 and max(alias_at) < banner_at
    assert "v1.1.0" in out[banner_at]
    art_at = [i for i, line in enumerate(out) if HERMOD_ART_LAST.search(line)]
    assert len(art_at) == 1 and max(alias_at) < art_at[0] < banner_at
    # no secret of the configuration in the log
    text = proc.output()
    for secret in ("db-secret-pw", "cb-secret-pw", "0123456789abcdef" * 4):
        assert secret not in text


def test_missing_cacerts_folder_is_a_warning(database, receiver, services, tmp_path):
    dsn = database("V1.1.0__base_version.sql")
    home = make_home(tmp_path / "home", dsn, receiver.url)
    (home / "cacerts").rmdir()
    proc = services(home)
    assert any(line.startswith("WARN: Certificate folder") and "does not exist" in line for line in lines_of(proc))


def test_bad_config_refuses_to_start_naming_the_key(services, tmp_path):
    home = make_home(tmp_path / "home", "postgresql://u@127.0.0.1:1/db", "http://127.0.0.1:9",
                     extra={"allowed-clients": [{"client-id": "idm", "key": "short", "callback-url": "http://x"}]})
    proc = services(home, wait=False)
    assert proc.wait_exit() == 2
    assert "allowed-clients[0].key: must be 64 hexadecimal characters" in proc.output()
    assert any(BANNER_LAST.match(line) for line in lines_of(proc))


@pytest.mark.parametrize("files, release, message", [
    ((), "1.1.0", "Database schema is not initialised"),
    (("V1.0.0__base_version.sql",), "1.1.0", "Database schema version 1.0.0 is older than 1.1.0"),
])
def test_refuses_older_schema(database, services, tmp_path, files, release, message):
    dsn = database(*files)
    home = make_home(tmp_path / "home", dsn, "http://127.0.0.1:9")
    proc = services(home, release=release, wait=False)
    assert proc.wait_exit() == 3
    assert message in proc.output()
    # and it did not migrate by itself
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT to_regclass('hermod_callback_attempt')").fetchone()[0] is None


def test_release_1_0_0_runs_on_schema_1_0_0(database, receiver, services, tmp_path):
    dsn = database("V1.0.0__base_version.sql")
    proc = services(make_home(tmp_path / "home", dsn, receiver.url), release="1.0.0")
    assert any(":: Smart ID Messaging reference ::  (v1.0.0)" in line for line in lines_of(proc))


def test_unreachable_database_is_a_clear_error(services, tmp_path):
    home = make_home(tmp_path / "home", "postgresql://u@127.0.0.1:1/db", "http://127.0.0.1:9")
    proc = services(home, wait=False)
    assert proc.wait_exit(30) == 3
    assert "Cannot use database 127.0.0.1:1/db" in proc.output()

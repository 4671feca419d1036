"""Scan one TLS endpoint with sslyze and check it against Mozilla's intermediate profile.

Runs in its own venv (sslyze pins cryptography<47; see requirements-sslyze.txt) and prints one
JSON object, which tests/tls/test_tls_profile.py asserts on:
  python sslyze_scan.py <connect-ip> <port> <server-name> <ca-file>
"""

import json
import sys
import warnings
from pathlib import Path

from sslyze import (
    CertificateInfoExtraArgument,
    ScanCommand,
    ScanCommandAttemptStatusEnum,
    Scanner,
    ServerNetworkConfiguration,
    ServerNetworkLocation,
    ServerScanRequest,
    ServerScanStatusEnum,
)
from sslyze.mozilla_tls_profile.tls_config_checker import (
    SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER,
    MozillaTlsConfiguration,
    ServerNotCompliantWithTlsConfiguration,
    TlsConfigurationEnum,
    check_server_against_tls_configuration,
)
from sslyze.scanner.models import ScanCommandsExtraArguments

VERSIONS = {
    "ssl_2_0_cipher_suites": "SSLv2",
    "ssl_3_0_cipher_suites": "SSLv3",
    "tls_1_0_cipher_suites": "TLSv1.0",
    "tls_1_1_cipher_suites": "TLSv1.1",
    "tls_1_2_cipher_suites": "TLSv1.2",
    "tls_1_3_cipher_suites": "TLSv1.3",
}


def main() -> int:
    # sslyze's bundled trust stores hold legacy roots that newer cryptography warns about.
    warnings.simplefilter("ignore")
    ip, port, server_name, ca_file = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
    request = ServerScanRequest(
        server_location=ServerNetworkLocation(hostname=server_name, port=port, ip_address=ip),
        network_configuration=ServerNetworkConfiguration(tls_server_name_indication=server_name),
        scan_commands=SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER | {ScanCommand.HTTP_HEADERS},
        scan_commands_extra_arguments=ScanCommandsExtraArguments(
            certificate_info=CertificateInfoExtraArgument(custom_ca_file=Path(ca_file))
        ),
    )
    scanner = Scanner()
    scanner.queue_scans([request])
    result = next(iter(scanner.get_results()))
    out = {"scan_status": result.scan_status.value, "errors": []}
    if result.scan_status != ServerScanStatusEnum.COMPLETED:
        out["errors"].append(repr(result.connectivity_error_trace))
        print(json.dumps(out))
        return 0

    attempts = result.scan_result
    for field in SCAN_COMMANDS_NEEDED_BY_MOZILLA_CHECKER | {ScanCommand.HTTP_HEADERS}:
        attempt = getattr(attempts, field.value)
        if attempt.status != ScanCommandAttemptStatusEnum.COMPLETED:
            out["errors"].append(f"{field.value}: {attempt.error_reason} {attempt.error_trace}")

    out["versions"] = {}
    out["ciphers"] = {}
    for field, name in VERSIONS.items():
        res = getattr(attempts, field).result
        if res is None:
            continue
        out["versions"][name] = res.is_tls_version_supported
        out["ciphers"][name] = sorted(c.cipher_suite.name for c in res.accepted_cipher_suites)
    curves = attempts.elliptic_curves.result
    out["curves"] = sorted(c.name for c in (curves.supported_curves or [])) if curves else None
    cert = attempts.certificate_info.result
    if cert:
        deployment = cert.certificate_deployments[0]
        out["certificate_trusted"] = deployment.verified_certificate_chain is not None
        out["trusted_by"] = sorted(
            r.trust_store.name for r in deployment.path_validation_results if r.was_validation_successful
        )
    headers = attempts.http_headers.result
    hsts = headers.strict_transport_security_header if headers else None
    out["hsts_max_age"] = hsts.max_age if hsts else None

    try:
        check_server_against_tls_configuration(
            result, MozillaTlsConfiguration.get(TlsConfigurationEnum.MOZILLA_INTERMEDIATE)
        )
        out["mozilla_intermediate_issues"] = {}
    except ServerNotCompliantWithTlsConfiguration as exc:
        out["mozilla_intermediate_issues"] = exc.issues
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

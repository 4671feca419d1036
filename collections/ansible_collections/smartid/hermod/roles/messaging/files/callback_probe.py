"""Callback preflight probe, run in a short-lived container on the stack's network.

argv[1]: JSON list of {"client", "scheme", "host", "port"}. Trusts exactly the *.cer files in
/cacerts (the deployed cacerts/ folder, mounted read-only), never the image's trust store.
Prints one JSON list: per client the resolved address, the presented certificate's subject,
issuer and expiry, and a verdict (ok, unresolved, unreachable, untrusted, tls-error).
Standard library only: it runs on any image with python3.
"""

import glob
import json
import os
import socket
import ssl
import sys
import tempfile


def _name(rdns):
    return ", ".join("%s=%s" % pair for rdn in rdns or () for pair in rdn)


def _describe(cert):
    return {"subject": _name(cert.get("subject")), "issuer": _name(cert.get("issuer")),
            "not_after": cert.get("notAfter", "")}


def _decode_der(der):
    """subject/issuer/expiry of a certificate that did not verify (stdlib has no public decoder)."""
    handle, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(handle, "w") as out:
            out.write(ssl.DER_cert_to_PEM_cert(der))
        return _describe(ssl._ssl._test_decode_cert(path))  # pylint: disable=protected-access
    except Exception:  # noqa: BLE001 - only a description is lost
        return {}
    finally:
        os.unlink(path)


def probe(target, trusted, timeout=5.0):
    result = {"client": target["client"], "host": target["host"], "port": target["port"], "address": None}
    try:
        infos = socket.getaddrinfo(target["host"], target["port"], type=socket.SOCK_STREAM)
        result["address"] = infos[0][4][0]
    except socket.gaierror as exc:
        return dict(result, verdict="unresolved", error="%s does not resolve: %s" % (target["host"], exc.strerror))
    try:
        sock = socket.create_connection((result["address"], target["port"]), timeout=timeout)
    except OSError as exc:
        return dict(result, verdict="unreachable", error="cannot connect to %s:%s: %s"
                    % (result["address"], target["port"], exc.strerror or exc))
    if target["scheme"] != "https":
        sock.close()
        return dict(result, verdict="ok", error=None)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    for path in trusted:
        context.load_verify_locations(cafile=path)
    try:
        with context.wrap_socket(sock, server_hostname=target["host"]) as tls:
            return dict(result, verdict="ok", error=None, **_describe(tls.getpeercert()))
    except ssl.SSLCertVerificationError as exc:
        error = exc.verify_message or str(exc)
    except (ssl.SSLError, OSError) as exc:
        return dict(result, verdict="tls-error", error=str(exc))
    # Once more without verification, only to say which certificate was presented.
    loose = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    loose.check_hostname = False
    loose.verify_mode = ssl.CERT_NONE
    seen = {}
    try:
        with socket.create_connection((result["address"], target["port"]), timeout=timeout) as raw:
            with loose.wrap_socket(raw, server_hostname=target["host"]) as tls:
                seen = _decode_der(tls.getpeercert(binary_form=True))
    except (ssl.SSLError, OSError):
        pass
    return dict(result, verdict="untrusted", error=error, **seen)


def main():
    targets = json.loads(sys.argv[1])
    trusted = sorted(glob.glob(os.path.join(sys.argv[2] if len(sys.argv) > 2 else "/cacerts", "*.cer")))
    results = [probe(t, trusted) for t in targets]
    print(json.dumps({"trusted": [os.path.basename(p) for p in trusted], "results": results}))


if __name__ == "__main__":
    main()

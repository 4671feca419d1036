#!/usr/bin/env python3
"""Read-only gate to the Docker API for Traefik's swarm provider (standard library only).

Traefik faces the internet; the Docker socket is root on the node. Mounting the socket
read-only does not help (a read-only bind of a socket still lets a client connect and POST),
so Traefik gets this gate instead, on a network of its own: it passes GET and HEAD of the
discovery endpoints (version, ping, services, tasks, networks, nodes) and answers 403 to
everything else (no container create/exec, no secrets, no logs, no POST at all). Each request
goes over a fresh connection to the engine with `Connection: close`, so no second request can
ride an approved connection unchecked.
"""

from __future__ import annotations

import os
import re
import socket
import socketserver
import sys

ENGINE = os.environ.get("DOCKER_API_SOCKET", "/var/run/docker.sock")
PORT = int(os.environ.get("DOCKER_API_PORT", "2375"))
MAX_HEAD = 16384
ALLOWED = re.compile(
    r"^/(v1\.[0-9]+/)?(_ping|version|services|tasks|networks|nodes)(/[A-Za-z0-9_.-]+)?/?(\?[^ #]*)?$")
_HOP = re.compile(rb"^(connection|keep-alive|proxy-connection|transfer-encoding|content-length)\s*:",
                  re.IGNORECASE)


def allowed(method, target):
    """Only reads of the discovery endpoints pass."""
    return method in ("GET", "HEAD") and ALLOWED.match(target) is not None


class Gate(socketserver.StreamRequestHandler):
    timeout = 30

    def _refuse(self, status):
        body = b"refused by the read-only Docker API gate\n"
        self.wfile.write(b"HTTP/1.1 %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                         b"Connection: close\r\n\r\n%s" % (status.encode(), len(body), body))

    def handle(self):
        head = b""
        while not head.endswith(b"\r\n\r\n"):
            line = self.rfile.readline(MAX_HEAD + 1)
            if not line:
                return
            head += line
            if len(head) > MAX_HEAD:
                self._refuse("431 Request Header Fields Too Large")
                return
        lines = head.split(b"\r\n")
        try:
            method, target, version = lines[0].decode("ascii").split(" ")
        except ValueError:
            self._refuse("400 Bad Request")
            return
        if not version.startswith("HTTP/1.") or not allowed(method, target):
            self._refuse("403 Forbidden")
            return
        # A GET carries no body: any framing header is dropped, and the engine closes after one answer.
        kept = [h for h in lines[1:] if h and not _HOP.match(h)]
        request = b"\r\n".join([lines[0]] + kept + [b"Connection: close", b"", b""])
        engine = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            engine.settimeout(60)
            engine.connect(ENGINE)
            engine.sendall(request)
            while True:
                chunk = engine.recv(65536)
                if not chunk:
                    break
                self.wfile.write(chunk)
        except OSError:
            return
        finally:
            engine.close()


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    with Server(("0.0.0.0", PORT), Gate) as server:
        print("read-only Docker API gate on :%d -> %s" % (PORT, ENGINE), file=sys.stderr, flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()

"""The service's HTTP/1.1 server: request and response types, routing, connections, server TLS."""

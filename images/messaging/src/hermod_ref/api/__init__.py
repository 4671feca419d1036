"""The endpoints: client commands, the device protocol, operator endpoints and the OpenAPI document."""

"""Callbacks to the clients: the dispatcher, its HTTP client and the trust store of cacerts/."""

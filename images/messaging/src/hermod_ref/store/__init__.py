"""PostgreSQL: the connection pool, the lifecycle statements, their batching and the schema check."""

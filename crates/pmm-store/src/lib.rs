//! Postgres and Redis I/O: typed inserts and queries, breaker and cooldown state.

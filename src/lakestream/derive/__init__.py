"""Derive: the ksqlDB-equivalent streams and exact aggregate tables (docs/ksqldb.md)."""

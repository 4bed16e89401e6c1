"""Derive: the ksqlDB-equivalent streams and exact aggregate tables (SPEC §3.2, §3.3)."""

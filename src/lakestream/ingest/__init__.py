"""Ingest: the streaming consumers that land Kafka topics in the lake exactly once."""

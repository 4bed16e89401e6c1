"""Batch export: Kafka (scan) and ksqlDB (pull queries) into the lake, day rebuilds, tables."""

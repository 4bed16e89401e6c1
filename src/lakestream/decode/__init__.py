"""Decode: Kafka message bytes → Arrow tables, with bad records set aside for the DLQ."""

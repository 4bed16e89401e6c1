"""Kafka: the embedded broker, client configuration, producer and admin helpers."""

"""Kafka: the embedded broker, client configuration, producer, admin, consumer and scans."""

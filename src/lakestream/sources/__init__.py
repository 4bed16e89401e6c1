"""Event sources: synthetic transaction generators feeding the Kafka producer."""

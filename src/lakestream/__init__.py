"""Lakestream: keep analytical data current from Kafka event streams."""

__version__ = "0.1.0"

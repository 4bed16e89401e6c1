"""Wiring of the lower layers into the shipped pipelines (transactions, weather)."""

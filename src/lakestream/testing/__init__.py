"""Helpers for tests: local service launchers (SeaweedFS S3) and port utilities.

Nothing in this package is used by Lakestream at run time; it exists so that test
fixtures, fault-injection tests and demos can start real services on loopback.
"""

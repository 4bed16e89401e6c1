"""Helpers for tests: local service launchers (SeaweedFS S3), the database servers and ports.

Nothing here is used by Lakestream at run time, and none of it ships in the wheel: test
fixtures, fault-injection tests and the benchmarks start real services on loopback with it.
"""

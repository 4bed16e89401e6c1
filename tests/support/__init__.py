"""Helpers for tests: local service launchers (SeaweedFS S3) and port utilities.

Nothing here is used by Lakestream at run time, and none of it ships in the wheel: test
fixtures, fault-injection tests and the benchmarks start real services on loopback with it.
"""

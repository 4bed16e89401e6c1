"""Derive: the ksqlDB-equivalent streams and exact aggregate tables (docs/ksqldb.md).

Along the data's path: ``ksqldb/`` (the shipped statements) → ``statements/`` (compiled
into a plan) → ``contracts``/``inputs`` (each batch checked and viewed as its source
declares) → ``executor``/``aggregation`` (the plan run on a batch) → ``state/`` (the
exact state store) → ``outputs`` (publishing); ``processor`` wires them to Kafka.
"""

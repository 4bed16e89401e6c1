"""Dataset names as OpenLineage spells them (https://openlineage.io/docs/spec/naming).

A dataset is a ``(namespace, name)`` pair; the namespace names the system
holding it, the name the dataset within it:

=================  ============================  ===============================
where              namespace                     name
=================  ============================  ===============================
Kafka topic        ``kafka://host:port``         the topic
local lake table   ``file``                      the table folder's absolute path
S3 lake table      ``s3://bucket``               the table folder's key
PostgreSQL table   ``postgres://host:port``      ``database.schema.table``
MySQL / MariaDB    ``mysql://host:port``         ``database.table``
SQLite table       ``sqlite://`` + file path     the table
=================  ============================  ===============================

The spec names no SQLite scheme: Lakestream's is the database file as a URI
(``sqlite:///abs/path/gold.db``), the table being the name, as a server's
address is the namespace of its tables.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlparse

import sqlalchemy as sa
from openlineage.client.naming.dataset import (
    S3,
    Kafka,
    LocalFileSystem,
    MySQL,
    Postgres,
)

from lakestream.lake.storage import Storage

DEFAULT_PORTS = {"postgresql": "5432", "mysql": "3306", "mariadb": "3306"}
KAFKA_PORT = "9092"


@dataclass(frozen=True, order=True)
class DatasetId:
    """One dataset of the lineage graph."""

    namespace: str
    name: str

    @property
    def key(self) -> str:
        """``namespace/name``, unique in a graph (how edges refer to a dataset)."""
        return f"{self.namespace}/{self.name}"


def kafka_topic(bootstrap: str, topic: str) -> DatasetId:
    """The topic on the cluster whose first bootstrap server is ``bootstrap``'s."""
    first = bootstrap.split(",")[0].strip().rsplit("://", 1)[-1]  # PLAINTEXT://host:port too
    parsed = urlparse(f"kafka://{first}")
    host = parsed.hostname or "localhost"
    port = str(parsed.port or KAFKA_PORT)
    naming = Kafka(bootstrap_server_host=host, port=port, topic=topic)
    return DatasetId(naming.get_namespace(), naming.get_name())


def lake_table(storage: Storage, rel: str) -> DatasetId:
    """The lake's dataset at ``rel`` (``bronze/weather``): a local folder or an S3 prefix."""
    if storage.is_local:
        local = LocalFileSystem(path=os.path.abspath(storage.full(rel)))
        return DatasetId(local.get_namespace(), local.get_name())
    bucket, _, prefix = storage.base.partition("/")
    key = f"{prefix}/{rel}" if prefix else rel
    s3 = S3(bucket_name=bucket, object_key=key)
    return DatasetId(s3.get_namespace(), s3.get_name())


def lake_path(storage: Storage, dataset: DatasetId) -> str | None:
    """The lake-relative path of ``dataset``, or ``None`` when it is not in this lake."""
    root = lake_table(storage, "")
    if dataset.namespace != root.namespace:
        return None
    prefix = root.name.rstrip("/") + "/" if root.name else ""
    if prefix and not dataset.name.startswith(prefix):
        return None
    return dataset.name[len(prefix):] or None


def sql_table(url: sa.URL, table: str, schema: str | None = None) -> DatasetId:
    """A table of the database at ``url`` (PostgreSQL, MySQL/MariaDB or SQLite)."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        path = os.path.abspath(url.database) if url.database else ":memory:"
        return DatasetId(f"sqlite://{path}", table)
    host = url.host or "localhost"
    port = str(url.port or DEFAULT_PORTS.get(backend, ""))
    database = url.database or ""
    if backend == "postgresql":
        pg = Postgres(host=host, port=port, database=database, schema=schema or "public",
                      table=table)
        return DatasetId(pg.get_namespace(), pg.get_name())
    my = MySQL(host=host, port=port, database=database, table=table)
    return DatasetId(my.get_namespace(), my.get_name())

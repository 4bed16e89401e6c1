"""The Spark engine (``--engine spark``, extra ``lakestream[spark]``): local mode by default.

It runs the same SQL as DuckDB (:mod:`lakestream.medallion.sql`). Spark reads
and writes the lake itself: a local lake as ``file://`` paths, an S3 lake as
``s3a://`` URLs, which need the hadoop-aws connector on Spark's classpath
(not shipped with pyspark; see docs/weather.md). The driver binds to the
loopback interface only (``SPARK_LOCAL_IP``, ``spark.driver.host`` and
``spark.driver.bindAddress``); the web UI is off.

Delta tables without delta-spark (no such jars here, docs/lake.md): Spark reads a
table from its snapshot's file list (the silver builder hands it the files
the log holds, never a folder), and writes plain Parquet below a staging
folder that :func:`lakestream.medallion.delta_tables.publish_files` moves into
the table and commits with ``create_write_transaction``: Spark does the
work, delta-rs keeps the log.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lakestream.config import S3Settings
from lakestream.lake.storage import Storage
from lakestream.medallion.delta_tables import staged_files
from lakestream.medallion.engines import PARTITION_COLUMNS, MedallionError, SqlEngine
from lakestream.medallion.sql import SPARK

log = logging.getLogger(__name__)

_CONFIG = {
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.parquet.compression.codec": "snappy",
    "spark.sql.sources.partitionOverwriteMode": "static",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.driver.memory": "2g",
}
S3A_HINT = ("add the hadoop-aws jar matching Spark's Hadoop and the AWS SDK bundle, e.g. "
            "spark.jars.packages=org.apache.hadoop:hadoop-aws:<version> (see docs/weather.md)")


def spark_session(s3: S3Settings | None = None, s3_lake: bool = False) -> Any:
    """The process's Spark session in local mode, bound to loopback.

    Raises:
        MedallionError: pyspark or Java is missing.
    """
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise MedallionError("the Spark engine needs pyspark",
                             "pip install 'lakestream[spark]'") from None
    if not os.environ.get("JAVA_HOME") and shutil.which("java") is None:
        raise MedallionError("the Spark engine needs Java 17 or later",
                             "install a JDK, e.g. apt-get install openjdk-17-jre-headless")
    builder = SparkSession.builder.master(os.environ.get("LAKESTREAM_SPARK_MASTER", "local[*]"))
    builder = builder.appName("lakestream-medallion").config(
        "spark.driver.extraJavaOptions", f"-Dlog4j2.configurationFile=file:{_quiet_log4j()}")
    for key, value in {**_CONFIG, **(_s3a_config(s3) if s3_lake and s3 else {})}.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def _quiet_log4j() -> str:
    """A log4j2 configuration that lets only errors through (Spark's default is chatty)."""
    path = os.path.join(tempfile.gettempdir(), "lakestream-spark-log4j2.properties")
    if not os.path.exists(path):
        with open(path, "w", encoding="utf-8") as out:
            out.write("rootLogger.level = error\nrootLogger.appenderRef.stderr.ref = console\n"
                      "appender.console.type = Console\nappender.console.name = console\n"
                      "appender.console.target = SYSTEM_ERR\n"
                      "appender.console.layout.type = PatternLayout\n"
                      "appender.console.layout.pattern = spark: %p %c{1}: %m%n\n")
    return path


def _s3a_config(s3: S3Settings) -> dict[str, str]:
    config = {"spark.hadoop.fs.s3a.path.style.access": "true"}
    if s3.endpoint:
        config["spark.hadoop.fs.s3a.endpoint"] = s3.endpoint
        config["spark.hadoop.fs.s3a.connection.ssl.enabled"] = str(
            s3.endpoint.startswith("https")).lower()
    if s3.access_key and s3.secret_key:
        config["spark.hadoop.fs.s3a.access.key"] = s3.access_key.get_secret_value()
        config["spark.hadoop.fs.s3a.secret.key"] = s3.secret_key.get_secret_value()
    return config


class SparkEngine(SqlEngine):
    """Spark SQL over the lake."""

    dialect = SPARK
    name = "spark"

    def __init__(self, storage: Storage, s3: S3Settings | None = None) -> None:
        super().__init__(storage)
        self.spark = spark_session(s3, s3_lake=not storage.is_local)
        self._cached: list[Any] = []

    def url(self, rel: str) -> str:
        """A lake path as Spark addresses it (``file://`` or ``s3a://``)."""
        if self.storage.is_local:
            return "file://" + self.storage.full(rel)
        return "s3a://" + self.storage.full(rel)

    def register(self, view: str, files: Sequence[str]) -> None:
        """``spark.read.parquet`` with merged schemas."""
        frame = self._run(lambda: self.spark.read.option("mergeSchema", "true")
                          .parquet(*[self.url(f) for f in files]))
        frame.createOrReplaceTempView(view)

    def materialize(self, view: str, sql: str) -> int:
        """A persisted DataFrame."""
        frame = self.spark.sql(sql).persist()
        self._cached.append(frame)
        count = int(self._run(frame.count))
        frame.createOrReplaceTempView(view)
        return count

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        """Collected to the driver."""
        return [tuple(r) for r in self._run(self.spark.sql(sql).collect)]

    def arrow(self, sql: str) -> pa.Table:
        """``DataFrame.toArrow()``."""
        table: pa.Table = self._run(self.spark.sql(sql).toArrow)
        return table

    def stage(self, sql: str, staging: str, order: Sequence[str]) -> pa.Schema:
        """Parquet written by Spark below ``staging``, in ``year=/month=`` folders."""
        columns = self._write_parquet(sql, staging, order)
        files = staged_files(self.storage, staging)
        if not files:
            return _table_schema(pa.schema([]), [])
        with self.storage.fs.open_input_file(self.storage.full(files[0].path)) as f:
            schema = pq.ParquetFile(f).schema_arrow
        return _table_schema(schema, columns)

    def _write_parquet(self, sql: str, staging: str, order: Sequence[str]) -> list[str]:
        """Write ``sql``'s rows below ``staging`` in ``year=/month=`` folders; its columns."""
        from pyspark.sql import functions as F

        year, month = PARTITION_COLUMNS
        frame = self.spark.sql(sql)
        frame = frame.withColumn(year, F.lpad(F.col(year).cast("string"), 4, "0"))
        frame = frame.withColumn(month, F.lpad(F.col(month).cast("string"), 2, "0"))
        frame = frame.repartition(year, month).sortWithinPartitions(year, month, *order)
        self.storage.delete_dir(staging)
        self._run(lambda: frame.write.mode("overwrite").partitionBy(year, month)
                  .parquet(self.url(staging)))
        return list(frame.columns)

    def _run(self, action: Any) -> Any:
        try:
            return action()
        except Exception as exc:
            text = str(exc)
            if "S3AFileSystem" in text or 'scheme "s3a"' in text:
                raise MedallionError("Spark has no S3 connector (hadoop-aws) for this S3 lake",
                                     S3A_HINT) from None
            raise

    def close(self) -> None:
        """Drop the cached DataFrames (the session stays up for the next run)."""
        for frame in self._cached:
            frame.unpersist()
        self._cached.clear()


def _table_schema(files: pa.Schema, columns: Sequence[str]) -> pa.Schema:
    """The table's columns in the query's order: the files' types, string partition columns."""
    fields = [pa.field(c, pa.string()) if c in PARTITION_COLUMNS else files.field(c)
              for c in columns]
    return pa.schema(fields)

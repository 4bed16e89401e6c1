"""The warehouse's star schema (docs/warehouse.md) as SQLAlchemy Core metadata.

One definition serves MySQL/MariaDB (production), PostgreSQL and SQLite. The
files in ``sql/`` are generated from it (``lakestream warehouse ddl``), so the
SQL a DBA runs by hand and what ``lakestream warehouse init`` creates are the
same statements.

Conventions:

* Natural keys are strings; surrogate keys are auto-increment ``BIGINT``
  (``INTEGER`` on SQLite, where only that type aliases the rowid).
* Money is ``NUMERIC(18, 4)`` (returned as ``float``); rates ``NUMERIC(18, 8)``.
* Times are UTC without a zone (``DATETIME(6)`` on MySQL).
* A fact is unique on (natural key, ``snapshot_version``): the upsert key.
* On MySQL every table is InnoDB, ``utf8mb4`` with the binary collation, so
  keys compare exactly as on PostgreSQL and SQLite (``U1`` ≠ ``u1``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
KEY = sa.String(64)
MONEY = sa.Numeric(18, 4, asdecimal=False)
RATE = sa.Numeric(18, 8, asdecimal=False)
STAMP = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")

MONEY_SCALE = 4
RATE_SCALE = 8

MYSQL_OPTIONS: dict[str, Any] = {
    f"{dialect}_{option}": value
    for dialect in ("mysql", "mariadb")  # SQLAlchemy's mariadb dialect reads its own prefix
    for option, value in (("engine", "InnoDB"), ("charset", "utf8mb4"), ("collate", "utf8mb4_bin"))
}

metadata = sa.MetaData()


def _snapshot_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("snapshot_date", sa.Date(), nullable=False),
        sa.Column("snapshot_version", sa.String(32), nullable=False),
    ]


# -- dimensions ---------------------------------------------------------------------------

dim_users = sa.Table(
    "dim_users",
    metadata,
    sa.Column("user_id", KEY, primary_key=True),
    sa.Column("user_name", sa.String(255)),
    sa.Column("user_email", sa.String(255)),
    sa.Column("user_country", sa.String(64)),
    sa.Column("user_city", sa.String(128)),
    sa.Column("last_event_time", STAMP, comment="event the attributes come from; NULL = inferred"),
    sa.Index("ix_dim_users_country", "user_country"),
    comment="One row per user: the latest attributes seen in the transaction stream.",
    **MYSQL_OPTIONS,
)

dim_payment_methods = sa.Table(
    "dim_payment_methods",
    metadata,
    sa.Column("payment_method_id", KEY, primary_key=True),
    sa.Column("payment_method_name", sa.String(128)),
    sa.Column("payment_method_category", sa.String(64)),
    sa.Column("is_active", sa.Boolean()),
    sa.Column("last_event_time", STAMP, comment="event the attributes come from; NULL = inferred"),
    comment="One row per payment method: the latest attributes seen in the stream.",
    **MYSQL_OPTIONS,
)

# -- facts --------------------------------------------------------------------------------


def _user_fk(name: str) -> sa.ForeignKey:
    return sa.ForeignKey("dim_users.user_id", ondelete="CASCADE", name=name)


fact_user_transaction_summary = sa.Table(
    "fact_user_transaction_summary",
    metadata,
    sa.Column("summary_id", ID, primary_key=True, autoincrement=True),
    sa.Column("user_id", KEY, _user_fk("fk_uts_user"), nullable=False),
    sa.Column("transaction_type", sa.String(32), nullable=False),
    sa.Column("total_amount", MONEY, comment="USD"),
    sa.Column("transaction_count", sa.BigInteger()),
    sa.Column("avg_amount", MONEY, comment="USD"),
    *_snapshot_columns(),
    sa.UniqueConstraint("user_id", "transaction_type", "snapshot_version", name="uq_uts_key"),
    sa.Index("ix_uts_snapshot", "snapshot_version", "transaction_type"),
    comment="Completed transactions per user and type (lake table user_transaction_summary).",
    **MYSQL_OPTIONS,
)

fact_user_transaction_summary_eur = sa.Table(
    "fact_user_transaction_summary_eur",
    metadata,
    sa.Column("summary_eur_id", ID, primary_key=True, autoincrement=True),
    sa.Column("user_id", KEY, _user_fk("fk_utse_user"), nullable=False),
    sa.Column("transaction_type", sa.String(32), nullable=False),
    sa.Column("total_amount_eur", MONEY),
    sa.Column("transaction_count", sa.BigInteger()),
    sa.Column("avg_amount_eur", MONEY),
    sa.Column("exchange_rate", RATE, comment="the USD to EUR rate applied"),
    *_snapshot_columns(),
    sa.UniqueConstraint("user_id", "transaction_type", "snapshot_version", name="uq_utse_key"),
    sa.Index("ix_utse_snapshot", "snapshot_version", "transaction_type"),
    comment="The user summary in EUR (lake table user_transaction_summary_eur).",
    **MYSQL_OPTIONS,
)

fact_payment_method_totals = sa.Table(
    "fact_payment_method_totals",
    metadata,
    sa.Column("payment_total_id", ID, primary_key=True, autoincrement=True),
    sa.Column(
        "payment_method_id",
        KEY,
        sa.ForeignKey(
            "dim_payment_methods.payment_method_id", ondelete="CASCADE", name="fk_pmt_method"
        ),
        nullable=False,
    ),
    sa.Column("payment_method_name", sa.String(128)),
    sa.Column("total_amount", MONEY, comment="USD"),
    sa.Column("transaction_count", sa.BigInteger()),
    sa.Column("avg_amount", MONEY, comment="USD"),
    *_snapshot_columns(),
    sa.UniqueConstraint("payment_method_id", "snapshot_version", name="uq_pmt_key"),
    sa.Index("ix_pmt_snapshot", "snapshot_version"),
    comment="Completed transactions per payment method (lake table payment_method_totals).",
    **MYSQL_OPTIONS,
)

fact_product_purchase_counts = sa.Table(
    "fact_product_purchase_counts",
    metadata,
    sa.Column("product_count_id", ID, primary_key=True, autoincrement=True),
    sa.Column("product_id", KEY, nullable=False),
    sa.Column("product_name", sa.String(255)),
    sa.Column("product_category", sa.String(64)),
    sa.Column("purchase_count", sa.BigInteger()),
    sa.Column("total_revenue", MONEY, comment="USD"),
    sa.Column("avg_price", MONEY, comment="mean unit price, USD"),
    sa.Column("unique_buyers", sa.BigInteger()),
    *_snapshot_columns(),
    sa.UniqueConstraint("product_id", "snapshot_version", name="uq_ppc_key"),
    sa.Index("ix_ppc_snapshot", "snapshot_version", "purchase_count"),
    comment="Completed purchases per product (lake table product_purchase_counts).",
    **MYSQL_OPTIONS,
)

# -- operations ---------------------------------------------------------------------------

data_lake_permissions = sa.Table(
    "data_lake_permissions",
    metadata,
    sa.Column("permission_id", ID, primary_key=True, autoincrement=True),
    sa.Column("principal", sa.String(128), nullable=False),
    sa.Column("dataset", sa.String(255), nullable=False),
    sa.Column("level", sa.String(8), nullable=False),
    sa.Column("granted_by", sa.String(128)),
    sa.Column("granted_at", STAMP, nullable=False),
    sa.UniqueConstraint("principal", "dataset", name="uq_permissions_principal_dataset"),
    sa.CheckConstraint("level IN ('read', 'write', 'admin')", name="ck_permissions_level"),
    comment="Who may read or write which lake dataset (docs/governance.md).",
    **MYSQL_OPTIONS,
)

pipeline_execution_log = sa.Table(
    "pipeline_execution_log",
    metadata,
    sa.Column("execution_id", ID, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("pipeline", sa.String(64), nullable=False),
    sa.Column("task", sa.String(128), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempt", sa.Integer(), nullable=False),
    sa.Column("started_at", STAMP, nullable=False),
    sa.Column("ended_at", STAMP),
    sa.Column("rows_in", sa.BigInteger()),
    sa.Column("rows_out", sa.BigInteger()),
    sa.Column("error", sa.Text()),
    sa.Index("ix_execution_log_pipeline", "pipeline", "started_at"),
    sa.Index("ix_execution_log_run", "run_id"),
    comment="One row per task of a run (sync, scheduled pipelines).",
    **MYSQL_OPTIONS,
)

warehouse_offsets = sa.Table(
    "warehouse_offsets",
    metadata,
    sa.Column("consumer", sa.String(128), primary_key=True),
    sa.Column("topic", sa.String(249), primary_key=True),
    sa.Column("partition", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("next_offset", sa.BigInteger(), nullable=False),
    sa.Column("updated_at", STAMP),
    comment="Kafka offsets of the streaming warehouse loader, committed with its rows.",
    **MYSQL_OPTIONS,
)

audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("audit_id", ID, primary_key=True, autoincrement=True),
    sa.Column("at", STAMP, nullable=False),
    sa.Column("principal", sa.String(128), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("dataset", sa.String(255)),
    sa.Column("detail", sa.Text()),
    sa.Index("ix_audit_log_at", "at"),
    sa.Index("ix_audit_log_principal", "principal", "at"),
    comment="Who read, granted, revoked or deleted what, and when (docs/governance.md).",
    **MYSQL_OPTIONS,
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("token_id", ID, primary_key=True, autoincrement=True),
    sa.Column("token_hash", sa.String(64), nullable=False, comment="SHA-256 of the token, hex"),
    sa.Column("principal", sa.String(128), nullable=False),
    sa.Column("created_at", STAMP, nullable=False),
    sa.UniqueConstraint("token_hash", name="uq_api_tokens_hash"),
    comment="API tokens (only their hashes) and the principal each one acts as.",
    **MYSQL_OPTIONS,
)

OPERATIONAL_TABLES = (
    data_lake_permissions,
    pipeline_execution_log,
    warehouse_offsets,
    audit_log,
    api_tokens,
)
DIMENSION_TABLES = (dim_users, dim_payment_methods)
FACT_TABLES = (
    fact_user_transaction_summary,
    fact_user_transaction_summary_eur,
    fact_payment_method_totals,
    fact_product_purchase_counts,
)


@dataclass(frozen=True)
class Dimension:
    """How a fact refers to a dimension: ``fact_columns`` fill ``table``'s columns."""

    table: sa.Table
    fact_columns: tuple[str, ...]


@dataclass(frozen=True)
class FactSpec:
    """How one lake table lands in one fact table.

    Attributes:
        lake_table: Folder name below ``<lake>/tables/``.
        table: The fact table.
        natural_key: Key columns in the lake table (the fact's key without the snapshot).
        measures: The other columns taken from the lake table.
        dimension: The dimension the fact's foreign key points to, if any.
    """

    lake_table: str
    table: sa.Table
    natural_key: tuple[str, ...]
    measures: tuple[str, ...]
    dimension: Dimension | None = None

    @property
    def key(self) -> tuple[str, ...]:
        """The fact's unique key: natural key and snapshot version."""
        return (*self.natural_key, "snapshot_version")

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column a load writes (all but the surrogate key)."""
        return (*self.natural_key, *self.measures, "snapshot_date", "snapshot_version")


FACTS: tuple[FactSpec, ...] = (
    FactSpec(
        "user_transaction_summary",
        fact_user_transaction_summary,
        ("user_id", "transaction_type"),
        ("total_amount", "transaction_count", "avg_amount"),
        Dimension(dim_users, ("user_id",)),
    ),
    FactSpec(
        "user_transaction_summary_eur",
        fact_user_transaction_summary_eur,
        ("user_id", "transaction_type"),
        ("total_amount_eur", "transaction_count", "avg_amount_eur", "exchange_rate"),
        Dimension(dim_users, ("user_id",)),
    ),
    FactSpec(
        "payment_method_totals",
        fact_payment_method_totals,
        ("payment_method_id",),
        ("payment_method_name", "total_amount", "transaction_count", "avg_amount"),
        Dimension(dim_payment_methods, ("payment_method_id", "payment_method_name")),
    ),
    FactSpec(
        "product_purchase_counts",
        fact_product_purchase_counts,
        ("product_id",),
        (
            "product_name",
            "product_category",
            "purchase_count",
            "total_revenue",
            "avg_price",
            "unique_buyers",
        ),
    ),
)

FACTS_BY_LAKE_TABLE = {f.lake_table: f for f in FACTS}

DIMENSION_COLUMNS = {
    "dim_users": ("user_id", "user_name", "user_email", "user_country", "user_city"),
    "dim_payment_methods": (
        "payment_method_id",
        "payment_method_name",
        "payment_method_category",
        "is_active",
    ),
}

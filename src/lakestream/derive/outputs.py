"""Publishing the processor's outputs: derived streams and table changelogs."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
import pyarrow as pa

from lakestream.derive import sql
from lakestream.derive.state import AggregateState, mean, money
from lakestream.errors import BrokerUnavailableError


def table_messages(state: AggregateState, deltas: dict[str, pa.Table],
                   usd_to_eur: float) -> dict[str, list[tuple[bytes, bytes]]]:
    """The new value of every table key one batch touched, as (key, value) messages."""
    user_keys = sorted(set(zip(deltas["user"].column("user_id").to_pylist(),
                               deltas["user"].column("transaction_type").to_pylist(),
                               strict=True)))
    users = state.user_values(user_keys, usd_to_eur)
    usd = [{"user_id": r["user_id"], "transaction_type": r["transaction_type"],
            "total_amount": money(r["total_micro"]), "transaction_count": r["n"],
            "avg_amount": mean(r["total_micro"], r["n"])} for r in users]
    eur = [{"user_id": r["user_id"], "transaction_type": r["transaction_type"],
            "total_amount_eur": money(r["eur_micro"]), "transaction_count": r["n"],
            "avg_amount_eur": mean(r["eur_micro"], r["n"]), "exchange_rate": r["rate"]}
           for r in users]
    payments = state.payment_values(sorted(set(deltas["payment"].column(
        "payment_method_id").to_pylist())))
    products = state.product_values(sorted(set(deltas["product"].column(
        "product_id").to_pylist())))
    rows = {"user_transaction_summary": usd, "user_transaction_summary_eur": eur,
            "payment_method_totals": payments, "product_purchase_counts": products}
    return {table: [(table_key(sql.TABLES[table][0], r), orjson.dumps(r)) for r in table_rows]
            for table, table_rows in rows.items()}


def table_key(columns: Sequence[str], row: dict[str, Any]) -> bytes:
    """A table key: the value itself for one column, a JSON object for several."""
    if len(columns) == 1:
        return str(row[columns[0]]).encode()
    return orjson.dumps({c: row[c] for c in columns})


class OutputPublisher:
    """Produces a batch's outputs and waits until the broker acknowledged all of them."""

    def __init__(self, config: dict[str, Any], timeout_s: float = 60.0) -> None:
        from confluent_kafka import Producer

        self.producer = Producer({**config, "enable.idempotence": True},
                                 logger=logging.getLogger("lakestream.kafka"))
        self.timeout_s = timeout_s

    def publish(self, partition: int, streams: dict[str, tuple[list[bytes], list[bytes]]],
                tables: dict[str, list[tuple[bytes, bytes]]]) -> int:
        """Send everything; raise :class:`BrokerError` unless every message was acknowledged."""
        errors: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                errors.append(str(err))

        sent = 0
        for topic, (keys, values) in streams.items():
            for key, value in zip(keys, values, strict=True):
                self._send(topic, value, key, partition, delivered)
            sent += len(values)
        for topic, messages in tables.items():
            for key, value in messages:
                self._send(topic, value, key, None, delivered)
            sent += len(messages)
        remaining = self.producer.flush(self.timeout_s)
        if remaining or errors:
            first = errors[0] if errors else f"{remaining} not acknowledged in {self.timeout_s}s"
            raise BrokerUnavailableError(f"publishing derived records failed: {first}")
        return sent

    def _send(self, topic: str, value: bytes, key: bytes, partition: int | None,
              callback: Any) -> None:
        kwargs: dict[str, Any] = {"key": key, "on_delivery": callback}
        if partition is not None:
            kwargs["partition"] = partition
        while True:
            try:
                self.producer.produce(topic, value, **kwargs)
                return
            except BufferError:
                self.producer.poll(0.05)

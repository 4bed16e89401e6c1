"""The data behind the dashboard's charts: one named query over one dataset each.

Each chart reads a single dataset (so one permission decides whether a
principal may see it), through a view over that dataset alone; tables are
read at their current version.
"""

from __future__ import annotations

from dataclasses import dataclass

from lakestream.errors import LakestreamError


class UnknownChartError(LakestreamError):
    """No chart of that name."""


@dataclass(frozen=True)
class Chart:
    """A chart: the dataset it reads, the SQL over the view ``data``, and how to draw it."""

    name: str
    title: str
    dataset: str
    sql: str
    kind: str  # line | bar
    x: str
    y: tuple[str, ...]
    series: str | None = None


CHARTS: dict[str, Chart] = {c.name: c for c in (
    Chart("weather_temperature", "Temperature per city (°C, last 7 days of observations)",
          "silver_weather_cleaned",
          "SELECT city, \"timestamp\", temperature, humidity FROM data "
          "WHERE \"timestamp\" >= (SELECT max(\"timestamp\") FROM data) - INTERVAL 7 DAY "
          "ORDER BY city, \"timestamp\"",
          "line", "timestamp", ("temperature",), "city"),
    Chart("weather_daily", "Daily average temperature per city (°C, last 30 days)",
          "silver_weather_daily_agg",
          "SELECT city, \"date\", observations, temperature_avg, temperature_min, "
          "temperature_max, humidity_avg, rain_total, quality_score_avg FROM data "
          "WHERE \"date\" >= (SELECT max(\"date\") FROM data) - INTERVAL 30 DAY "
          "ORDER BY \"date\", city",
          "line", "date", ("temperature_avg",), "city"),
    Chart("payment_methods", "Completed transactions by payment method (USD)",
          "payment_method_totals",
          "SELECT payment_method_name, transaction_count, total_amount, avg_amount FROM data "
          "ORDER BY total_amount DESC, payment_method_name",
          "bar", "payment_method_name", ("total_amount",)),
    Chart("top_products", "Top 10 products by revenue (USD, completed purchases)",
          "product_purchase_counts",
          "SELECT product_id, product_name, purchase_count, total_revenue, unique_buyers "
          "FROM data ORDER BY total_revenue DESC, product_id LIMIT 10",
          "bar", "product_name", ("total_revenue",)),
    Chart("currencies", "Completed transaction volume per currency",
          "transaction_stream_anonymized",
          "SELECT currency, count(*) AS transactions, round(sum(amount), 2) AS amount, "
          "round(sum(amount_usd), 2) AS amount_usd FROM data WHERE status = 'completed' "
          "GROUP BY currency ORDER BY amount_usd DESC, currency",
          "bar", "currency", ("amount_usd",)),
)}


def chart(name: str) -> Chart:
    """The chart called ``name``.

    Raises:
        UnknownChartError: No such chart.
    """
    if name not in CHARTS:
        raise UnknownChartError(f"unknown chart '{name}'", f"charts: {', '.join(CHARTS)}")
    return CHARTS[name]

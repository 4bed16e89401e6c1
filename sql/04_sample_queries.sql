-- Lakestream warehouse: sample analytical queries.
--
-- Portable SQL: each runs unchanged on MySQL/MariaDB, PostgreSQL and SQLite
-- (tests/warehouse/test_sample_queries.py runs all of them on all three).
-- Parameters are named, in the style of SQLAlchemy text() and aiosql:
--   snapshot           the snapshot to look at, e.g. 'v3' (see the snapshots query)
--   previous_snapshot  the snapshot to compare it with, e.g. 'v2'
-- Every query filters on snapshot_version first: the ix_*_snapshot indexes
-- and the unique keys serve it.

-- name: snapshots
-- The snapshots loaded into the user summary, oldest first, with their totals.
SELECT snapshot_version,
       snapshot_date,
       COUNT(*) AS summary_rows,
       COUNT(DISTINCT user_id) AS users,
       SUM(total_amount) AS total_usd
FROM fact_user_transaction_summary
GROUP BY snapshot_version, snapshot_date
ORDER BY snapshot_date, snapshot_version;

-- name: top_users_by_spend
-- The ten users who spent the most (completed purchases and subscriptions, USD).
SELECT u.user_id,
       u.user_name,
       u.user_country,
       SUM(f.total_amount) AS spend_usd,
       SUM(f.transaction_count) AS transactions
FROM fact_user_transaction_summary f
JOIN dim_users u ON u.user_id = f.user_id
WHERE f.snapshot_version = :snapshot
  AND f.transaction_type IN ('purchase', 'subscription')
GROUP BY u.user_id, u.user_name, u.user_country
ORDER BY spend_usd DESC, u.user_id
LIMIT 10;

-- name: totals_by_payment_method
-- Completed volume per payment method, with its share of the total in percent.
SELECT p.payment_method_id,
       p.payment_method_name,
       p.payment_method_category,
       f.total_amount,
       f.transaction_count,
       f.avg_amount,
       ROUND(100.0 * f.total_amount / t.all_amount, 2) AS share_pct
FROM fact_payment_method_totals f
JOIN dim_payment_methods p ON p.payment_method_id = f.payment_method_id
CROSS JOIN (
    SELECT SUM(total_amount) AS all_amount
    FROM fact_payment_method_totals
    WHERE snapshot_version = :snapshot
) t
WHERE f.snapshot_version = :snapshot
ORDER BY f.total_amount DESC, p.payment_method_id;

-- name: best_selling_products
-- The ten products bought most often (completed purchases), then by revenue.
SELECT product_id,
       product_name,
       product_category,
       purchase_count,
       unique_buyers,
       total_revenue,
       avg_price
FROM fact_product_purchase_counts
WHERE snapshot_version = :snapshot
ORDER BY purchase_count DESC, total_revenue DESC, product_id
LIMIT 10;

-- name: revenue_by_country
-- Completed purchase volume by the buyer's country.
SELECT u.user_country,
       COUNT(DISTINCT u.user_id) AS buyers,
       SUM(f.total_amount) AS spend_usd
FROM fact_user_transaction_summary f
JOIN dim_users u ON u.user_id = f.user_id
WHERE f.snapshot_version = :snapshot
  AND f.transaction_type = 'purchase'
GROUP BY u.user_country
ORDER BY spend_usd DESC, u.user_country;

-- name: usd_vs_eur_per_user
-- Each user's completed volume in USD and in EUR, and the USD to EUR rate applied.
SELECT usd.user_id,
       SUM(usd.total_amount) AS total_usd,
       SUM(eur.total_amount_eur) AS total_eur,
       MAX(eur.exchange_rate) AS exchange_rate
FROM fact_user_transaction_summary usd
JOIN fact_user_transaction_summary_eur eur
  ON eur.user_id = usd.user_id
 AND eur.transaction_type = usd.transaction_type
 AND eur.snapshot_version = usd.snapshot_version
WHERE usd.snapshot_version = :snapshot
GROUP BY usd.user_id
ORDER BY total_usd DESC, usd.user_id;

-- name: snapshot_change_per_user
-- The ten users whose completed volume grew most from one snapshot to the next.
SELECT cur.user_id,
       COALESCE(prev.total_usd, 0) AS previous_usd,
       cur.total_usd AS current_usd,
       cur.total_usd - COALESCE(prev.total_usd, 0) AS change_usd
FROM (
    SELECT user_id, SUM(total_amount) AS total_usd
    FROM fact_user_transaction_summary
    WHERE snapshot_version = :snapshot
    GROUP BY user_id
) cur
LEFT JOIN (
    SELECT user_id, SUM(total_amount) AS total_usd
    FROM fact_user_transaction_summary
    WHERE snapshot_version = :previous_snapshot
    GROUP BY user_id
) prev ON prev.user_id = cur.user_id
ORDER BY change_usd DESC, cur.user_id
LIMIT 10;

-- name: snapshot_change_per_payment_method
-- Transactions and volume per payment method: previous snapshot, current, change.
SELECT cur.payment_method_id,
       cur.payment_method_name,
       COALESCE(prev.transaction_count, 0) AS previous_transactions,
       cur.transaction_count AS current_transactions,
       cur.total_amount - COALESCE(prev.total_amount, 0) AS change_usd
FROM fact_payment_method_totals cur
LEFT JOIN fact_payment_method_totals prev
  ON prev.payment_method_id = cur.payment_method_id
 AND prev.snapshot_version = :previous_snapshot
WHERE cur.snapshot_version = :snapshot
ORDER BY change_usd DESC, cur.payment_method_id;

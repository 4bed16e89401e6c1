-- Lakestream's transactions program: `lakestream process` compiles and runs these files (in
-- name order); a team running ksqlDB can run them with its CLI instead (RUN SCRIPT '01_...';).
-- `lakestream ingest` reads only topics, so either way the lake and warehouse get the same data.
--
-- What `lakestream process` adds around them (docs/ksqldb.md):
--  * events are checked against the `transactions` contract first (SPEC 3.1: required fields,
--    amount > 0, a known currency, type and status); a failing event goes to the dead letters
--    with its reason, and the statements never see it;
--  * `event_time` is read as ISO-8601 (with or without fraction, Z or an offset) and handed to
--    the statements in the TIMESTAMP_FORMAT below, in UTC;
--  * SUM/AVG of DOUBLE keep exact integer micro-units; COUNT_DISTINCT is exact;
--  * records carry _source_partition/_source_offset (ingest drops replayed ones).
--
-- On a ksqlDB server: the anonymized stream needs a user-defined function
-- HMAC_SHA256(value, key) (ksql.extension.dir); DOUBLE sums may drift in the last decimals;
-- records carry no _source_* columns (ingest then relies on exactly_once_v2).

SET 'auto.offset.reset' = 'earliest';

CREATE STREAM transaction_stream (
  transaction_id VARCHAR,
  event_time VARCHAR,
  transaction_type VARCHAR,
  status VARCHAR,
  amount DOUBLE,
  currency VARCHAR,
  quantity INT,
  `user` STRUCT<user_id VARCHAR, name VARCHAR, email VARCHAR, country VARCHAR, city VARCHAR>,
  payment_method STRUCT<payment_method_id VARCHAR, name VARCHAR, category VARCHAR,
                        is_active BOOLEAN>,
  product STRUCT<product_id VARCHAR, name VARCHAR, category VARCHAR, unit_price DOUBLE>,
  device STRUCT<ip_address VARCHAR, user_agent VARCHAR>,
  card_last4 VARCHAR
) WITH (
  KAFKA_TOPIC = 'transactions',
  VALUE_FORMAT = 'JSON',
  TIMESTAMP = 'event_time',
  TIMESTAMP_FORMAT = 'yyyy-MM-dd''T''HH:mm:ss.SSSX'
);

-- Reference data, fed from Lakestream's files (lakestream reference rates|blacklist).
CREATE TABLE exchange_rates (
  currency VARCHAR PRIMARY KEY,
  to_usd DOUBLE,
  usd_to_eur DOUBLE
) WITH (KAFKA_TOPIC = 'reference_exchange_rates', VALUE_FORMAT = 'JSON', PARTITIONS = 1);

CREATE TABLE blacklist (
  entry VARCHAR PRIMARY KEY,
  kind VARCHAR,
  value VARCHAR
) WITH (KAFKA_TOPIC = 'reference_blacklist', VALUE_FORMAT = 'JSON', PARTITIONS = 1);

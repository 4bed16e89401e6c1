-- Lakestream: the ksqlDB statements that produce the same eight topics as `lakestream process`.
-- Run them in order with the ksqlDB CLI (RUN SCRIPT '01_source_and_reference.sql'; ...).
-- A team that runs these can skip `lakestream process`: `lakestream ingest` reads only topics.
--
-- Differences to know (Lakestream's processor is the reference; see docs/ksqldb.md):
--  * ksqlDB has no keyed hash: the anonymized stream needs a user-defined function
--    HMAC_SHA256(value, key) deployed on the server (ksql.extension.dir).
--  * ksqlDB sums DOUBLEs; Lakestream sums micro-units exactly. Totals can differ in the
--    last decimal places after many events.
--  * Records from ksqlDB carry no _source_partition/_source_offset columns: ingest then
--    relies on ksqlDB's own exactly-once (processing.guarantee=exactly_once_v2).

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

-- Id columns in collation "C" against the database's default (C.UTF-8 on the server
-- infra/postgres.sh starts), on PostgreSQL: a table keyed as processed_inputs.
--   psql -h 127.0.0.1 -p 55432 -U postgres -f tools/experiments/pg-id-collation.sql
-- The two INSERTs (200,000 random UUIDs) and the two lookups (50,000 absent ids) compare,
-- default first. Measured 2026-12-07, two runs: inserts 1,182 and 945 ms against 888 and
-- 861 ms; lookups 230 and 313 ms against 206 and 264 ms.
DROP DATABASE IF EXISTS cexp;
CREATE DATABASE cexp;
\c cexp
CREATE TABLE a (event_id varchar(64), consumer varchar(64), x int, PRIMARY KEY (event_id, consumer));
CREATE TABLE b (event_id varchar(64) COLLATE "C", consumer varchar(64) COLLATE "C", x int, PRIMARY KEY (event_id, consumer));
CREATE TABLE src AS SELECT gen_random_uuid()::text AS id FROM generate_series(1,200000);
\timing on
INSERT INTO a SELECT id, 'usage-statistics', 1 FROM src;
INSERT INTO b SELECT id, 'usage-statistics', 1 FROM src;
SELECT count(*) FROM a WHERE consumer = 'usage-statistics' AND event_id IN (SELECT gen_random_uuid()::text FROM generate_series(1,50000));
SELECT count(*) FROM b WHERE consumer = 'usage-statistics' AND event_id IN (SELECT gen_random_uuid()::text FROM generate_series(1,50000));
\c postgres
DROP DATABASE cexp;

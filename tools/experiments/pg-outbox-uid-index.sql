-- What the unique index on outbox.uid costs the relay's marking UPDATE on PostgreSQL.
--   psql -h 127.0.0.1 -p 55432 -U postgres -f tools/experiments/pg-outbox-uid-index.sql
-- Two tables shaped as outbox (130,000 rows of 700-byte values, uids as the service makes
-- them: a per-process prefix and a counter, two processes), with and without the uid index;
-- the two "UPDATE" timings compare. Measured 2026-12-07, three runs: 1,066, 1,291 and 1,123
-- ms with it; 759, 785 and 784 ms without.
\timing on
DROP DATABASE IF EXISTS outbox_exp;
CREATE DATABASE outbox_exp;
\c outbox_exp
CREATE TABLE a (id bigserial PRIMARY KEY, uid varchar(32) NOT NULL, topic varchar(249), key varchar(300), value text, created_at timestamptz, published_at timestamptz, published boolean);
CREATE INDEX a_unpub ON a (published, id); CREATE UNIQUE INDEX a_uid ON a (uid);
CREATE TABLE b (LIKE a INCLUDING DEFAULTS); ALTER TABLE b ADD PRIMARY KEY (id); CREATE INDEX b_unpub ON b (published, id);
INSERT INTO a (uid, topic, key, value, created_at, published) SELECT CASE WHEN g%2=0 THEN 'aaaaaaaaaaaaaaaaaaaa' ELSE 'bbbbbbbbbbbbbbbbbbbb' END || lpad(to_hex(g),12,'0'), 'decisions', 'room-'||(g%1000), repeat('x', 700), now(), false FROM generate_series(1,130000) g;
INSERT INTO b SELECT * FROM a;
VACUUM ANALYZE a; VACUUM ANALYZE b;
UPDATE a SET published = true, published_at = now() WHERE id BETWEEN 1 AND 130000;
UPDATE b SET published = true, published_at = now() WHERE id BETWEEN 1 AND 130000;
\c postgres
DROP DATABASE outbox_exp;

#!/usr/bin/env bash
# Ensures a PostgreSQL server for the tests: installs Debian's package when absent,
# then runs a private cluster on 127.0.0.1:$PORT (trust auth, loopback only).
# Prints the SQLAlchemy URL on its last line. SPACES_PG_OPTIONS adds server options when it
# starts the server (e.g. "-c shared_preload_libraries=pg_stat_statements", for
# tools/pg_statements.py); a server already running keeps its own.
set -euo pipefail
PORT=${SPACES_PG_PORT:-55432}
DATA=${SPACES_PG_DATA:-/var/tmp/community-spaces-pg}
LOG=$DATA.log

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  echo "installing postgresql (apt-get)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
fi
BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
as_postgres() { if [ "$(id -u)" = 0 ]; then (cd / && runuser -u postgres -- "$@"); else "$@"; fi; }

if [ ! -f "$DATA/PG_VERSION" ]; then
  mkdir -p "$DATA"
  [ "$(id -u)" = 0 ] && chown postgres:postgres "$DATA"
  as_postgres "$BIN/initdb" -D "$DATA" -U postgres --auth=trust -E UTF8 >/dev/null
fi
if ! as_postgres "$BIN/pg_isready" -h 127.0.0.1 -p "$PORT" -q; then
  touch "$LOG"; [ "$(id -u)" = 0 ] && chown postgres:postgres "$LOG"
  as_postgres "$BIN/pg_ctl" -D "$DATA" -l "$LOG" -w -t 60 \
    -o "-p $PORT -c listen_addresses=127.0.0.1 -k /tmp -c max_connections=200 -c fsync=off ${SPACES_PG_OPTIONS:-}" start >&2 \
    || { echo "postgresql failed to start; log tail:" >&2; tail -n 30 "$LOG" >&2; exit 1; }
fi
for _ in $(seq 1 100); do
  as_postgres "$BIN/pg_isready" -h 127.0.0.1 -p "$PORT" -q && break
  sleep 0.1
done
echo "postgresql+asyncpg://postgres@127.0.0.1:$PORT/postgres"

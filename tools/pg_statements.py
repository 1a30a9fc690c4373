"""Profiling aid: where a local PostgreSQL server's time went, by statement (pg_stat_statements).

    python tools/pg_statements.py --reset            # before the run to measure
    python tools/pg_statements.py [N]                # after it: the N costliest (default 12)

The server must load the extension, which only a start can do: stop it, then start it with
``SPACES_PG_OPTIONS="-c shared_preload_libraries=pg_stat_statements" bash infra/postgres.sh``
(``pg_ctl -D /var/tmp/community-spaces-pg stop`` as the ``postgres`` user stops it; plain
``bash infra/postgres.sh`` starts it as the tests and the bench use it again). The server's
CPU seconds (``bench.common.postgres_cpu_seconds``, what ``make bench`` reads) are printed
with the table, so a run's share is the difference between two calls.
"""

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg  # type: ignore[import-untyped]

from bench.common import postgres_cpu_seconds

URL = "postgresql://postgres@127.0.0.1:55432/postgres"  # infra/postgres.sh


async def main() -> None:
    conn = await asyncpg.connect(URL)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        if "--reset" in sys.argv:
            await conn.execute("SELECT pg_stat_statements_reset()")
            print(f"reset; server CPU so far {postgres_cpu_seconds()} s")
            return
        top = int(next((a for a in sys.argv[1:] if a.isdigit()), "12"))
        rows = await conn.fetch(
            "SELECT total_exec_time, calls, rows, query FROM pg_stat_statements"
            " ORDER BY total_exec_time DESC LIMIT $1",
            top,
        )
        total = await conn.fetchval("SELECT sum(total_exec_time) FROM pg_stat_statements")
        print(f"server CPU so far {postgres_cpu_seconds()} s; statements' time {total:,.0f} ms")
        print(f"{'ms':>8} {'share':>6} {'calls':>7} {'rows':>8} {'us/row':>7}  statement")
        for row in rows:
            per_row = row["total_exec_time"] * 1000 / row["rows"] if row["rows"] else 0
            text = " ".join(row["query"].split())[:90]
            share = 100 * row["total_exec_time"] / total
            print(
                f"{row['total_exec_time']:8,.0f} {share:5.1f}% {row['calls']:7,}"
                f" {row['rows']:8,} {per_row:7.1f}  {text}"
            )
    except asyncpg.exceptions.ObjectNotInPrerequisiteStateError:
        sys.exit("pg_stat_statements is not loaded: start the server as the docstring says")
    finally:
        await conn.close()


asyncio.run(main())

"""Profiling aid: the service's /metrics every 0.25 s, one line per sample (Ctrl-C ends it).

    python tools/sample_metrics.py [SECONDS]   # default 30; start it next to tools/scale_run.py

Per line: seconds since the first answer; the room authority's records decided and its relay's
rows published (decisions and occupancy; port 8331);
the statistics' batches and records folded and their aggregates held back (port 8332). A
0 where a process did not answer within 0.5 s (a long batch holds its event loop). Shows
how far the statistics trail the room authority during a run.
"""

import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.service_proc import metric_lines

END = time.time() + (float(sys.argv[1]) if len(sys.argv) > 1 else 30)


def scrape(port: int) -> str:
    return "\n".join(metric_lines(port, lambda line: True, timeout=0.5))


def value(text: str, pattern: str) -> float:
    return sum(float(m) for m in re.findall(pattern + r"\S* ([0-9.e+]+)", text))


AUTHORITY_RECORDS = r'spaces_batch_records_sum\{consumer="authority"\}'
STATISTICS_BATCHES = r'spaces_batch_records_count\{consumer="statistics"\}'
STATISTICS_RECORDS = r'spaces_batch_records_sum\{consumer="statistics"\}'
HELD_BACK = r"spaces_usage_aggregates_unpublished"
RELAYED = r"spaces_outbox_published_total"

started = None
while time.time() < END:
    authority, statistics = scrape(8331), scrape(8332)
    if not (authority or statistics):
        time.sleep(0.1)
        continue
    started = started or time.time()
    print(
        f"{time.time() - started:5.2f}"
        f" authority_records={value(authority, AUTHORITY_RECORDS):.0f}"
        f" relayed={value(authority, RELAYED):.0f}"
        f" statistics_batches={value(statistics, STATISTICS_BATCHES):.0f}"
        f" statistics_records={value(statistics, STATISTICS_RECORDS):.0f}"
        f" held_back={value(statistics, HELD_BACK):.0f}",
        flush=True,
    )
    time.sleep(0.25)

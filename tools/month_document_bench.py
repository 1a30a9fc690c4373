"""Profiling aid (not a benchmark target): ``MonthUsage.to_json`` of one month as a real one
looks after a week or more of use, every weekday-hour of its heatmap used.

    python tools/month_document_bench.py [SLOTS]   # slots used, 168 by default

Every batch of the statistics writes each month of each room and center it changed; the
bench's traffic spans seconds, so its months have nearly empty heatmaps and
``tools/fold_bench.py`` does not see what their slots cost.
"""
import sys, timeit
from datetime import UTC, datetime
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from domain.usage import COUNTERS, MonthUsage

used = int(sys.argv[1]) if len(sys.argv) > 1 else 168
month = MonthUsage(counts={counter: 1_000 for counter in COUNTERS}, peak_occupancy=15)
month.peak_at = datetime(2026, 12, 1, 10, tzinfo=UTC)
month.members = {f"member-{n:04d}" for n in range(50)}
month.unique_members = len(month.members)
month.slots = {"Asia/Seoul": {slot: 3_600 * (slot % 7 + 1) for slot in range(used)}}
runs = sorted(timeit.repeat(month.to_json, number=2_000, repeat=5))
print(f"MonthUsage.to_json, {used} slots, 50 members: {runs[0] / 2_000 * 1e6:.1f} us (best of 5)")

"""Profiling aid: what a memray capture kept, summed by the Python frames that allocated it.

    python tools/memray_leaks.py CAPTURE.bin [FRAMES] [TOP]

memray is not a dependency of the project (``.venv/bin/pip install memray``). Capture a
running service process for a while, then summarise what it allocated in that window and
had not freed at its end:

    .venv/bin/memray attach --aggregate -o /tmp/stats.bin --duration 9 <pid>
    .venv/bin/python tools/memray_leaks.py /tmp/stats.bin 3

Each line: MiB still held, and the innermost ``FRAMES`` frames (default 3) of the project
or its libraries that allocated it. pymalloc takes memory from the system an arena (1 MiB)
at a time, so an entry of exactly 1.00 MiB is an arena charged to whichever allocation
needed it: a sign of fragmentation, not of that line's objects.
"""

import collections
import html
import json
import subprocess
import sys
import tempfile
from pathlib import Path

capture = sys.argv[1]
depth = int(sys.argv[2]) if len(sys.argv) > 2 else 3
top = int(sys.argv[3]) if len(sys.argv) > 3 else 25
memray = Path(sys.executable).with_name("memray")
ROOT = str(Path(__file__).resolve().parents[1])

with tempfile.TemporaryDirectory() as directory:
    page = Path(directory) / "leaks.html"
    subprocess.run(
        [str(memray), "flamegraph", "--leaks", "-f", "-o", str(page), capture],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    text = page.read_text()
start = text.index("packed_data = ") + len("packed_data = ")
data, _ = json.JSONDecoder().raw_decode(text[start:])
nodes, strings = data["nodes"], data["strings"]
children, value = nodes["children"], nodes["value"]
parent: list[int | None] = [None] * len(children)
for node, kids in enumerate(children):
    for kid in kids:
        parent[kid] = node


def frame(node: int) -> tuple[str, str, int]:
    name = html.unescape(strings[nodes["function"][node]])
    return name, strings[nodes["filename"][node]], nodes["lineno"][node]


held: collections.Counter[str] = collections.Counter()
for node, kids in enumerate(children):
    own = value[node] - sum(value[kid] for kid in kids)
    if own <= 0:
        continue
    path = []
    walk: int | None = node
    while walk is not None:
        path.append(frame(walk))
        walk = parent[walk]
    ours = [f for f in path if f[1].startswith(ROOT) or "site-packages" in f[1]]
    key = " <- ".join(f"{name} ({file.split('/')[-1]}:{line})" for name, file, line in ours[:depth])
    held[key or " <- ".join(name for name, _, _ in path[:depth])] += own

print(f"held at the end of the capture: {sum(held.values()) / 2**20:.1f} MiB")
for key, size in held.most_common(top):
    print(f"{size / 2**20:6.2f} MiB  {key}")

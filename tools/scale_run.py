"""Profiling aid (not a benchmark): R rooms, N check-ins/outs, the whole `spaces run`.

    python tools/scale_run.py ROOMS INPUTS [sqlite|pg] [PARTS]; PROFILE=out.txt adds py-spy; MIXED=1 the bench's mixed traffic (RANDOM_IDS=1: with random, version 4, event ids).
STATS_AFTER=1 (with PARTS=authority,relay,clock): then runs the statistics alone on the decisions
already published, and prints how fast they fold them with the whole machine to themselves.
Needs the broker on 127.0.0.1:19092 (`spaces infra up`) and, for pg, infra/postgres.sh.
SPACES_SERVICE_CWD=<checkout> runs that checkout's service (e.g. a worktree of an older commit: the "before").
RSS_EVERY=2 prints each service process's RSS every 2 s.
IDLE=1 (with PROFILE) keeps py-spy's idle samples: how long each loop waited, not only where it worked.
TIMELINE=1 prints, per half second from the first decision, the decisions and aggregates
published, then the statistics' progress (folded, aggregates held back) sampled every 0.25 s:
where the time after the last decision goes.
KEEP=1 keeps the run's database (dropped at the end otherwise: ~1 GB per 100,000 inputs on SQLite).
IDLE_S=60 then leaves the service running with no traffic for 60 s, and prints what it did meanwhile:
the records appended to `capacity` (the clock's ticks) and each process's CPU seconds.
EXTRA_STATS=1 starts a second statistics member beside `spaces run` (`spaces run --only statistics`, nice 10,
/metrics on 8333): Kafka's own scaling of the statistics, on the same two cores.
"""
import pathlib; pathlib.Path("/tmp/spaces-scale").mkdir(exist_ok=True)
import asyncio, os, random, subprocess, sys, time, uuid, json
from datetime import UTC, datetime
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from aiokafka import AIOKafkaConsumer, TopicPartition
from infra import kafka_local
from infra.kafka_local import ensure_topics
from infra.settings import Settings, Topics
from producers.ids import new_event_id
from producers.client import publish_all
from schemas.inputs import Checkin, Checkout, RoomConfigured
from tools.service_proc import children, cpu_seconds, forget_run_files, metric_lines, refuse_if_serving, service_cwd, stop_at_exit

R = int(sys.argv[1]); N = int(sys.argv[2]); DB = sys.argv[3] if len(sys.argv) > 3 else "sqlite"
PARTS = sys.argv[4] if len(sys.argv) > 4 else ""
PG_ADMIN = "postgresql://postgres@127.0.0.1:55432/postgres"  # infra/postgres.sh

def gen():
    if os.environ.get("MIXED"):  # the bench's traffic (bench/traffic.py): bookings, cancels, capacity changes
        from bench.throughput import scenario_inputs
        from bench.traffic import layout
        return list(scenario_inputs(layout(R), N, 1, bool(os.environ.get("RANDOM_IDS"))))
    return gen_checkins()

def gen_checkins():
    now = datetime.now(UTC)
    rooms = [f"s.c{i//20:03d}.r{i%20:02d}" for i in range(R)]
    ev = [RoomConfigured(event_id=new_event_id(now), occurred_at=now, room_id=r, center_id=r.rsplit(".",1)[0], name=r, capacity=15, booking_mode="shared", opens="00:00", closes="24:00") for r in rooms]
    rng = random.Random(1); inside = dict.fromkeys(rooms, 0)
    for _ in range(N):
        r = rng.choice(rooms); p = rng.randint(1, 3)
        if inside[r] + p > 15 or (inside[r] and rng.random() < 0.4):
            g = min(p, inside[r]) or 1; inside[r] = max(0, inside[r]-g)
            ev.append(Checkout(event_id=new_event_id(), occurred_at=now, room_id=r, kiosk_id="k", party_size=g))
        else:
            inside[r] += p
            ev.append(Checkin(event_id=new_event_id(), occurred_at=now, room_id=r, kiosk_id="k", party_size=p, member_id=f"m{rng.randint(1,500)}"))
    return ev

async def main():
    refuse_if_serving()
    base = Settings()
    pass
    sfx = uuid.uuid4().hex[:8]
    topics = Topics(**{n: f"sc-{getattr(Topics(), n)}-{sfx}" for n in Topics.model_fields})
    url = f"sqlite+aiosqlite:////tmp/spaces-scale/{sfx}.db"
    if DB == "pg":
        import asyncpg
        c = await asyncpg.connect(PG_ADMIN); await c.execute(f'CREATE DATABASE "sc_{sfx}"'); await c.close()
        url = f"postgresql+asyncpg://postgres@127.0.0.1:55432/sc_{sfx}"
    s = base.model_copy(update={"topics": topics, "database_url": url})
    await ensure_topics(s)
    ev = gen()
    t = time.time(); await publish_all(s, ev); print(f"produced {len(ev)} in {time.time()-t:.1f}s", flush=True)
    env = dict(os.environ, SPACES_KAFKA_BOOTSTRAP=s.bootstrap, SPACES_DATABASE_URL=url, SPACES_HOME=f"/tmp/spaces-scale/h{sfx}",
               SPACES_AUTHORITY_GROUP=f"a{sfx}", SPACES_STATISTICS_GROUP=f"s{sfx}",
               **{f"SPACES_TOPIC_{n.upper()}": getattr(topics, n) for n in Topics.model_fields})
    cmd = [sys.executable, "-m", "entrypoints.cli", "run"] + (["--only", PARTS] if PARTS else [])
    prof = os.environ.get("PROFILE")
    log = open(f"/tmp/spaces-scale/{sfx}.log", "w")
    cwd = service_cwd()
    proc = stop_at_exit(subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=log))
    if os.environ.get("RSS_EVERY"):
        asyncio.get_running_loop().create_task(print_rss(proc, float(os.environ["RSS_EVERY"])))
    pspy = None
    extra = None
    if os.environ.get("EXTRA_STATS"):
        extra = stop_at_exit(subprocess.Popen(["nice", "-n", "10", sys.executable, "-m", "entrypoints.cli", "run", "--only", "statistics"], cwd=cwd, env=dict(env, SPACES_METRICS_PORT="8333"), stdout=log, stderr=log))
    if prof:
        # One py-spy per child of the supervisor (--subprocesses misses children started later).
        await asyncio.sleep(3)
        kids = children(proc.pid) or [str(proc.pid)]
        pspy = [subprocess.Popen(["py-spy", "record", "-r", "50", *(["--idle"] if os.environ.get("IDLE") else []), "-f", "raw", "-o", f"{prof}.{k}", "-p", k], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for k in kids]
        print("profiling", {k: open(f"/proc/{k}/cmdline").read().replace(chr(0), " ")[-40:] for k in kids}, flush=True)
    if os.environ.get("TIMELINE"):
        async def sample_statistics():
            while True:
                await asyncio.sleep(0.25)
                try:
                    seen = dict(line.split(" ", 1) for line in metric_lines(8332, lambda l: l.startswith(("spaces_statistics_records_total", "spaces_usage_aggregates_unpublished"))))
                except Exception:
                    continue
                SAMPLES.append((time.time() * 1000, seen.get("spaces_statistics_records_total", "-").strip(), seen.get("spaces_usage_aggregates_unpublished", "-").strip()))
        asyncio.get_running_loop().create_task(sample_statistics())
    cons = AIOKafkaConsumer(topics.decisions, topics.usage_monthly, bootstrap_servers=s.bootstrap, auto_offset_reset="earliest", isolation_level="read_committed")
    await cons.start()
    want = len(ev); got = 0; first = None; last = None; lastu = None; t0 = time.time(); lastprog = time.time(); nagg = 0
    while got < want:
        b = await cons.getmany(timeout_ms=1000)
        for tp, recs in b.items():
            for r in recs:
                if tp.topic == topics.decisions:
                    TIMES.append(('d', r.timestamp)); got += 1; first = min(first or r.timestamp, r.timestamp); last = max(last or 0, r.timestamp); lastprog = time.time()
                else:
                    TIMES.append(('a', r.timestamp)); nagg += 1; lastu = max(lastu or 0, r.timestamp)
        if proc.poll() is not None: print("service exited", proc.returncode); break
        if time.time() - lastprog > 60: print("stalled"); break
    # Wait for the last aggregates: the statistics have folded every decision and hold none
    # back (their /metrics on 8332), then 2 s without a new one (the relay's last
    # transaction). A quiet period alone ended before a backlog's aggregates came out.
    def statistics_done():
        if PARTS and "statistics" not in PARTS:
            return True
        folded = unpublished = 0.0
        for port in (8332, 8333) if extra else (8332,):
            seen = dict(line.split(" ", 1) for line in metric_lines(port, lambda l: l.startswith(("spaces_statistics_records_total", "spaces_usage_aggregates_unpublished"))))
            folded += float(seen.get("spaces_statistics_records_total", 0)); unpublished += float(seen.get("spaces_usage_aggregates_unpublished", 1))
        return folded >= want and unpublished == 0
    quiet = time.time(); waited = time.time()
    while time.time() - quiet < 2 or (not statistics_done() and time.time() - waited < 300):
        b = await cons.getmany(timeout_ms=500)
        for tp, recs in b.items():
            for r in recs:
                if tp.topic == topics.usage_monthly: TIMES.append(('a', r.timestamp)); nagg += 1; lastu = max(lastu or 0, r.timestamp); quiet = time.time()
    await cons.stop()
    # CPU seconds of each service process (utime + stime): where the two cores went.
    kids = children(proc.pid) if proc.poll() is None else []
    cpu = {open(f"/proc/{k}/cmdline").read().split(chr(0))[-2]: round(cpu_seconds(k), 1) for k in kids}
    print("cpu seconds by process", cpu, flush=True)
    # Time each process waited for SQLite's one writer (the other process held it).
    for port in (8331, 8332):
        waits = metric_lines(port, lambda line: line.startswith("spaces_sqlite_writer_lock_wait_seconds_") and ("_sum" in line or "_count" in line))
        if waits:
            print(f"port {port}:", "; ".join(waits), flush=True)
    rss = open(f"/proc/{proc.pid}/status").read().split("VmRSS:")[1].split()[0] if proc.poll() is None else "?"
    if os.environ.get("IDLE_S") and proc.poll() is None:
        await idle(s, topics, proc, float(os.environ["IDLE_S"]))
    for p in pspy or ():
        p.send_signal(2); p.wait()
    if extra:
        print("cpu seconds of the second statistics member", round(cpu_seconds(str(extra.pid)), 1), flush=True)
        extra.terminate(); extra.wait(30)
    proc.terminate(); proc.wait(30)
    end = max(last or 0, lastu or 0)
    tail = f"{(lastu - last) / 1000:.1f}s" if lastu else "-"  # no aggregates without the statistics
    print(f"R={R} N={N} db={DB} decisions={got}/{want} aggs={nagg} span={(end-first)/1000:.1f}s rate={want/((end-first)/1000):.0f}/s decisions-only={want/((last-first)/1000):.0f}/s last-aggregate-after-last-decision={tail} rss={rss}kB wall={time.time()-t0:.0f}s")
    if os.environ.get("TIMELINE") and TIMES:
        print_timeline(min(t for _, t in TIMES))
    if os.environ.get("STATS_AFTER"):
        await statistics_alone(s, env, topics, want)
    from bench.common import delete_topics
    await delete_topics(s.bootstrap, [getattr(topics, n) for n in Topics.model_fields])  # the broker's storage would grow run by run
    if not os.environ.get("KEEP"):
        await forget_database(sfx)


TIMES = []  # ('d' decision | 'a' aggregate, Kafka timestamp in ms)
SAMPLES = []  # (ms, statistics records folded, aggregates held back)


def print_timeline(t0):
    import collections
    bins = collections.Counter((kind, int((t - t0) // 500)) for kind, t in TIMES)
    for b in range(max(b for _, b in bins) + 1):
        print(f"{b / 2:5.1f}s  decisions {bins[('d', b)]:6d}  aggregates {bins[('a', b)]:6d}")
    for at, folded, held in SAMPLES:
        if at >= t0:
            print(f"{(at - t0) / 1000:6.2f}s  statistics folded {folded}, aggregates held back {held}")


async def idle(s, topics, proc, seconds):
    """The service left running without traffic: the clock's ticks (records appended to
    `capacity`, which nothing else writes now) and each process's CPU, over `seconds`."""
    reader = AIOKafkaConsumer(bootstrap_servers=s.bootstrap)
    await reader.start()
    partitions = [TopicPartition(topics.capacity, p) for p in range(s.partitions)]
    kids = children(proc.pid)
    names = {k: open(f"/proc/{k}/cmdline").read().split(chr(0))[-2] for k in kids}
    cpu_before = {k: cpu_seconds(k) for k in kids}
    before = sum((await reader.end_offsets(partitions)).values())
    await asyncio.sleep(seconds)
    appended = sum((await reader.end_offsets(partitions)).values()) - before
    cpu = {names[k]: round(cpu_seconds(k) - cpu_before[k], 2) for k in kids}
    await reader.stop()
    print(f"idle {seconds:.0f}s: {appended} records appended to capacity (clock ticks, {appended / seconds:.1f}/s); cpu seconds by process {cpu}", flush=True)


async def print_rss(proc, every):
    """Each service process's RSS every ``every`` seconds while it runs: a leak shows as growth."""
    from bench.child import rss_mib_of
    while proc.poll() is None:
        await asyncio.sleep(every)
        try:
            kids = {open(f"/proc/{k}/cmdline").read().split(chr(0))[-2]: (rss_mib_of(int(k)), rss_kinds(int(k))) for k in children(proc.pid)}
        except OSError:  # stopping
            return
        print(f"{time.strftime('%H:%M:%S')} rss MiB {kids}", flush=True)


def rss_kinds(pid):
    """RSS by kind (MiB): anonymous (heap), file-backed (code, mmapped files), shared memory."""
    fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status").read().splitlines())
    return {k[3:].lower(): round(int(fields[k].split()[0]) / 1024, 1) for k in ("RssAnon", "RssFile", "RssShmem")}


async def forget_database(sfx):
    """The run's database (SQLite file or PostgreSQL database) and service home; its log stays."""
    if DB == "pg":
        import asyncpg
        c = await asyncpg.connect(PG_ADMIN); await c.execute(f'DROP DATABASE IF EXISTS "sc_{sfx}"'); await c.close()
    forget_run_files(sfx)


async def statistics_alone(s, env, topics, decisions):
    """`spaces run --only statistics,relay` on the published decisions (the relay publishes
    their aggregates): the statistics' rate alone."""
    cons = AIOKafkaConsumer(bootstrap_servers=s.bootstrap, isolation_level="read_committed")
    await cons.start()
    cons.assign([TopicPartition(topics.usage_monthly, p) for p in cons.partitions_for_topic(topics.usage_monthly) or range(6)])
    await cons.seek_to_end()
    log = open(f"/tmp/spaces-scale/stats-alone-{os.getpid()}.log", "w")
    cwd = service_cwd()
    proc = stop_at_exit(subprocess.Popen([sys.executable, "-m", "entrypoints.cli", "run", "--only", "statistics,relay"], cwd=cwd, env=env, stdout=log, stderr=log))
    first = last = None; n = 0; quiet = time.time(); t0 = time.time()
    while time.time() - quiet < 5 and time.time() - t0 < 300:
        b = await cons.getmany(timeout_ms=500)
        for recs in b.values():
            for r in recs:
                n += 1; first = min(first or r.timestamp, r.timestamp); last = max(last or 0, r.timestamp); quiet = time.time()
        if first is None: quiet = time.time()
    await cons.stop()
    cpu = sum(cpu_seconds(k) for k in children(proc.pid) or [str(proc.pid)])
    proc.terminate(); proc.wait(30)
    span = (last - first) / 1000 if first else float("nan")
    print(f"statistics alone: {decisions} decisions, first to last aggregate {span:.1f}s = {decisions / span:.0f} decisions/s, {cpu:.1f} CPU s ({cpu / decisions * 1e6:.0f} us/decision incl. start), aggs={n}")

asyncio.run(main())

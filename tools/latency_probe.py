"""Profiling aid: open-loop check-ins at RATE/s for SECS s against `spaces run`; decision latency.

    python tools/latency_probe.py ROOMS RATE SECS [PARTS]   (broker on 127.0.0.1:19092)
    TIMELINE=1: also the latency of the inputs sent in each second (periodic stalls show).
    KEEP=1: keep the run's SQLite file (dropped at the end otherwise).
"""
import pathlib; pathlib.Path("/tmp/spaces-scale").mkdir(exist_ok=True)
import asyncio, os, random, subprocess, sys, time, uuid, json
from datetime import UTC, datetime
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[1]))
from aiokafka import AIOKafkaConsumer
from infra.kafka_local import ensure_topics
from infra.kafka import make_producer, encode
from infra.settings import Settings, Topics
from producers.ids import new_event_id
from producers.client import publish_all, publish_input
from schemas.inputs import Checkin, Checkout, RoomConfigured
from tools.service_proc import forget_run_files, metric_lines, refuse_if_serving, service_cwd, stop_at_exit
R = int(sys.argv[1]); RATE = int(sys.argv[2]); SECS = int(sys.argv[3]); ONLY = sys.argv[4] if len(sys.argv) > 4 else ""
async def main():
    refuse_if_serving()
    sfx = uuid.uuid4().hex[:8]
    topics = Topics(**{n: f"lt-{getattr(Topics(), n)}-{sfx}" for n in Topics.model_fields})
    url = f"sqlite+aiosqlite:////tmp/spaces-scale/{sfx}.db"
    s = Settings().model_copy(update={"topics": topics, "database_url": url})
    await ensure_topics(s)
    now = datetime.now(UTC)
    rooms = [f"l.c{i//20:03d}.r{i%20:02d}" for i in range(R)]
    await publish_all(s, [RoomConfigured(event_id=new_event_id(now), occurred_at=now, room_id=r, center_id=r.rsplit(".",1)[0], name=r, capacity=15, booking_mode="shared", opens="00:00", closes="24:00") for r in rooms])
    env = dict(os.environ, SPACES_KAFKA_BOOTSTRAP=s.bootstrap, SPACES_DATABASE_URL=url, SPACES_HOME=f"/tmp/spaces-scale/h{sfx}",
               SPACES_AUTHORITY_GROUP=f"a{sfx}", SPACES_STATISTICS_GROUP=f"s{sfx}",
               **{f"SPACES_TOPIC_{n.upper()}": getattr(topics, n) for n in Topics.model_fields})
    cmd = [sys.executable, "-m", "entrypoints.cli", "run"] + (["--only", ONLY] if ONLY else [])
    proc = stop_at_exit(subprocess.Popen(cmd, cwd=service_cwd(), env=env, stdout=open(f"/tmp/spaces-scale/{sfx}.log","w"), stderr=subprocess.STDOUT))
    cons = AIOKafkaConsumer(topics.decisions, bootstrap_servers=s.bootstrap, auto_offset_reset="latest", isolation_level="read_committed")
    await cons.start()
    # wait for configured decisions
    await asyncio.sleep(6)
    sent = {}; lat = []; wall = {}; to_relay = []; from_relay = []; by_second = {}; t0 = time.perf_counter()
    async def reader():
        while True:
            b = await cons.getmany(timeout_ms=100)
            t = time.perf_counter()
            for recs in b.values():
                for r in recs:
                    d = json.loads(r.value); c = d.get("caused_by")
                    if c in sent:
                        at = sent.pop(c); lat.append(t - at); by_second.setdefault(int(at - t0), []).append(t - at); w = wall.pop(c)
                        to_relay.append(r.timestamp / 1000 - w); from_relay.append(time.time() - r.timestamp / 1000)
    rt = asyncio.create_task(reader())
    prod = make_producer(s); await prod.start()
    inside = dict.fromkeys(rooms, 0); rng = random.Random(2)
    t0 = time.perf_counter(); n = 0
    while time.perf_counter() - t0 < SECS:
        target = t0 + n / RATE
        dt = target - time.perf_counter()
        if dt > 0: await asyncio.sleep(dt)
        r = rng.choice(rooms)
        if inside[r] + 2 > 15:
            at = datetime.now(UTC); ev = Checkout(event_id=new_event_id(at), occurred_at=at, room_id=r, kiosk_id="k", party_size=inside[r]); inside[r] = 0
        else:
            at = datetime.now(UTC); ev = Checkin(event_id=new_event_id(at), occurred_at=at, room_id=r, kiosk_id="k", party_size=2); inside[r] += 2
        sent[str(ev.event_id)] = time.perf_counter(); wall[str(ev.event_id)] = time.time()
        await publish_input(prod, s, ev); n += 1
    await asyncio.sleep(3)
    rt.cancel(); await prod.stop(); await cons.stop()
    # The relay's transactions and the consumers' batches, from the service's /metrics.
    wanted = ("spaces_outbox_transaction_seconds_", "spaces_batch_seconds_", "spaces_sqlite_writer_lock_wait_seconds_")
    for port in (8331, 8332):
        for line in metric_lines(port, lambda line: line.startswith(wanted) and ("_bucket" not in line or any(f'le="{le}"' in line for le in ("0.01", "0.025", "0.05", "0.1", "0.25")))):
            print(f"  {port} {line}")
    proc.terminate(); proc.wait(30)
    from bench.common import delete_topics
    await delete_topics(s.bootstrap, [getattr(topics, n) for n in Topics.model_fields])  # the broker's storage would grow run by run
    if not os.environ.get("KEEP"):  # KEEP=1 keeps the run's database
        forget_run_files(sfx)
    if os.environ.get("TIMELINE"):  # p99 and max of the inputs sent in each second: periodic stalls show
        for second, xs in sorted(by_second.items()):
            xs.sort(); print(f"  second {second:3d}: n={len(xs)} p50={xs[len(xs)//2]*1000:.0f}ms p99={xs[int(.99*len(xs))]*1000:.0f}ms max={xs[-1]*1000:.0f}ms")
    lat.sort()
    q = lambda p: lat[min(len(lat)-1, int(p*len(lat)))]*1000
    for name, xs in (("input->relay send", to_relay), ("relay send->read", from_relay)):
        xs.sort(); print(f"  {name}: p50={xs[len(xs)//2]*1000:.1f}ms p99={xs[int(.99*len(xs))]*1000:.1f}ms")
    print(f"rooms={R} rate={RATE} only={ONLY or 'all'} answered={len(lat)}/{n} p50={q(.5):.1f}ms p90={q(.9):.1f} p99={q(.99):.1f} max={lat[-1]*1000:.0f}")
asyncio.run(main())

"""The aggregator benchmark, every contender in one run on one topic of N calls on Apache Kafka
(scripts/bench-aggregator.sh prepares the binaries, the jars and the Python packages, then runs
this with its virtualenv). Not a test: it prints a table, each row checked for an exact result
in PostgreSQL (or marked WRONG), and the ratios the targets are stated in.

  (a) kcat -C -e reading the topic: the raw consume ceiling;
  (b) the floor: at the same time, kcat reading the topic and psql COPY of exactly the rows the
      aggregator stores for this input (its long calls, prepared from the same messages) into
      a table defined like ours (LIKE long_calls INCLUDING ALL);
  (c) the aggregator, default settings, process start until all N are in PostgreSQL;
  (d) the aggregator without long calls (windows only);
  (e) Kafka Connect (standalone) with Debezium's JDBC sink, one row per call, fed the same
      calls as JSON with schema on a topic of its own (produced beforehand, not timed);
  (f) the seed's consumer (confluent-kafka + psycopg2 batched inserts), one row per call.

Columns: events/s and wall seconds (start to all stored), CPU seconds of the consuming process
(or processes: kcat and psql for (b)), CPU seconds of PostgreSQL's processes during the run
(backends and the ones that exited, through the postmaster's children's time), peak RSS of the
consuming process. Then the producer side (call-simulator flood against kcat -P of the same
lines) and the decode+aggregate microbenchmark.
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import psycopg2
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

REPO = Path(__file__).resolve().parents[2]
N = int(os.environ.get("BENCH_CALLS", "1000000"))
PARTITIONS = int(os.environ.get("BENCH_PARTITIONS", "6"))
ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres")
BIN = Path(os.environ["BENCH_BIN"])
CONNECT_LIBS = os.environ["BENCH_CONNECT_LIBS"]
CONNECT_PLUGINS = os.environ["BENCH_CONNECT_PLUGINS"]
LONG_CALL_SECS = 60
TICK = os.sysconf("SC_CLK_TCK")
RUN = uuid.uuid4().hex[:8]


# --- measuring ----------------------------------------------------------------------------
def proc_cpu(pid: int) -> float:
    """utime + stime of a live process, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def postgres_cpu() -> float:
    """CPU seconds of every postgres process, plus what the postmaster's exited children
    (backends that closed) used: a difference of two readings is the server's CPU between."""
    total = 0.0
    stats = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            if comm != "postgres":
                continue
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        stats[int(entry.name)] = fields
    for pid, fields in stats.items():
        total += (int(fields[11]) + int(fields[12])) / TICK
        if int(fields[1]) not in stats:  # the postmaster: its parent is no postgres
            total += (int(fields[13]) + int(fields[14])) / TICK
    return total


@dataclass
class Row:
    name: str
    events: int
    wall: float
    cpu: float
    pg_cpu: float
    rss_mb: float
    exact: str = "ok"

    @property
    def rate(self) -> float:
        return self.events / self.wall


def timed(command, **kwargs):
    """Runs COMMAND under /usr/bin/time; returns (wall, cpu, peak RSS MB, stdout)."""
    with tempfile.NamedTemporaryFile("r") as report:
        start = time.monotonic()
        out = subprocess.run(
            ["/usr/bin/time", "-o", report.name, "-f", "%U %S %M", *command],
            check=True, stdout=subprocess.PIPE, **kwargs,
        ).stdout
        wall = time.monotonic() - start
        user, system, rss_kb = report.read().split()
    return wall, float(user) + float(system), int(rss_kb) / 1024, out


# --- PostgreSQL ---------------------------------------------------------------------------
def admin_execute(*statements: str) -> None:
    """Outside a transaction, as CREATE and DROP DATABASE need."""
    admin = psycopg2.connect(ADMIN_URL)
    admin.autocommit = True
    try:
        with admin.cursor() as cursor:
            for sql in statements:
                cursor.execute(sql)
    finally:
        admin.close()


def database(name: str) -> str:
    admin_execute(f"DROP DATABASE IF EXISTS {name}", f"CREATE DATABASE {name}")
    DATABASES.append(name)
    return ADMIN_URL.rsplit("/", 1)[0] + "/" + name


def query(url: str, sql: str):
    with psycopg2.connect(url) as db, db.cursor() as cursor:
        cursor.execute(sql)
        return cursor.fetchone()[0]


def drop_databases():
    admin_execute(*(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)" for name in DATABASES))


DATABASES: list = []
ROWS_TABLE = """CREATE TABLE calls (
    call_id     uuid        PRIMARY KEY,
    caller      text        NOT NULL,
    callee      text        NOT NULL,
    start_time  timestamptz NOT NULL,
    duration_ms bigint      NOT NULL)"""


def wait_rows(url: str, table: str, n: int, pid: int, timeout: float = 1800) -> None:
    """Until TABLE has N inserted rows, read from the statistics (a count(*) every poll would
    add its own cost to PostgreSQL's CPU); the exact count is checked after."""
    deadline = time.monotonic() + timeout
    db = psycopg2.connect(url)
    db.autocommit = True
    try:
        with db.cursor() as cursor:
            while True:
                cursor.execute(
                    "SELECT pg_stat_clear_snapshot(), n_tup_ins FROM pg_stat_user_tables "
                    f"WHERE relname = '{table}'"
                )
                row = cursor.fetchone()
                if row and row[1] >= n:
                    return
                if not Path(f"/proc/{pid}").exists() or time.monotonic() > deadline:
                    raise RuntimeError(f"{table}: {row} rows, the consumer stopped or timed out")
                time.sleep(0.1)
    finally:
        db.close()


# --- the contenders -----------------------------------------------------------------------
def measured(name: str, command, until, **popen) -> Row:
    """Runs COMMAND from its start until `until(process)` returns; its CPU, peak RSS and
    PostgreSQL's CPU meanwhile are read before it is stopped."""
    pg0 = postgres_cpu()
    start = time.monotonic()
    process = subprocess.Popen(command, **popen)
    until(process)
    wall = time.monotonic() - start
    cpu, rss = proc_cpu(process.pid), proc_rss_mb(process.pid)
    pg = postgres_cpu() - pg0
    process.terminate()
    process.wait()
    return Row(name, N, wall, cpu, pg, rss)


def aggregator(bootstrap: str, topic: str, expected_long: int, label: str, **env):
    """The aggregator's row, and its database (the floor's table goes there)."""
    url = database(f"bench_{label}_{RUN}")
    port = free_port()
    environment = {
        **os.environ,
        "RUST_LOG": os.environ.get("BENCH_AGG_LOG", "warn"),
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "DATABASE_URL": url,
        "CALLS_TOPIC": topic,
        "CONSUMER_GROUP": f"bench-{label}-{RUN}",
        "METRICS_ADDR": f"127.0.0.1:{port}",
        **env,
    }
    log_path = STATE / f"aggregator-{label}.log"

    def stored_all(process) -> None:
        stored, moved = 0.0, time.monotonic()
        while True:
            # Its aggregator_stored_calls gauge: the all-time total of the last committed flush.
            try:
                body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
                gauge = [l for l in body.decode().splitlines() if l.startswith("aggregator_stored_calls ")]
                now = float(gauge[0].split()[1]) if gauge else 0.0
                if now >= N:
                    return
                if now != stored:
                    stored, moved = now, time.monotonic()
            except OSError:
                pass
            if stored and time.monotonic() - moved > 30:
                return  # stuck short of N: the checks below say so
            if process.poll() is not None:
                raise RuntimeError(f"aggregator exited: {log_path.read_text()[-2000:]}")
            time.sleep(0.02)

    log = open(log_path, "w")
    row = measured(label, [BIN / "aggregator"], stored_all, env=environment, stdout=log, stderr=log)
    calls = query(url, "SELECT coalesce(sum(calls), 0) FROM call_stats_1m")
    long_calls = query(url, "SELECT count(*) FROM long_calls")
    if calls != N or long_calls != expected_long:
        row.exact = f"WRONG: {calls} calls, {long_calls} long calls (expected {N}, {expected_long})"
    return row, url


def floor(bootstrap: str, topic: str, like_url: str, long_rows: Path, expected_long: int,
          table: str = "floor_long_calls", like: str = "INCLUDING ALL") -> Row:
    with psycopg2.connect(like_url) as db, db.cursor() as cursor:
        cursor.execute(f"CREATE TABLE {table} (LIKE long_calls {like})")
    pg0 = postgres_cpu()
    start = time.monotonic()
    reports = [tempfile.NamedTemporaryFile("r") for _ in range(2)]
    read = subprocess.Popen(
        ["/usr/bin/time", "-o", reports[0].name, "-f", "%U %S %M",
         "kcat", "-b", bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-q", "-f", "\n"],
        stdout=subprocess.PIPE,
    )
    copy = subprocess.Popen(
        ["/usr/bin/time", "-o", reports[1].name, "-f", "%U %S %M", "psql", like_url, "-Xq",
         "-c", f"\\copy {table} (topic, partition, kafka_offset, call_id, caller, callee, start_time, duration_ms) FROM STDIN"],
        stdin=open(long_rows),
    )
    messages = read.stdout.read().count(b"\n")
    read.wait()
    copy.wait()
    wall = time.monotonic() - start
    pg = postgres_cpu() - pg0
    cpu = rss = 0.0
    for report in reports:
        user, system, rss_kb = report.read().split()
        cpu += float(user) + float(system)
        rss = max(rss, int(rss_kb) / 1024)
    row = Row("floor", N, wall, cpu, pg, rss)
    stored = query(like_url, f"SELECT count(*) FROM {table}")
    if messages != N or stored != expected_long or copy.returncode != 0:
        row.exact = f"WRONG: read {messages}, copied {stored} (expected {N}, {expected_long})"
    return row


def kafka_connect(bootstrap: str, topic: str) -> Row:
    url = database(f"bench_connect_{RUN}")
    query_exec(url, ROWS_TABLE)
    folder = STATE / "connect"
    folder.mkdir()
    (folder / "worker.properties").write_text(
        f"bootstrap.servers={bootstrap}\n"
        "key.converter=org.apache.kafka.connect.storage.StringConverter\n"
        "value.converter=org.apache.kafka.connect.json.JsonConverter\n"
        "value.converter.schemas.enable=true\n"
        f"offset.storage.file.filename={folder}/offsets\n"
        f"plugin.path={CONNECT_PLUGINS}\n"
        f"listeners=http://127.0.0.1:{free_port()}\n"
        "connector.client.config.override.policy=All\n"
    )
    database_name = url.rsplit("/", 1)[1]
    # Debezium's JDBC sink, tuned as its documentation and the PostgreSQL driver's advise for
    # throughput: large batches (and polls at least as large), one task per core, batched
    # inserts rewritten into multi-row statements by the driver.
    (folder / "sink.properties").write_text(
        "name=bench-jdbc-sink\n"
        "connector.class=io.debezium.connector.jdbc.JdbcSinkConnector\n"
        f"tasks.max={os.cpu_count()}\n"
        f"topics={topic}\n"
        f"connection.url=jdbc:postgresql://127.0.0.1:5432/{database_name}?reWriteBatchedInserts=true\n"
        "connection.username=postgres\n"
        "connection.password=unused\n"
        "insert.mode=insert\n"
        "primary.key.mode=none\n"
        "schema.evolution=none\n"
        "collection.name.format=calls\n"
        "batch.size=5000\n"
        "consumer.override.max.poll.records=5000\n"
        "consumer.override.auto.offset.reset=earliest\n"
    )
    log = open(STATE / "connect.log", "w")
    return row_per_call(
        "connect", url,
        ["java", "-Xms256m", "-Xmx1g", "-cp", f"{CONNECT_LIBS}/*",
         f"-Dlog4j2.configurationFile={REPO}/deploy/kafka-connect/log4j2.properties",
         "org.apache.kafka.connect.cli.ConnectStandalone",
         folder / "worker.properties", folder / "sink.properties"],
        stdout=log, stderr=log,
    )


def seed_consumer(bootstrap: str, topic: str) -> Row:
    url = database(f"bench_seed_{RUN}")
    query_exec(url, ROWS_TABLE)
    return row_per_call(
        "seed", url,
        [sys.executable, REPO / "scripts/bench/seed_consumer.py", bootstrap, topic,
         f"bench-seed-{RUN}", url, "calls"],
    )


def row_per_call(name: str, url: str, command, **popen) -> Row:
    """Runs a consumer that writes one row per call into `calls` of URL, from its start until
    the table holds N rows; then checks they are all there."""
    row = measured(name, command, lambda p: wait_rows(url, "calls", N, p.pid), **popen)
    rows = query(url, "SELECT count(*) FROM calls")
    if rows != N:
        row.exact = f"WRONG: {rows} rows (expected {N})"
    return row


def query_exec(url: str, sql: str) -> None:
    with psycopg2.connect(url) as db, db.cursor() as cursor:
        cursor.execute(sql)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- input --------------------------------------------------------------------------------
CONNECT_SCHEMA = {
    "type": "struct", "name": "call", "optional": False,
    "fields": [
        {"field": "call_id", "type": "string", "optional": False},
        {"field": "caller", "type": "string", "optional": False},
        {"field": "callee", "type": "string", "optional": False},
        {"field": "start_time", "type": "int64", "optional": False,
         "name": "org.apache.kafka.connect.data.Timestamp", "version": 1},
        {"field": "duration_ms", "type": "int64", "optional": False},
    ],
}


def prepare(dump: Path, topic: str):
    """From the topic's dump (partition, offset, key, value per line): the long-call rows the
    aggregator stores, as COPY text; the same calls as JSON with schema for Connect; the bare
    key/value lines for kcat -P. Returns the number of long calls."""
    long_calls = 0
    with open(dump) as lines, open(STATE / "long_calls.copy", "w") as copy, \
            open(STATE / "connect.lines", "w") as connect, open(STATE / "produce.lines", "w") as produce:
        for line in lines:
            partition, offset, key, value = line.rstrip("\n").split("\t", 3)
            call = json.loads(value)
            duration_ms = round(call["duration_secs"] * 1000)
            if call["duration_secs"] > LONG_CALL_SECS:
                long_calls += 1
                copy.write("\t".join([topic, partition, offset, call["call_id"], call["caller"],
                                      call["callee"], call["start_time"], str(duration_ms)]) + "\n")
            millis = int(datetime.fromisoformat(call["start_time"].replace("Z", "+00:00")).timestamp() * 1000)
            payload = {"call_id": call["call_id"], "caller": call["caller"], "callee": call["callee"],
                       "start_time": millis, "duration_ms": duration_ms}
            connect.write(key + "\t" + json.dumps({"schema": CONNECT_SCHEMA, "payload": payload},
                                                  separators=(",", ":")) + "\n")
            produce.write(key + "\t" + value + "\n")
    return long_calls


def create_topics(bootstrap: str, names) -> None:
    """NAMES, and the aggregator's other topics where missing: in a deployment they exist, so
    no run times their creation."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [*names, "host-metrics", "web-probes", "fleet-dlq"]
    new = [NewTopic(n, PARTITIONS, 1) for n in wanted if n not in existing]
    for future in admin.create_topics(new).values():
        future.result()


def warm_up_groups(bootstrap: str, topic: str) -> None:
    """Joins a consumer group once: a fresh broker creates its group coordinator's topic
    (__consumer_offsets, 50 partitions) on the first join, which took 2 to 3 s here and fell on
    whichever contender came first."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bench-warm-up-{RUN}"})
    assigned = []
    consumer.subscribe([topic], on_assign=lambda _, partitions: assigned.extend(partitions))
    deadline = time.monotonic() + 60
    while not assigned and time.monotonic() < deadline:
        consumer.poll(0.2)
    consumer.close()
    if not assigned:
        raise RuntimeError("no consumer group could be joined within 60 s")


def main() -> None:
    bootstrap = os.environ["KAFKA_BOOTSTRAP_SERVERS"]
    calls, connect_topic, kcat_topic, sim_topic = (
        f"bench-{t}-{RUN}" for t in ("calls", "connect", "kcat", "simulator"))
    create_topics(bootstrap, [calls, connect_topic, kcat_topic, sim_topic])
    warm_up_groups(bootstrap, kcat_topic)

    print(f"filling {calls} with {N:,} calls ({PARTITIONS} partitions) on {bootstrap}", flush=True)
    # 2,000 calls per second of event time: 1,000,000 calls span 500 s, well within the
    # aggregator's lateness limit (at the default 10/s the oldest would be out of range).
    environment = {**os.environ, "RUST_LOG": "warn", "SIM_MODE": "flood", "SIM_MAX_CALLS": str(N),
                   "SIM_SEED": "1", "CALLS_PER_SECOND": "2000", "CALLS_TOPIC": calls,
                   "METRICS_ADDR": "127.0.0.1:0", "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    subprocess.run([BIN / "call-simulator"], env=environment, check=True)

    dump = STATE / "dump.lines"
    with open(dump, "w") as out:
        subprocess.run(["kcat", "-b", bootstrap, "-C", "-t", calls, "-o", "beginning", "-e", "-q",
                        "-f", "%p\t%o\t%k\t%s\n"], check=True, stdout=out)
    expected_long = prepare(dump, calls)
    print(f"input: {N:,} calls, {expected_long:,} long calls (over {LONG_CALL_SECS} s)", flush=True)
    # The producer side, on the warm broker (the fill met a cold JVM): the simulator again, then
    # kcat -P of the same key/value lines, each to a topic of its own.
    sim_wall, sim_cpu, sim_rss, _ = timed([BIN / "call-simulator"],
                                          env={**environment, "CALLS_TOPIC": sim_topic})
    kcatp_wall, kcatp_cpu, kcatp_rss, _ = timed(
        ["kcat", "-b", bootstrap, "-P", "-t", kcat_topic, "-K", "\t", "-l", str(STATE / "produce.lines")])
    # And with the simulator's producer settings (idempotent, lz4, linger 5 ms): the fair one.
    same_wall, same_cpu, same_rss, _ = timed(
        ["kcat", "-b", bootstrap, "-P", "-t", kcat_topic, "-K", "\t", "-z", "lz4",
         "-X", "enable.idempotence=true", "-X", "linger.ms=5", "-l", str(STATE / "produce.lines")])
    # Connect's input, produced beforehand, not timed.
    subprocess.run(["kcat", "-b", bootstrap, "-P", "-t", connect_topic, "-K", "\t", "-z", "lz4", "-l",
                    str(STATE / "connect.lines")], check=True)

    print("(a) kcat -C -e", flush=True)
    pg0 = postgres_cpu()
    wall, cpu, rss, out = timed(["kcat", "-b", bootstrap, "-C", "-t", calls, "-o", "beginning", "-e",
                                 "-q", "-f", "\n"])
    a = Row("kcat", N, wall, cpu, postgres_cpu() - pg0, rss)
    read = out.count(b"\n")
    if read != N:
        a.exact = f"WRONG: read {read}"
    print("(c) aggregator", flush=True)
    c, c_url = aggregator(bootstrap, calls, expected_long, "aggregator")
    print("(d) aggregator without long calls", flush=True)
    d, _ = aggregator(bootstrap, calls, 0, "windows", LONG_CALL_THRESHOLD_SECS="86400")
    print("(b) the floor: kcat and psql COPY of the long calls at once", flush=True)
    b = floor(bootstrap, calls, c_url, STATE / "long_calls.copy", expected_long)
    # What long_calls' key (the message's topic, partition and offset) and its BRIN index cost.
    b_bare = floor(bootstrap, calls, c_url, STATE / "long_calls.copy", expected_long,
                   "floor_bare_long_calls", "INCLUDING DEFAULTS")
    print("(e) Kafka Connect + Debezium JDBC sink", flush=True)
    e = kafka_connect(bootstrap, connect_topic)
    print("(f) the seed's Python consumer", flush=True)
    f = seed_consumer(bootstrap, calls)
    rows = [("(a) kcat -C -e (raw consume ceiling)", a),
            ("(b) floor: kcat + psql COPY of the long calls", b),
            ("    the same into a table without key or index", b_bare),
            ("(c) aggregator, default settings", c),
            ("(d) aggregator, no long calls (windows only)", d),
            ("(e) Kafka Connect + Debezium JDBC sink, row/call", e),
            ("(f) seed consumer (confluent-kafka+psycopg2)", f)]

    print(f"\n{N:,} calls, {expected_long:,} long; {PARTITIONS} partitions; "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{'contender':50} {'result':>6} {'events/s':>11} {'wall s':>8} {'CPU s':>7} "
          f"{'PG CPU s':>9} {'RSS MB':>7} {'us/event':>9}")
    for label, row in rows:
        print(f"{label:50} {row.exact if row.exact == 'ok' else 'WRONG':>6} {row.rate:11,.0f} "
              f"{row.wall:8.2f} {row.cpu:7.2f} {row.pg_cpu:9.2f} {row.rss_mb:7.1f} "
              f"{row.cpu * 1e6 / row.events:9.2f}")
    for label, row in rows:
        if row.exact != "ok":
            print(f"  {label}: {row.exact}")
    per_cpu = lambda r: r.events / r.cpu
    print("\nratios (target):")
    print(f"  (c)/(a) events/s          {c.rate / a.rate:6.2f}   (>= 0.8)")
    print(f"  (b)/(c) wall time         {b.wall / c.wall:6.2f}   (>= 0.9: within 10 % of the floor)")
    print(f"  (d)/(a) events/s          {d.rate / a.rate:6.2f}   (>= 0.95)")
    print(f"  (c)/(e) events/s          {c.rate / e.rate:6.1f}x  (>= 5x)")
    print(f"  (c)/(e) events/CPU-second {per_cpu(c) / per_cpu(e):6.1f}x  (>= 10x)")
    print(f"  (c)/(f) events/s          {c.rate / f.rate:6.1f}x  (>= 50x)")
    print(f"  aggregator CPU            {c.cpu * 1e6 / N:6.2f} us/event (<= 1.0); "
          f"PostgreSQL {c.pg_cpu * 1e6 / N:.2f} us/event")
    print("\nproducer side:")
    print(f"  call-simulator flood      {N / sim_wall:11,.0f} events/s  {sim_wall:6.2f} s  CPU {sim_cpu:5.2f} s  RSS {sim_rss:5.1f} MB")
    print(f"  kcat -P, the same lines   {N / kcatp_wall:11,.0f} events/s  {kcatp_wall:6.2f} s  CPU {kcatp_cpu:5.2f} s  RSS {kcatp_rss:5.1f} MB")
    print(f"  kcat -P, its settings     {N / same_wall:11,.0f} events/s  {same_wall:6.2f} s  CPU {same_cpu:5.2f} s  RSS {same_rss:5.1f} MB")
    print(f"  ratio                     {kcatp_wall / sim_wall:6.2f}   (>= 1.0; {same_wall / sim_wall:.2f} against kcat with the simulator's settings)")
    sys.stdout.flush()


if __name__ == "__main__":
    STATE = Path(os.environ["BENCH_STATE"])
    try:
        main()
    finally:
        drop_databases()

#!/usr/bin/env bash
# Benchmark (not a test): the aggregator's end-to-end rate against the raw consume ceiling.
#
# Fills a topic with N calls (default 1,000,000), then measures in the same run:
#   (a) kcat -C -e reading the whole topic (the raw consume ceiling), and
#   (b) the aggregator, from start until PostgreSQL's stored offsets cover all N;
# prints both rates and their ratio. Then the decode+aggregate microbenchmark.
#
# Uses devbroker unless KAFKA_BOOTSTRAP_SERVERS is set. devbroker keeps about 5 MB per
# partition and drops the oldest beyond that, so the topic gets enough partitions to retain
# everything (BENCH_PARTITIONS, default 64).
#
#   scripts/bench-aggregator.sh            # N=1000000
#   BENCH_CALLS=200000 scripts/bench-aggregator.sh
#
# For profiling: BENCH_AGG_LOG (the aggregator's RUST_LOG, default warn; e.g.
# info,aggregator::flush=debug logs every flush), BENCH_KEEP_LOG=FILE (keep its log),
# BENCH_AGG_WRAPPER (a command prefix, e.g. "perf record -a -o /tmp/perf.data --"; the CPU time
# printed is then the wrapper's), BENCH_SKIP_MICRO=1 (skip the microbenchmark). The aggregator
# reads its own settings from the environment as usual (e.g. LONG_CALL_THRESHOLD_SECS).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${BENCH_CALLS:-1000000}
PARTITIONS=${BENCH_PARTITIONS:-64}
ADMIN_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
STATE=$(mktemp -d)
TOPIC="bench-calls-$$"
GROUP="bench-$$"
DB="fleet_bench_$$"
pids=()
cleanup() {
  # Newest first: the aggregator stops before the broker it reads from.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
  psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $DB" >/dev/null 2>&1 || true
  rm -rf "$STATE"
}
trap cleanup EXIT

command -v kcat >/dev/null || { echo "installing kcat"; apt-get update -qq && apt-get install -y -qq kcat >/dev/null; }
cargo build --release --locked -q -p devbroker -p call-simulator -p aggregator
BIN=target/release

if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  "$BIN/devbroker" --partitions "$PARTITIONS" --topics "$TOPIC,fleet-dlq,host-metrics,web-probes" \
    --bootstrap-file "$STATE/bootstrap" >/dev/null 2>"$STATE/devbroker.log" &
  pids+=($!)
  for _ in $(seq 1 50); do [ -s "$STATE/bootstrap" ] && break; sleep 0.1; done
  KAFKA_BOOTSTRAP_SERVERS=$(cat "$STATE/bootstrap")
fi
export KAFKA_BOOTSTRAP_SERVERS KAFKA_TOPIC_PARTITIONS=$PARTITIONS

echo "filling $TOPIC with $N calls ($PARTITIONS partitions) on $KAFKA_BOOTSTRAP_SERVERS"
RUST_LOG=warn SIM_MODE=flood SIM_MAX_CALLS=$N SIM_SEED=1 CALLS_PER_SECOND=2000 \
  CALLS_TOPIC=$TOPIC METRICS_ADDR=127.0.0.1:0 "$BIN/call-simulator"

now() { date +%s.%N; }
t0=$(now)
got=$(kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -C -t "$TOPIC" -o beginning -e -q -f '\n' | wc -l)
t1=$(now)
[ "$got" -eq "$N" ] || { echo "topic retained $got of $N messages: raise BENCH_PARTITIONS"; exit 1; }
kcat_secs=$(echo "$t1 - $t0" | bc -l)

psql "$ADMIN_URL" -qc "CREATE DATABASE $DB" >/dev/null
DB_URL="${ADMIN_URL%/*}/$DB"
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
t0=$(now)
RUST_LOG=${BENCH_AGG_LOG:-warn} DATABASE_URL=$DB_URL CALLS_TOPIC=$TOPIC CONSUMER_GROUP=$GROUP \
  METRICS_ADDR=127.0.0.1:$PORT ${BENCH_AGG_WRAPPER:-} "$BIN/aggregator" >"$STATE/aggregator.log" 2>&1 &
pids+=($!)
# Wait on the aggregator's aggregator_stored_calls gauge: the all-time total PostgreSQL returned
# from the last committed flush. One long-lived poller: a psql or curl per poll cost a fifth of
# the machine's CPU. PostgreSQL itself is checked once at the end.
python3 - "$PORT" "$N" "${pids[-1]}" <<'PY' || { echo "aggregator exited:"; tail "$STATE/aggregator.log"; exit 1; }
import os, sys, time, urllib.request
port, n, pid = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
while True:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        for line in body.splitlines():
            if line.startswith("aggregator_stored_calls ") and float(line.split()[1]) >= n:
                sys.exit(0)
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(1)
    time.sleep(0.02)
PY
t1=$(now)
agg_secs=$(echo "$t1 - $t0" | bc -l)
# utime + stime of the aggregator process (fields 14 and 15, in clock ticks).
agg_cpu=$(awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/${pids[-1]}/stat")
calls=$(psql "$DB_URL" -qAtc "SELECT sum(calls) FROM call_stats_1m")
[ "$calls" -eq "$N" ] || { echo "stored $calls calls, expected $N"; exit 1; }

printf '\n%-40s %12s %10s\n' "consumer" "events/s" "seconds"
printf '%-40s %12.0f %10.2f\n' "(a) kcat -C -e (raw consume ceiling)" "$(echo "$N / $kcat_secs" | bc -l)" "$kcat_secs"
printf '%-40s %12.0f %10.2f\n' "(b) aggregator, start to all in Postgres" "$(echo "$N / $agg_secs" | bc -l)" "$agg_secs"
printf 'aggregator CPU: %.2f s user+system (%.2f us per event)\n' "$agg_cpu" "$(echo "$agg_cpu * 1000000 / $N" | bc -l)"
printf 'ratio (b)/(a) = %.2f\n\n' "$(echo "$kcat_secs / $agg_secs" | bc -l)"

[ -n "${BENCH_KEEP_LOG:-}" ] && cp "$STATE/aggregator.log" "$BENCH_KEEP_LOG"
[ -n "${BENCH_SKIP_MICRO:-}" ] || cargo bench --locked -q -p aggregator --bench decode_aggregate 2>/dev/null

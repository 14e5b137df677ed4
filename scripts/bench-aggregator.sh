#!/usr/bin/env bash
# Benchmark (not a test): the aggregator's end-to-end rate against the raw consume ceiling.
#
# Fills a topic with N calls (default 1,000,000), then measures in the same run:
#   (a) kcat -C -e reading the whole topic (the raw consume ceiling), and
#   (b) the aggregator, from start until PostgreSQL's stored offsets cover all N, and the same
#       again with no long call (PostgreSQL then writes only window deltas: the consume path
#       apart from the database's write cost), each in a database and group of its own;
# prints the rates, the aggregator's CPU and the ratios. Then the decode+aggregate
# microbenchmark.
#
# Runs on Apache Kafka (scripts/kafka.sh, the version of deploy/versions.env, a broker of its
# own in a temporary folder) unless KAFKA_BOOTSTRAP_SERVERS names one; the topic has
# BENCH_PARTITIONS partitions (default 6, compose's KAFKA_TOPIC_PARTITIONS).
#
#   scripts/bench-aggregator.sh            # N=1000000
#   BENCH_CALLS=200000 scripts/bench-aggregator.sh
#
# For profiling: BENCH_AGG_LOG (the aggregator's RUST_LOG, default warn; e.g.
# info,aggregator::flush=debug logs every flush), BENCH_KEEP_LOG=FILE (keep its log),
# BENCH_AGG_WRAPPER (a command prefix, e.g. "perf record -a -o /tmp/perf.data --"; the CPU time
# printed is then the wrapper's), BENCH_SKIP_MICRO=1 (skip the microbenchmark). The aggregator
# reads its own settings from the environment as usual (LONG_CALL_THRESHOLD_SECS applies to
# the first run; BENCH_KEEP_LOG keeps the first run's log).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${BENCH_CALLS:-1000000}
PARTITIONS=${BENCH_PARTITIONS:-6}
ADMIN_URL=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
STATE=$(mktemp -d)
TOPIC="bench-calls-$$"
GROUP="bench-$$"
DB="fleet_bench_$$"
pids=()
dbs=()
cleanup() {
  # Newest first: the aggregator stops before the broker it reads from.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
  [ ! -d "$STATE/kafka" ] || scripts/kafka.sh stop "$STATE/kafka"
  for db in "${dbs[@]}"; do
    psql "$ADMIN_URL" -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  done
  rm -rf "$STATE"
}
trap cleanup EXIT

command -v kcat >/dev/null || { echo "installing kcat"; apt-get update -qq && apt-get install -y -qq kcat >/dev/null; }
cargo build --release --locked -q -p call-simulator -p aggregator
BIN=target/release

if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  echo "starting Apache Kafka $(scripts/kafka.sh version)"
  KAFKA_BOOTSTRAP_SERVERS=$(KAFKA_TOPIC_PARTITIONS=$PARTITIONS scripts/kafka.sh start "$STATE/kafka" --port 0)
fi
export KAFKA_BOOTSTRAP_SERVERS KAFKA_TOPIC_PARTITIONS=$PARTITIONS

echo "filling $TOPIC with $N calls ($PARTITIONS partitions) on $KAFKA_BOOTSTRAP_SERVERS"
RUST_LOG=warn SIM_MODE=flood SIM_MAX_CALLS=$N SIM_SEED=1 CALLS_PER_SECOND=2000 \
  CALLS_TOPIC=$TOPIC METRICS_ADDR=127.0.0.1:0 "$BIN/call-simulator"

now() { date +%s.%N; }
t0=$(now)
got=$(kcat -b "$KAFKA_BOOTSTRAP_SERVERS" -C -t "$TOPIC" -o beginning -e -q -f '\n' | wc -l)
t1=$(now)
[ "$got" -eq "$N" ] || { echo "kcat read $got of $N messages"; exit 1; }
kcat_secs=$(echo "$t1 - $t0" | bc -l)

# One aggregator run from process start until PostgreSQL holds all N calls, in a database and
# consumer group of its own; extra environment as arguments. Sets agg_secs and agg_cpu.
run_aggregator() {
  local db="$DB$1" group="$GROUP$1"
  shift
  psql "$ADMIN_URL" -qc "CREATE DATABASE $db" >/dev/null
  dbs+=("$db")
  local db_url="${ADMIN_URL%/*}/$db" port t0 t1
  port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  t0=$(now)
  # shellcheck disable=SC2086 # the wrapper is a command line, split on purpose
  env "$@" RUST_LOG="${BENCH_AGG_LOG:-warn}" DATABASE_URL="$db_url" CALLS_TOPIC="$TOPIC" \
    CONSUMER_GROUP="$group" METRICS_ADDR="127.0.0.1:$port" ${BENCH_AGG_WRAPPER:-} \
    "$BIN/aggregator" >"$STATE/aggregator.log" 2>&1 &
  pids+=($!)
  # Wait on the aggregator's aggregator_stored_calls gauge: the all-time total PostgreSQL
  # returned from the last committed flush. One long-lived poller: a psql or curl per poll cost
  # a fifth of the machine's CPU. PostgreSQL itself is checked once at the end.
  python3 - "$port" "$N" "${pids[-1]}" <<'PY' || { echo "aggregator exited:"; tail "$STATE/aggregator.log"; exit 1; }
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
  local calls
  calls=$(psql "$db_url" -qAtc "SELECT sum(calls) FROM call_stats_1m")
  [ "$calls" -eq "$N" ] || { echo "stored $calls calls, expected $N"; exit 1; }
  kill "${pids[-1]}"
  wait "${pids[-1]}" 2>/dev/null || true
  unset 'pids[-1]'
}

run_aggregator "" LONG_CALL_THRESHOLD_SECS="${LONG_CALL_THRESHOLD_SECS:-60}"
full_secs=$agg_secs full_cpu=$agg_cpu
[ -n "${BENCH_KEEP_LOG:-}" ] && cp "$STATE/aggregator.log" "$BENCH_KEEP_LOG"
# The same with no long call (the threshold above every duration): PostgreSQL then only adds
# window deltas, which shows the consume path apart from the database's write cost.
run_aggregator _light LONG_CALL_THRESHOLD_SECS=86400
light_secs=$agg_secs light_cpu=$agg_cpu

printf '\n%-52s %12s %10s %14s\n' "consumer" "events/s" "seconds" "CPU us/event"
printf '%-52s %12.0f %10.2f %14s\n' "(a) kcat -C -e (raw consume ceiling)" "$(echo "$N / $kcat_secs" | bc -l)" "$kcat_secs" ""
printf '%-52s %12.0f %10.2f %14.2f\n' "(b) aggregator, start to all in Postgres" "$(echo "$N / $full_secs" | bc -l)" "$full_secs" "$(echo "$full_cpu * 1000000 / $N" | bc -l)"
printf '%-52s %12.0f %10.2f %14.2f\n' "    the same without long calls (windows only)" "$(echo "$N / $light_secs" | bc -l)" "$light_secs" "$(echo "$light_cpu * 1000000 / $N" | bc -l)"
printf 'ratio (b)/(a) = %.2f (without long calls: %.2f)\n\n' "$(echo "$kcat_secs / $full_secs" | bc -l)" "$(echo "$kcat_secs / $light_secs" | bc -l)"

[ -n "${BENCH_SKIP_MICRO:-}" ] || cargo bench --locked -q -p aggregator --bench decode_aggregate 2>/dev/null

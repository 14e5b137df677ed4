#!/usr/bin/env bash
# Benchmark (not a test): the aggregator against what users would pick instead, and against
# the floor the machine sets, in one run on one topic of N calls (default 1,000,000) on
# Apache Kafka. Prints one table (each row checked for an exact result in PostgreSQL) and the
# ratios; scripts/bench/aggregator.py says what each contender is and how it is measured.
# Then the decode+aggregate microbenchmark.
#
#   scripts/bench-aggregator.sh
#   BENCH_CALLS=200000 scripts/bench-aggregator.sh
#
# Prepares, once, into ${FLEET_CACHE_DIR:-~/.cache/fleetpulse}: Kafka Connect's runtime and
# Debezium's JDBC sink (deploy/kafka-connect/, pinned poms, from Maven Central) and a
# virtualenv with confluent-kafka and psycopg2 (scripts/bench/requirements.txt, pinned). Runs
# a broker of its own (scripts/kafka.sh) unless KAFKA_BOOTSTRAP_SERVERS names one; topics of
# BENCH_PARTITIONS partitions (default 6); PostgreSQL at TEST_DATABASE_URL (default the local
# server), which must run on this machine (its CPU is read from /proc).
# BENCH_AGG_LOG: the aggregator's RUST_LOG (default warn); BENCH_SKIP_MICRO=1 skips the
# microbenchmark.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=deploy/versions.env
. deploy/versions.env
CACHE=${FLEET_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/fleetpulse}
STATE=$(mktemp -d)
cleanup() {
  [ ! -d "$STATE/kafka" ] || scripts/kafka.sh stop "$STATE/kafka"
  rm -rf "$STATE"
}
trap cleanup EXIT

for setting in BENCH_CALLS BENCH_PARTITIONS; do
  value=${!setting:-1}
  [[ $value =~ ^[1-9][0-9]{0,8}$ ]] || { echo "bench-aggregator.sh: invalid value '$value' for $setting: expected a whole number above 0" >&2; exit 2; }
done
for tool in kcat psql java mvn python3 /usr/bin/time; do
  command -v "$tool" >/dev/null || { echo "bench-aggregator.sh: $tool is missing (apt-get install kcat postgresql-client openjdk-17-jre-headless maven python3-venv time)" >&2; exit 1; }
done
cargo build --release --locked -q -p call-simulator -p aggregator

# Kafka Connect and the JDBC sink: the runtime on the class path, the connector in a plugin
# folder of its own.
CONNECT=$CACHE/kafka-connect-$KAFKA_VERSION
if [ ! -f "$CONNECT/.complete" ]; then
  echo "fetching Kafka Connect $KAFKA_VERSION and Debezium's JDBC sink into $CONNECT"
  rm -rf "$CONNECT"
  mvn -q -B -f deploy/kafka-connect/pom.xml -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$CONNECT/libs"
  mvn -q -B -f deploy/kafka-connect/jdbc-sink/pom.xml \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$CONNECT/plugins/jdbc-sink"
  touch "$CONNECT/.complete"
fi
VENV=$CACHE/bench-venv
if [ ! -f "$VENV/.complete" ] || ! cmp -s scripts/bench/requirements.txt "$VENV/.complete"; then
  echo "preparing the benchmark's Python packages in $VENV"
  rm -rf "$VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r scripts/bench/requirements.txt
  cp scripts/bench/requirements.txt "$VENV/.complete"
fi

PARTITIONS=${BENCH_PARTITIONS:-6}
if [ -z "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  echo "starting Apache Kafka $KAFKA_VERSION"
  KAFKA_BOOTSTRAP_SERVERS=$(KAFKA_TOPIC_PARTITIONS=$PARTITIONS scripts/kafka.sh start "$STATE/kafka" --port 0)
fi
export KAFKA_BOOTSTRAP_SERVERS KAFKA_TOPIC_PARTITIONS=$PARTITIONS BENCH_PARTITIONS=$PARTITIONS
BENCH_STATE=$STATE BENCH_BIN=target/release BENCH_CONNECT_LIBS=$CONNECT/libs \
  BENCH_CONNECT_PLUGINS=$CONNECT/plugins "$VENV/bin/python" scripts/bench/aggregator.py

[ -n "${BENCH_SKIP_MICRO:-}" ] || cargo bench --locked -q -p aggregator --bench decode_aggregate 2>/dev/null

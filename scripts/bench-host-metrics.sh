#!/usr/bin/env bash
# Benchmark (not a test): host-metrics' cost against node_exporter's, measured in one run on
# this machine: CPU seconds per 1,000 samples (taken, encoded and delivered to Kafka, process
# start-up included) against node_exporter's per 1,000 scrapes, and the peak and steady RSS of
# both. host-metrics is built as deployed (scripts/build-host-agent.sh).
# node_exporter runs twice: with the collectors covering what host-metrics reads, and with its
# defaults.
#
#   scripts/bench-host-metrics.sh                  # 1,000 samples / scrapes
#   BENCH_SAMPLES=5000 scripts/bench-host-metrics.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v prometheus-node-exporter >/dev/null || ! command -v kcat >/dev/null; then
  echo "installing prometheus-node-exporter and kcat"
  apt-get update -qq && apt-get install -y -qq prometheus-node-exporter kcat >/dev/null
fi
cargo build --release --locked -q -p devbroker -p host-metrics
# The deployed build (the image's) is the one costed; the release build runs beside it in the
# steady-state comparison.
agent=$(scripts/build-host-agent.sh)
python3 scripts/host-metrics-vs-node-exporter.py cost \
  --bin-dir "$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/release" \
  --agent-bin "$agent" --samples "${BENCH_SAMPLES:-1000}"

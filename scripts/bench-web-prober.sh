#!/usr/bin/env bash
# Benchmark (not a test): web-prober side by side with Prometheus' blackbox_exporter, on
# loopback only, in one run on this machine:
#   accuracy    against a local server that answers 50 ms after the request, the error of the
#               delay each reports (our ttfb vs their "processing" phase, our total vs their
#               probe_duration_seconds), median and p95;
#   throughput  1,000 targets on a local nginx at the same concurrency: checks/s, CPU seconds
#               per 1,000 checks, checks per CPU second, peak RSS.
# Prints a table of both and a verdict per target (timing error <= 1 ms; >= 2x blackbox's
# checks per CPU second). Exits 0 whatever the verdicts, non-zero if something failed to run.
# What is measured and how: the docstring of scripts/bench-web-prober.py.
#
#   scripts/bench-web-prober.sh
#   BENCH_TARGETS=1000 BENCH_CONCURRENCY=100 BENCH_SECONDS=20 scripts/bench-web-prober.sh
#   BENCH_WARMUP=3 BENCH_ACCURACY_CHECKS=30                   (the other knobs, defaults shown)
#   BENCH_SKIP_BUILD=1        do not build (use the binaries as they are)
#   BENCH_BIN_DIR=DIR         take devbroker and web-prober from DIR (no cargo metadata)
#
# Takes about a minute with the defaults. Every process it starts is stopped when it ends,
# also on Ctrl-C or SIGTERM (the Python script, exec'd below, stops them; its children also
# get SIGTERM if it is killed outright).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v prometheus-blackbox-exporter >/dev/null || missing+=(prometheus-blackbox-exporter)
command -v kcat >/dev/null || missing+=(kcat)
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
if [ "${#missing[@]}" -gt 0 ]; then
  echo "installing ${missing[*]}"
  apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin"

if [ -z "${BENCH_SKIP_BUILD:-}" ]; then
  cargo build --release --locked -q -p devbroker -p web-prober
fi
bin_dir="${BENCH_BIN_DIR:-}"
if [ -z "$bin_dir" ]; then
  bin_dir="$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/release"
fi
exec python3 scripts/bench-web-prober.py --bin-dir "$bin_dir"

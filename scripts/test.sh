#!/usr/bin/env bash
# The test command: on a fresh Debian machine, installs what the suite needs, makes sure a
# PostgreSQL server is up, starts Apache Kafka, builds the observability stack at compose's
# versions (once: about 8 minutes, then cached), then runs formatting, lint, every test, the
# config checks (promtool, amtool, dashboards, compose file, shellcheck) and the end-to-end test
# of the native stack (crates/e2e). Fails on any failure.
#
#   scripts/test.sh            # everything
#   TEST_DATABASE_URL=postgres://user@host:5432/postgres scripts/test.sh   # another server
#
# What it changes on the machine, and what it undoes at exit (passed, failed or interrupted):
#   undone  the `host all all 127.0.0.1/32 trust` line it puts first in the local cluster's
#           pg_hba.conf (only when it starts that cluster and the line is missing): removed,
#           the file byte for byte as before, the server reloaded;
#   undone  the test databases and roles of this run (agg_test_*, and the e2e's
#           fleetpulse_e2e) on the test server: dropped; those there before are kept;
#   undone  its Apache Kafka: stopped, its folder deleted;
#   kept    the Debian packages and cargo-nextest it installs; the PostgreSQL cluster it
#           creates or starts (it keeps running); scripts/pg-test-tls.sh's TLS on the local
#           cluster (a test CA and certificate in /etc/fleetpulse-test-tls, ssl = on through
#           ALTER SYSTEM: made once, reused by the next run; plain connections keep working;
#           undo: ALTER SYSTEM RESET ssl; ALTER SYSTEM RESET ssl_cert_file; ALTER SYSTEM RESET
#           ssl_key_file; SELECT pg_reload_conf(); and delete the folder); the build caches
#           (target/, ~/.cache/fleetpulse: Kafka, the Go-built Prometheus and the rest) and the
#           e2e's state folder .local-stack-e2e/.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
# shellcheck source=scripts/lib/test-cleanup.sh
source scripts/lib/test-cleanup.sh
trap test_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# --- packages -------------------------------------------------------------------------------
need=()
command -v cc >/dev/null || need+=(build-essential)
command -v pkg-config >/dev/null || need+=(pkg-config)
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
dpkg -s zlib1g-dev >/dev/null 2>&1 || need+=(zlib1g-dev)
command -v psql >/dev/null || need+=(postgresql-client)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl) # the e2e's probe-site certificate
command -v jq >/dev/null || need+=(jq)
command -v shellcheck >/dev/null || need+=(shellcheck)
python3 -c 'import yaml' 2>/dev/null || need+=(python3-yaml) # the native stack's configs
command -v prometheus-node-exporter >/dev/null || need+=(prometheus-node-exporter)
command -v kcat >/dev/null || need+=(kcat)
# Apache Kafka runs natively on Java 17 and is fetched with Maven (scripts/kafka.sh).
command -v java >/dev/null || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ -z "${TEST_DATABASE_URL:-}" ] && ! command -v pg_ctlcluster >/dev/null; then
  need+=(postgresql)
fi
if [ ${#need[@]} -gt 0 ]; then
  log "installing ${need[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi
# Prometheus, Alertmanager, Mailpit and Jaeger are built from their Go modules (Debian's Go is
# too old for them): the machine's Go is needed.
command -v go >/dev/null || { echo "error: go not found: scripts/observability.sh builds Prometheus, Alertmanager, Mailpit and Jaeger with it" >&2; exit 1; }
if ! cargo nextest --version >/dev/null 2>&1; then
  log "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

# --- PostgreSQL -----------------------------------------------------------------------------
export TEST_DATABASE_URL="${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
if ! psql "$TEST_DATABASE_URL" -qAtc 'SELECT 1' >/dev/null 2>&1; then
  log "starting the local PostgreSQL cluster"
  # The newest cluster named main, as Debian lists them (other folders under /etc/postgresql
  # are not clusters).
  version=$(pg_lsclusters -h | awk '$2 == "main" { print $1 }' | sort -V | tail -1)
  if [ -z "$version" ]; then
    version=$(find /usr/lib/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' | sort -V | tail -1)
    as_root pg_createcluster "$version" main
  fi
  as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  # The tests connect over TCP as postgres without a password: a trust line for 127.0.0.1
  # while they run (removed at exit: scripts/lib/test-cleanup.sh).
  hba_trust_local "/etc/postgresql/$version/main/pg_hba.conf" \
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload
  for _ in $(seq 1 30); do
    psql "$TEST_DATABASE_URL" -qAtc 'SELECT 1' >/dev/null 2>&1 && break
    sleep 1
  done
  psql "$TEST_DATABASE_URL" -qAtc 'SELECT 1' >/dev/null
fi
log "PostgreSQL: $(psql "$TEST_DATABASE_URL" -qAtc 'SHOW server_version')"
# The test databases and roles there now are not this run's: kept at exit, the others dropped.
note_test_objects "$TEST_DATABASE_URL"
# TLS for the test that connects with sslmode=verify-full: a test CA and a certificate for
# `localhost` (not 127.0.0.1, so that a wrong host name can be shown), made once, on the local
# cluster. With another TEST_DATABASE_URL, set TEST_PG_TLS_CA to the CA of its certificate.
if [ -z "${TEST_PG_TLS_CA:-}" ] && [ "$TEST_DATABASE_URL" = postgres://postgres@127.0.0.1:5432/postgres ]; then
  scripts/pg-test-tls.sh
  export TEST_PG_TLS_CA=/etc/fleetpulse-test-tls/ca.pem
fi

# --- Apache Kafka ---------------------------------------------------------------------------
log "versions: deploy/versions.env against docker-compose.yml"
# shellcheck source=deploy/versions.env
. deploy/versions.env
scripts/check-versions.sh
# One broker for the run; every test makes its own topics and group on it (tests that kill or
# secure a broker start one of their own with scripts/kafka.sh). TEST_KAFKA_BOOTSTRAP_SERVERS
# given: that broker instead.
if [ -z "${TEST_KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
  KAFKA_DIR=$(mktemp -d "${TMPDIR:-/tmp}/fleet-test-kafka.XXXXXX") # stopped and deleted at exit
  log "starting Apache Kafka $(scripts/kafka.sh version) in $KAFKA_DIR"
  TEST_KAFKA_BOOTSTRAP_SERVERS=$(scripts/kafka.sh start "$KAFKA_DIR" --port 0)
  export TEST_KAFKA_BOOTSTRAP_SERVERS
fi
log "Kafka: $TEST_KAFKA_BOOTSTRAP_SERVERS"

# --- checks and tests -----------------------------------------------------------------------
log "cargo fmt --check"
cargo fmt --all -- --check
log "layers: no import cycle between the modules of a crate"
python3 scripts/check-layers.py
log "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
log "cargo nextest run"
cargo nextest run --workspace --locked --no-fail-fast
log "doc tests"
cargo test --workspace --locked --doc

log "shellcheck"
# SC1091: sourced helpers are followed with -x from the repository root.
shellcheck -x -e SC1091 dc-up.sh dc-down.sh deploy/healthcheck.sh deploy/postgres/roles.sh scripts/*.sh scripts/lib/*.sh scripts/lib/native/*.sh
log "Prometheus $PROMETHEUS_VERSION, Alertmanager $ALERTMANAGER_VERSION, Mailpit $MAILPIT_VERSION, Jaeger $JAEGER_VERSION (built once from their Go modules)"
scripts/observability.sh build
log "Prometheus, Alertmanager and Grafana configs"
scripts/check-configs.sh
log "docker-compose.yml against the Compose Specification"
scripts/check-compose.sh
log "docs: alert runbooks and links (the settings tables: fleet-e2e's settings test, above)"
python3 scripts/check-docs.py
log "end to end: the native stack (fleet-e2e's tests/e2e, #[ignore]d in the run above)"
cargo build --workspace --locked --bins
FLEET_BIN_DIR="$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/debug" \
  cargo test -p fleet-e2e --locked --test e2e -- --ignored --nocapture
log "host-metrics side by side with node_exporter (agreement)"
python3 scripts/host-metrics-vs-node-exporter.py agreement \
  --bin-dir "$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)/debug"
log "all green"

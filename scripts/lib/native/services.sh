# shellcheck shell=bash
# The Fleetpulse services on the native stack (sourced by scripts/local-up.sh, after
# scripts/lib/local-stack.sh): their binaries (FLEET_BIN_DIR, else built by cargo) and how each
# is started against the stack's Kafka and Jaeger.
BIN_DIR=""

resolve_binaries() {
  [ -n "$BIN_DIR" ] && return
  if [ -n "${FLEET_BIN_DIR:-}" ]; then
    BIN_DIR=$(cd "$FLEET_BIN_DIR" && pwd) || die "FLEET_BIN_DIR=$FLEET_BIN_DIR is not a folder"
  else
    say "cargo build --release --locked --bins"
    (cd "$REPO" && cargo build --release --locked --bins)
    BIN_DIR=$REPO/target/release
  fi
}
need_bin() {
  resolve_binaries
  [ -x "$BIN_DIR/$1" ] || die "$BIN_DIR/$1 is missing (build it, or set FLEET_BIN_DIR)"
}

# start_service NAME PORT [VAR=VALUE...]: the service's binary with METRICS_ADDR on
# 127.0.0.1:PORT, the stack's Kafka and the extra settings; waits for /readyz.
start_service() {
  local name=$1 port=$2
  shift 2
  if pid_of "$name" >/dev/null; then
    [ "$KAFKA_FRESH" = 1 ] || return 0
    say "$name was started against another Kafka: restarting it"
    stop_component "$name"
  fi
  need_bin "$name"
  ensure_port_free "$name" "$port" "FLEET_$(tr '[:lower:]-' '[:upper:]_' <<<"$name")_PORT"
  (
    # Plain text logs in the log files (tracing honours NO_COLOR).
    export METRICS_ADDR="127.0.0.1:$port" KAFKA_BOOTSTRAP_SERVERS="$KAFKA" NO_COLOR="${NO_COLOR:-1}"
    # Traces to our Jaeger, as compose sends them to its own; an explicit empty value: none.
    export OTEL_EXPORTER_OTLP_ENDPOINT="${OTEL_EXPORTER_OTLP_ENDPOINT-http://127.0.0.1:$JAEGER_OTLP_PORT}"
    for kv in "$@"; do export "${kv?}"; done
    start_detached "$name" "$BIN_DIR/$name"
  )
  wait_ready "$name" "http://127.0.0.1:$port/readyz"
}

# The aggregator: the stack's database, and the webhook token Alertmanager sends.
start_aggregator() {
  start_service aggregator "$AGGREGATOR_PORT" DATABASE_URL="$DB_URL" ALERTS_TOKEN="$(<"$ALERTS_TOKEN_FILE")"
}

#!/usr/bin/env bash
# The whole fleet without Docker, on 127.0.0.1, with the same configuration files as
# docker-compose.yml and the same versions of the third-party programs (deploy/versions.env):
# prometheus/ and alertmanager/ are copied into the state folder with the compose hostnames
# rewritten (aggregator:6066 -> 127.0.0.1:6066, mailpit:1025 -> 127.0.0.1:1025, ...);
# jaeger/config.yaml is used as it is. Prometheus, Alertmanager, Mailpit and Jaeger are built
# from their Go modules on first use (scripts/observability.sh: about 8 minutes, once).
#
#   scripts/local-up.sh                   # start whatever is not running yet
#   scripts/local-up.sh call-simulator    # start one component (and what it needs), e.g.
#                                         # after scripts/local-down.sh call-simulator
#   FLEET_BIN_DIR=target/debug scripts/local-up.sh   # binaries already built
#   scripts/local-down.sh                 # stop what this started
#
# Components, in start order: mailpit (SMTP for Alertmanager's mails; its API on
# FLEET_MAILPIT_PORT), jaeger (OTLP from the services; its query API on FLEET_JAEGER_PORT),
# kafka (unless KAFKA_BOOTSTRAP_SERVERS answers: Apache Kafka at deploy/versions.env's version,
# run by scripts/kafka.sh with its data in the state folder's kafka/; without Java and Maven, or
# with FLEET_KAFKA=devbroker, devbroker, librdkafka's in-memory mock cluster), postgres (a
# private cluster, only when no server is found), aggregator, call-simulator, host-metrics (samples this machine),
# probe-site (python3 https server with a self-signed certificate made by openssl, one of
# web-prober's targets), web-prober (checks the targets of web-prober/targets.yaml in the
# state folder, written on first start), alertmanager, prometheus.
#
# Settings, besides those in scripts/lib/local-stack.sh:
#   KAFKA_BOOTSTRAP_SERVERS  an existing Kafka; used if it accepts connections, else ours
#   FLEET_KAFKA              apache (default) or devbroker: which Kafka local-up starts
#   KAFKA_TOPIC_PARTITIONS   partitions of the topics the services create (default 6)
#   DATABASE_URL             an existing database, used as is
#   FLEET_PG_ADMIN_URL       a server to create the database on (default: the local server at
#                            127.0.0.1:5432 as postgres if pg_isready, else a private cluster)
#   FLEET_PG_PRIVATE=1       always use a private cluster (initdb in the state folder)
#   FLEET_DB_NAME            database created when DATABASE_URL is unset (default fleetpulse)
#   FLEET_DB_RESET=1         drop and recreate that database first (only if the aggregator
#                            is not running)
#   FLEET_PROMETHEUS_DIR, FLEET_ALERTMANAGER_DIR
#                            configuration sources (default prometheus/, alertmanager/)
#   FLEET_SCRAPE_INTERVAL    e.g. 2s: scrape and rule evaluation interval (and scrape timeout)
#   FLEET_EXTRA_RULES        extra rule files (space or colon separated), loaded with the rest
#   FLEET_FAST_ALERTS=1      Alertmanager group_wait and group_interval 1s (for the e2e)
#   ALERTS_TOKEN             the bearer token of the aggregator's POST /alerts (default: one
#                            generated once into the state folder's secrets/alerts_token,
#                            which Alertmanager reads)
#   OTEL_EXPORTER_OTLP_ENDPOINT  where the services send their traces (default: our Jaeger, as
#                            in compose; set it empty for no export)
#   RUST_LOG, LOG_FORMAT and every other service setting are passed through to the services
#   unchanged (e.g. SAMPLE_INTERVAL_SECS=1 for host-metrics,
#   PROBE_INTERVAL_SECS=5 for web-prober). PROBE_TARGETS_FILE replaces the generated targets
#   file; PROBE_CA_FILE replaces probe-site's certificate as the extra CA.
set -euo pipefail
# shellcheck source=scripts/lib/local-stack.sh
source "$(dirname "$0")/lib/local-stack.sh"

usage() { sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d'; }

# --- what to start ----------------------------------------------------------------------
declare -A WANT=()
add_with_deps() {
  case $1 in
    mailpit | jaeger | kafka | postgres) ;;
    aggregator) add_with_deps jaeger; add_with_deps kafka; add_with_deps postgres ;;
    call-simulator | host-metrics) add_with_deps jaeger; add_with_deps kafka ;;
    probe-site) ;;
    web-prober) add_with_deps jaeger; add_with_deps kafka; add_with_deps probe-site ;;
    alertmanager) add_with_deps mailpit ;;
    prometheus) add_with_deps alertmanager ;;
    *) die "unknown component '$1' (known: ${COMPONENTS[*]})" ;;
  esac
  WANT[$1]=1
}
if [ $# -eq 0 ]; then
  for c in "${COMPONENTS[@]}"; do WANT[$c]=1; done
else
  for arg in "$@"; do
    case $arg in
      -h | --help) usage; exit 0 ;;
      *) add_with_deps "$arg" ;;
    esac
  done
fi

mkdir -p "$RUN" "$LOGS"
trap 'rc=$?; [ "$rc" -eq 0 ] || echo "local-up.sh failed; what did start keeps running: scripts/local-down.sh stops it" >&2' EXIT
command -v curl >/dev/null || die "curl is required (apt-get install curl)"

# Settings chosen by an earlier run (Kafka address, database URL) are kept in stack.env, so
# that restarting one component joins the same Kafka and database.
STACK_ENV=$RUN/stack.env
STACK_KAFKA="" STACK_KAFKA_MODE="" STACK_DATABASE_URL="" STACK_PG_MODE=""
# shellcheck source=/dev/null
[ -f "$STACK_ENV" ] && source "$STACK_ENV"

# --- binaries ---------------------------------------------------------------------------
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

# --- Mailpit and Jaeger -------------------------------------------------------------------
# Mailpit: Alertmanager's SMTP server; the mails are read through its API (natively there is
# no web UI: README). Kept in the state folder's mailpit/ across restarts (compose keeps them
# in memory).
ensure_mailpit() {
  pid_of mailpit >/dev/null && return
  local bin
  bin=$(obs_bin mailpit)
  ensure_port_free mailpit "$SMTP_PORT" FLEET_SMTP_PORT
  ensure_port_free mailpit "$MAILPIT_PORT" FLEET_MAILPIT_PORT
  mkdir -p "$STATE/mailpit"
  start_detached mailpit "$bin" --smtp "127.0.0.1:$SMTP_PORT" --listen "127.0.0.1:$MAILPIT_PORT" \
    --database "$STATE/mailpit/mailpit.db" --disable-version-check --smtp-disable-rdns
  wait_ready mailpit "http://127.0.0.1:$MAILPIT_PORT/readyz"
}

# Jaeger v2 with compose's jaeger/config.yaml, on 127.0.0.1; traces in memory.
ensure_jaeger() {
  pid_of jaeger >/dev/null && return
  local bin
  bin=$(obs_bin jaeger)
  ensure_port_free jaeger "$JAEGER_PORT" FLEET_JAEGER_PORT
  ensure_port_free jaeger "$JAEGER_OTLP_PORT" FLEET_JAEGER_OTLP_PORT
  ensure_port_free jaeger "$JAEGER_HEALTH_PORT" FLEET_JAEGER_HEALTH_PORT
  (
    export JAEGER_LISTEN_HOST=127.0.0.1 JAEGER_QUERY_PORT=$JAEGER_PORT \
      JAEGER_OTLP_GRPC_PORT=$JAEGER_OTLP_PORT JAEGER_HEALTH_PORT
    start_detached jaeger "$bin" --config "$REPO/jaeger/config.yaml"
  )
  wait_ready jaeger "http://127.0.0.1:$JAEGER_HEALTH_PORT/status"
}

# --- Kafka --------------------------------------------------------------------------------
KAFKA="" KAFKA_FRESH=0
# Any host:port of a comma-separated list accepting connections.
kafka_reachable() {
  local hp hps
  IFS=',' read -r -a hps <<<"$1"
  for hp in "${hps[@]}"; do
    hp=${hp#*://}
    tcp_open "${hp%:*}" "${hp##*:}" && return 0
  done
  return 1
}
ensure_kafka() {
  if pid_of kafka >/dev/null && [ -s "$RUN/kafka.bootstrap" ]; then
    KAFKA=$(<"$RUN/kafka.bootstrap")
    return
  fi
  if [ "$STACK_KAFKA_MODE" = external ] && kafka_reachable "$STACK_KAFKA"; then
    KAFKA=$STACK_KAFKA
    return
  fi
  if [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
    if kafka_reachable "$KAFKA_BOOTSTRAP_SERVERS"; then
      say "Kafka: $KAFKA_BOOTSTRAP_SERVERS (from KAFKA_BOOTSTRAP_SERVERS)"
      KAFKA=$KAFKA_BOOTSTRAP_SERVERS STACK_KAFKA_MODE=external KAFKA_FRESH=1
      return
    fi
    warn "KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS does not accept connections: starting our own"
  fi
  local mode=${FLEET_KAFKA:-apache}
  case $mode in
    apache | devbroker) ;;
    *) die "invalid value '$mode' for FLEET_KAFKA: expected apache or devbroker" ;;
  esac
  if [ "$mode" = apache ] && ! { command -v java && command -v mvn; } >/dev/null; then
    warn "no Java or Maven here: starting devbroker (librdkafka's mock cluster) instead of Apache Kafka"
    mode=devbroker
  fi
  rm -f "$RUN/kafka.bootstrap"
  if [ "$mode" = apache ]; then
    ensure_port_free kafka "$KAFKA_PORT" FLEET_KAFKA_PORT
    "$REPO/scripts/kafka.sh" fetch
    rm -f "$STATE/kafka/start.mark" # the next one is this run's (kafka.sh wait reads it)
    start_detached kafka "$REPO/scripts/kafka.sh" run "$STATE/kafka" --port "$KAFKA_PORT"
    # kafka.sh execs the JVM: that is the command line pid_of finds from now on.
    printf 'java\n' >"$RUN/kafka.cmd"
    FLEET_KAFKA_START_TIMEOUT=$START_TIMEOUT "$REPO/scripts/kafka.sh" wait "$STATE/kafka" \
      "$(<"$RUN/kafka.pid")" >"$RUN/kafka.bootstrap.new" || { log_tail kafka >&2; die "Kafka did not start"; }
    mv "$RUN/kafka.bootstrap.new" "$RUN/kafka.bootstrap"
    KAFKA=$(<"$RUN/kafka.bootstrap") KAFKA_FRESH=1
    # The same broker again (same folder, same port): running services just reconnect.
    [ "$STACK_KAFKA_MODE:$STACK_KAFKA" != "apache:$KAFKA" ] || KAFKA_FRESH=0
    STACK_KAFKA_MODE=apache
    say "Kafka: Apache Kafka $("$REPO/scripts/kafka.sh" version) at $KAFKA (data in $STATE/kafka; FLEET_KAFKA=devbroker for the in-memory stand-in)"
  else
    need_bin devbroker
    start_detached kafka "$BIN_DIR/devbroker" \
      --partitions "${KAFKA_TOPIC_PARTITIONS:-6}" --bootstrap-file "$RUN/kafka.bootstrap"
    local deadline=$(($(now) + 15))
    until [ -s "$RUN/kafka.bootstrap" ]; do
      pid_of kafka >/dev/null || { log_tail kafka >&2; die "devbroker exited"; }
      [ "$(now)" -lt "$deadline" ] || die "devbroker wrote no bootstrap file in 15 s"
      sleep 0.05
    done
    KAFKA=$(<"$RUN/kafka.bootstrap") STACK_KAFKA_MODE=devbroker KAFKA_FRESH=1
    say "Kafka: devbroker at $KAFKA (librdkafka's mock cluster, in memory: gone when it stops)"
  fi
  local c
  for c in aggregator call-simulator host-metrics web-prober; do
    if [ "$KAFKA_FRESH" = 1 ] && [ -z "${WANT[$c]:-}" ] && pid_of "$c" >/dev/null; then
      warn "$c still uses the previous Kafka: restart it (scripts/local-down.sh $c && scripts/local-up.sh $c)"
    fi
  done
}

# --- PostgreSQL ---------------------------------------------------------------------------
DB_URL=""
db_url_for() { # ADMIN_URL DB -> the same server, database DB (keeps ?params)
  local base=${1%%\?*} query=""
  [[ $1 == *\?* ]] && query="?${1#*\?}"
  printf '%s/%s%s\n' "${base%/*}" "$2" "$query"
}
start_private_postgres() {
  local bindir data=$STATE/postgres/data sock=$STATE/postgres/socket pid
  bindir=$(pg_bindir)
  mkdir -p "$STATE/postgres" "$sock"
  touch "$LOGS/postgres.log"
  [ "$(id -u)" -ne 0 ] || chown -R postgres: "$STATE/postgres" "$LOGS/postgres.log"
  if [ ! -f "$data/PG_VERSION" ]; then
    say "postgres: initdb $data"
    pg_as_owner "$bindir/initdb" -D "$data" -U postgres -A trust -E UTF8 --no-instructions \
      >>"$LOGS/postgres.log" 2>&1 || { log_tail postgres >&2; die "initdb failed"; }
  fi
  if ! pg_as_owner "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    ensure_port_free postgres "$PG_PORT" FLEET_PG_PORT
    pg_as_owner "$bindir/pg_ctl" -D "$data" -l "$LOGS/postgres.log" -w -t "$START_TIMEOUT" \
      -o "-p $PG_PORT -k $sock -c listen_addresses=127.0.0.1" start >/dev/null ||
      { log_tail postgres >&2; die "the private PostgreSQL cluster did not start"; }
  fi
  pid=$(head -n 1 "$data/postmaster.pid")
  echo "$pid" >"$RUN/postgres.pid"
  tr '\0' '\n' <"/proc/$pid/cmdline" | head -n 1 >"$RUN/postgres.cmd"
  say "PostgreSQL: private cluster on 127.0.0.1:$PG_PORT ($data)"
}
ensure_database() {
  local admin="" db=${FLEET_DB_NAME:-fleetpulse}
  command -v psql >/dev/null || die "psql is required (apt-get install postgresql-client)"
  export PGOPTIONS="${PGOPTIONS:--c client_min_messages=warning}"
  if [ -n "${DATABASE_URL:-}" ]; then
    psql "$DATABASE_URL" -XqAtc 'SELECT 1' >/dev/null || die "DATABASE_URL=$DATABASE_URL: cannot connect"
    DB_URL=$DATABASE_URL STACK_PG_MODE=external
    return
  fi
  # Restarting a component of a stack that was given a database: the same database.
  if [ -z "${FLEET_PG_ADMIN_URL:-}" ] && [ -n "$STACK_DATABASE_URL" ] &&
    { [ "$STACK_PG_MODE" = external ] || [ "$STACK_PG_MODE" = admin-url ]; }; then
    DB_URL=$STACK_DATABASE_URL
    return
  fi
  [[ $db =~ ^[a-z_][a-z0-9_]*$ ]] || die "FLEET_DB_NAME=$db: use lower-case letters, digits and _"
  if [ -n "${FLEET_PG_ADMIN_URL:-}" ]; then
    admin=$FLEET_PG_ADMIN_URL STACK_PG_MODE=admin-url
  elif [ "$STACK_PG_MODE" = private ] || [ "${FLEET_PG_PRIVATE:-0}" = 1 ] ||
    ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    start_private_postgres
    admin=postgres://postgres@127.0.0.1:$PG_PORT/postgres STACK_PG_MODE=private
  else
    admin=postgres://postgres@127.0.0.1:5432/postgres STACK_PG_MODE=local-server
  fi
  psql "$admin" -XqAtc 'SELECT 1' >/dev/null 2>&1 ||
    die "cannot connect to $admin as postgres (password needed?): set DATABASE_URL or FLEET_PG_ADMIN_URL"
  if [ "${FLEET_DB_RESET:-0}" = 1 ]; then
    if pid_of aggregator >/dev/null; then
      warn "FLEET_DB_RESET=1 ignored: the aggregator is running on database $db"
    else
      say "PostgreSQL: dropping database $db (FLEET_DB_RESET=1)"
      psql "$admin" -XqAtc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null
    fi
  fi
  if [ -z "$(psql "$admin" -XqAtc "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
    psql "$admin" -XqAtc "CREATE DATABASE $db" >/dev/null
    say "PostgreSQL: created database $db"
  fi
  DB_URL=$(db_url_for "$admin" "$db")
}

save_stack_env() {
  {
    printf 'STACK_KAFKA=%q\n' "$KAFKA"
    printf 'STACK_KAFKA_MODE=%q\n' "$STACK_KAFKA_MODE"
    printf 'STACK_DATABASE_URL=%q\n' "$DB_URL"
    printf 'STACK_PG_MODE=%q\n' "$STACK_PG_MODE"
  } >"$STACK_ENV"
}

# --- the webhook token ----------------------------------------------------------------------
# POST /alerts requires a bearer token, as in compose: ALERTS_TOKEN from the shell, else one
# generated once into the state folder. The aggregator gets it at start, Alertmanager reads
# the file (compose's /run/secrets/alerts_token, rewritten).
ALERTS_TOKEN_FILE=$STATE/secrets/alerts_token
ensure_alerts_token() {
  (
    umask 077
    mkdir -p "$STATE/secrets"
    if [ -n "${ALERTS_TOKEN:-}" ]; then
      printf '%s' "$ALERTS_TOKEN" >"$ALERTS_TOKEN_FILE"
    elif [ ! -s "$ALERTS_TOKEN_FILE" ]; then
      od -An -N18 -tx1 /dev/urandom | tr -d ' \n' >"$ALERTS_TOKEN_FILE"
    fi
  )
}

# --- Prometheus and Alertmanager configuration ------------------------------------------
# Compose hostnames -> this machine. host-metrics runs on the host's network in compose, so
# Prometheus reaches it as host.docker.internal:6068 (host-metrics:6068 is accepted too).
localize() {
  sed -i \
    -e "s#\\baggregator:6066\\b#127.0.0.1:$AGGREGATOR_PORT#g" \
    -e "s#\\bcall-simulator:6067\\b#127.0.0.1:$CALL_SIMULATOR_PORT#g" \
    -e "s#\\bhost\\.docker\\.internal:6068\\b#127.0.0.1:$HOST_METRICS_PORT#g" \
    -e "s#\\bhost-metrics:6068\\b#127.0.0.1:$HOST_METRICS_PORT#g" \
    -e "s#\\bweb-prober:6069\\b#127.0.0.1:$WEB_PROBER_PORT#g" \
    -e "s#\\bprometheus:9090\\b#127.0.0.1:$PROMETHEUS_PORT#g" \
    -e "s#\\balertmanager:9093\\b#127.0.0.1:$ALERTMANAGER_PORT#g" \
    -e "s#\\bmailpit:1025\\b#127.0.0.1:$SMTP_PORT#g" \
    -e "s#/run/secrets/alerts_token#$ALERTS_TOKEN_FILE#g" \
    "$@"
}

localize_all() {
  local files=()
  mapfile -d '' files < <(find "$1" -type f \( -name '*.yml' -o -name '*.yaml' -o -name '*.tmpl' \) -print0)
  [ ${#files[@]} -eq 0 ] || localize "${files[@]}"
}

# set_yaml_key FILE BLOCK KEY VALUE: sets KEY to VALUE wherever it appears in FILE (every
# level), and adds it to the top-level mapping BLOCK when BLOCK's own level lacks it (BLOCK is
# appended when missing). Line-based, for the simple YAML of prometheus.yml and
# alertmanager.yml; promtool and amtool check the result.
set_yaml_key() {
  local file=$1 block=$2 key=$3 value=$4
  awk -v block="$block" -v key="$key" -v value="$value" '
    function close_block() {
      if (in_block && !has_key) printf "%s%s: %s\n", (indent == "" ? "  " : indent), key, value
      in_block = 0
    }
    /^[^ \t#]/ { close_block() }
    {
      if (in_block && indent == "" && $0 ~ /^[ \t]+[^ \t#]/) {
        match($0, /^[ \t]+/); indent = substr($0, 1, RLENGTH)
      }
      if ($0 ~ "^[ \t]*(- )?" key ":") {
        sub(key ":.*", key ": " value)
        if (in_block && indent != "" && substr($0, 1, length(indent)) == indent &&
            substr($0, length(indent) + 1, 1) !~ /[ \t]/) has_key = 1
      }
    }
    $0 ~ "^" block ":[ \t]*(#.*)?$" { in_block = 1; seen = 1; has_key = 0; indent = "" }
    { print }
    END {
      close_block()
      if (!seen) printf "%s:\n  %s: %s\n", block, key, value
    }' "$file" >"$file.tmp"
  mv "$file.tmp" "$file"
}

# copy_config SRC DST: a fresh copy of a configuration folder.
copy_config() {
  rm -rf "$2"
  mkdir -p "$2"
  cp -R "$1/." "$2/"
}

render_prometheus() {
  local src=${FLEET_PROMETHEUS_DIR:-$REPO/prometheus} dst=$STATE/prometheus/config f base
  [ -f "$src/prometheus.yml" ] || die "$src/prometheus.yml is missing (or set FLEET_PROMETHEUS_DIR)"
  copy_config "$src" "$dst"
  mkdir -p "$dst/rules" "$STATE/prometheus/data"
  # Extra rules join rules/, which prometheus.yml loads (rule_files: rules/*.yml).
  local extra=${FLEET_EXTRA_RULES:-}
  for f in ${extra//:/ }; do
    case $f in /*) ;; *) f=$REPO/$f ;; esac
    [ -f "$f" ] || die "FLEET_EXTRA_RULES: $f is not a file"
    base=$(basename "$f")
    cp "$f" "$dst/rules/extra-${base%.*}.yml"
  done
  if [ -n "${FLEET_SCRAPE_INTERVAL:-}" ]; then
    [[ $FLEET_SCRAPE_INTERVAL =~ ^[0-9]+(ms|s|m)$ ]] || die "FLEET_SCRAPE_INTERVAL=$FLEET_SCRAPE_INTERVAL: use e.g. 2s"
    set_yaml_key "$dst/prometheus.yml" global scrape_interval "$FLEET_SCRAPE_INTERVAL"
    set_yaml_key "$dst/prometheus.yml" global evaluation_interval "$FLEET_SCRAPE_INTERVAL"
    # A timeout above the interval is a config error. Without any scrape_timeout, Prometheus
    # lowers its 10 s default to the interval itself.
    if grep -qE '^[[:space:]]*(- )?scrape_timeout:' "$dst/prometheus.yml"; then
      set_yaml_key "$dst/prometheus.yml" global scrape_timeout "$FLEET_SCRAPE_INTERVAL"
    fi
  fi
  localize_all "$dst"
  if grep -qE '\b(grafana|jaeger|mailpit|kafka|postgres):[0-9]+' "$dst/prometheus.yml"; then
    warn "prometheus.yml names compose-only hosts; those targets stay down here:"
    grep -nE '\b(grafana|jaeger|mailpit|kafka|postgres):[0-9]+' "$dst/prometheus.yml" >&2 || true
  fi
  local promtool
  promtool=$(obs_bin promtool)
  "$promtool" check config "$dst/prometheus.yml" >"$LOGS/promtool.log" 2>&1 ||
    { cat "$LOGS/promtool.log" >&2; die "promtool rejects the rendered $dst/prometheus.yml"; }
}

render_alertmanager() {
  local src=${FLEET_ALERTMANAGER_DIR:-$REPO/alertmanager} dst=$STATE/alertmanager/config
  [ -f "$src/alertmanager.yml" ] || die "$src/alertmanager.yml is missing (or set FLEET_ALERTMANAGER_DIR)"
  copy_config "$src" "$dst"
  mkdir -p "$STATE/alertmanager/data"
  if [ "${FLEET_FAST_ALERTS:-0}" = 1 ]; then
    set_yaml_key "$dst/alertmanager.yml" route group_wait 1s
    set_yaml_key "$dst/alertmanager.yml" route group_interval 1s
  fi
  localize_all "$dst"
  local amtool
  amtool=$(obs_bin amtool)
  "$amtool" check-config "$dst/alertmanager.yml" >"$LOGS/amtool.log" 2>&1 ||
    { cat "$LOGS/amtool.log" >&2; die "amtool rejects the rendered $dst/alertmanager.yml"; }
}

# ensure_monitor NAME PORT: (re)renders the configuration; starts NAME, or reloads it when it
# already runs, so that edited rules take effect.
ensure_monitor() {
  local name=$1 port=$2 bin
  bin=$(obs_bin "$name")
  "render_$name"
  if pid_of "$name" >/dev/null; then
    curl -fsS -X POST --max-time 5 "http://127.0.0.1:$port/-/reload" >/dev/null ||
      die "$name did not accept the reloaded configuration (see $LOGS/$name.log)"
    return
  fi
  ensure_port_free "$name" "$port" "FLEET_${name^^}_PORT"
  if [ "$name" = prometheus ]; then
    start_detached prometheus "$bin" \
      --config.file="$STATE/prometheus/config/prometheus.yml" \
      --storage.tsdb.path="$STATE/prometheus/data" \
      --storage.tsdb.retention.time=2d \
      --web.listen-address="127.0.0.1:$port" \
      --web.enable-lifecycle
  else
    start_detached alertmanager "$bin" \
      --config.file="$STATE/alertmanager/config/alertmanager.yml" \
      --storage.path="$STATE/alertmanager/data" \
      --web.listen-address="127.0.0.1:$port" \
      --cluster.listen-address= \
      --web.external-url="http://127.0.0.1:$port"
  fi
  wait_ready "$name" "http://127.0.0.1:$port/-/ready"
}

# --- the services -----------------------------------------------------------------------
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

# --- probe-site and web-prober ------------------------------------------------------------
# probe-site: https on 127.0.0.1 with a self-signed certificate for localhost and 127.0.0.1
# (made by openssl, valid 30 days, renewed a week before it expires), so that web-prober's
# TLS phase, certificate expiry and failure results have something to measure. Pages:
# /health ({"status": "ok"}), /version ({"version": "1.4.2"}), / and 404 for the rest.
PROBE_SITE_PY='
import http.server, signal, ssl, sys
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
port, cert, key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(cert, key)
PAGES = {
    "/": b"Fleetpulse probe site\n",
    "/health": b"{\"status\": \"ok\"}\n",
    "/version": b"{\"version\": \"1.4.2\"}\n",
}
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = PAGES.get(self.path.split("?")[0])
        self.send_response(200 if body else 404)
        body = body or b"not found\n"
        self.send_header("Content-Type", "application/json" if body.startswith(b"{") else "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    def finish_request(self, request, client_address):
        # The handshake in the request thread: a client that never completes it holds no one.
        tls = context.wrap_socket(request, server_side=True)
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            tls.close()
    def handle_error(self, request, client_address):
        pass  # a client gone mid-handshake or mid-request
server = Server(("127.0.0.1", port), Handler)
print("probe-site: https://localhost:%d (self-signed: %s)" % (port, cert), flush=True)
server.serve_forever()
'
PROBE_SITE_DIR=$STATE/probe-site
ensure_probe_site_cert() {
  local dir=$PROBE_SITE_DIR
  if [ -s "$dir/cert.pem" ] && [ -s "$dir/key.pem" ] &&
    openssl x509 -checkend $((7 * 86400)) -noout -in "$dir/cert.pem" >/dev/null 2>&1; then
    return
  fi
  mkdir -p "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" >>"$LOGS/probe-site.log" 2>&1 ||
    { log_tail probe-site >&2; die "openssl could not make probe-site's certificate"; }
  chmod 600 "$dir/key.pem"
  say "probe-site: new self-signed certificate $dir/cert.pem (30 days)"
  if pid_of web-prober >/dev/null; then
    warn "web-prober trusts the previous certificate: restart it (scripts/local-down.sh web-prober && scripts/local-up.sh web-prober)"
  fi
}
ensure_probe_site() {
  pid_of probe-site >/dev/null && return
  if ! command -v openssl >/dev/null; then
    warn "no openssl: no probe-site, web-prober's https targets will fail (apt-get install openssl)"
    return
  fi
  ensure_probe_site_cert
  ensure_port_free probe-site "$PROBE_SITE_PORT" FLEET_PROBE_SITE_PORT
  start_detached probe-site "$(python3 -c 'import sys; print(sys.executable)')" -u -c "$PROBE_SITE_PY" \
    "$PROBE_SITE_PORT" "$PROBE_SITE_DIR/cert.pem" "$PROBE_SITE_DIR/key.pem"
  local deadline=$(($(now) + 10))
  until curl -fsS -o /dev/null --max-time 2 --cacert "$PROBE_SITE_DIR/cert.pem" \
    "https://localhost:$PROBE_SITE_PORT/health" 2>/dev/null; do
    pid_of probe-site >/dev/null || { log_tail probe-site >&2; die "probe-site exited"; }
    [ "$(now)" -lt "$deadline" ] || { log_tail probe-site >&2; die "probe-site not answering on $PROBE_SITE_PORT after 10 s"; }
    sleep 0.1
  done
}

# The targets of the native stack: one of each kind of answer, so that every panel of the Web
# probes dashboard has data. Written only when missing: edits survive restarts.
write_probe_targets() {
  mkdir -p "$(dirname "$1")"
  cat >"$1" <<EOF
# web-prober's targets on the native stack, written by scripts/local-up.sh when missing (delete
# it to get this one back, with the ports of the day). Edit it freely: web-prober applies a
# change within PROBE_RELOAD_SECS (2 s), or at once on kill -HUP \$(cat $RUN/web-prober.pid).
# An invalid file is rejected whole and the targets loaded before keep running.
#
# One of each kind of answer, so that every panel of the Web probes dashboard has data. The
# failing ones fail on purpose: FleetProbeFailing fires for them after 5 minutes (critical
# after 15); delete them for a quiet stack.
targets:
  # ok: Prometheus' own health endpoint, its body checked
  - url: http://127.0.0.1:$PROMETHEUS_PORT/-/healthy
    regex: Healthy
  # ok over https: probe-site's self-signed certificate, trusted through PROBE_CA_FILE
  # (localhost is a name: the check has a dns phase)
  - url: https://localhost:$PROBE_SITE_PORT/health
    regex: '"status":\\s*"ok"'
    timeout_secs: 5
  # regex_mismatch: probe-site serves version 1.4.2
  - url: https://127.0.0.1:$PROBE_SITE_PORT/version
    regex: '"version":\\s*"2\\.'
  # http_status: 404 (2xx expected)
  - url: https://127.0.0.1:$PROBE_SITE_PORT/missing
  # connect_error: nothing listens on port 1
  - url: http://127.0.0.1:1/

# More, as examples (any field can go under a top-level defaults: too):
#  - url: https://example.com/
#    method: HEAD
#    expect_status: [200, "3xx"]
#    headers: { User-Agent: fleetpulse }
#    interval_secs: 30
#    insecure_skip_verify: false
EOF
}
start_web_prober() {
  local targets=${PROBE_TARGETS_FILE:-$STATE/web-prober/targets.yaml} ca=()
  if [ -z "${PROBE_TARGETS_FILE:-}" ] && [ ! -f "$targets" ]; then
    write_probe_targets "$targets"
    say "web-prober: targets in $targets"
  fi
  if [ -z "${PROBE_CA_FILE:-}" ] && [ -s "$PROBE_SITE_DIR/cert.pem" ]; then
    ca=(PROBE_CA_FILE="$PROBE_SITE_DIR/cert.pem")
  fi
  start_service web-prober "$WEB_PROBER_PORT" PROBE_TARGETS_FILE="$targets" "${ca[@]}"
}

print_table() {
  local c pid url
  printf '\n%-15s %-8s %-62s %s\n' component pid address log
  for c in "${COMPONENTS[@]}"; do
    pid=$(pid_of "$c") || continue
    case $c in
      # Natively without the web UIs their Go modules lack (README): the APIs.
      mailpit) url="http://127.0.0.1:$MAILPIT_PORT/api/v1/messages (SMTP on $SMTP_PORT)" ;;
      jaeger) url="http://127.0.0.1:$JAEGER_PORT/api/traces (OTLP on $JAEGER_OTLP_PORT)" ;;
      kafka) url="kafka: $(cat "$RUN/kafka.bootstrap" 2>/dev/null) ($STACK_KAFKA_MODE)" ;;
      postgres) url="postgres://postgres@127.0.0.1:$PG_PORT" ;;
      aggregator) url="http://127.0.0.1:$AGGREGATOR_PORT/metrics" ;;
      call-simulator) url="http://127.0.0.1:$CALL_SIMULATOR_PORT/metrics" ;;
      host-metrics) url="http://127.0.0.1:$HOST_METRICS_PORT/metrics" ;;
      probe-site) url="https://localhost:$PROBE_SITE_PORT/health" ;;
      web-prober) url="http://127.0.0.1:$WEB_PROBER_PORT/metrics" ;;
      alertmanager) url="http://127.0.0.1:$ALERTMANAGER_PORT" ;;
      prometheus) url="http://127.0.0.1:$PROMETHEUS_PORT/api/v1/alerts" ;;
    esac
    printf '%-15s %-8s %-62s %s\n' "$c" "$pid" "$url" "$LOGS/$c.log"
  done
  [ "$STACK_KAFKA_MODE" != external ] || printf '%-15s %-8s %s\n' kafka - "$KAFKA"
  printf '%-15s %-8s %s\n' database - "$DB_URL"
  printf '\nstate: %s   stop: scripts/local-down.sh\n' "$STATE"
}

# --- main -------------------------------------------------------------------------------
[ -z "${WANT[mailpit]:-}" ] || ensure_mailpit
[ -z "${WANT[jaeger]:-}" ] || ensure_jaeger
if [ -n "${WANT[kafka]:-}" ]; then ensure_kafka; else KAFKA=$STACK_KAFKA; fi
if [ -n "${WANT[postgres]:-}" ]; then ensure_database; else DB_URL=$STACK_DATABASE_URL; fi
save_stack_env
[ -z "${WANT[aggregator]:-}${WANT[alertmanager]:-}" ] || ensure_alerts_token
[ -z "${WANT[aggregator]:-}" ] ||
  start_service aggregator "$AGGREGATOR_PORT" DATABASE_URL="$DB_URL" ALERTS_TOKEN="$(<"$ALERTS_TOKEN_FILE")"
[ -z "${WANT[call-simulator]:-}" ] || start_service call-simulator "$CALL_SIMULATOR_PORT"
[ -z "${WANT[host-metrics]:-}" ] || start_service host-metrics "$HOST_METRICS_PORT"
[ -z "${WANT[probe-site]:-}" ] || ensure_probe_site
[ -z "${WANT[web-prober]:-}" ] || start_web_prober
[ -z "${WANT[alertmanager]:-}" ] || ensure_monitor alertmanager "$ALERTMANAGER_PORT"
[ -z "${WANT[prometheus]:-}" ] || ensure_monitor prometheus "$PROMETHEUS_PORT"
print_table

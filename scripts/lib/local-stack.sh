# shellcheck shell=bash
# The native (Docker-free) stack's shared plumbing, sourced by scripts/local-up.sh,
# scripts/local-down.sh and the end-to-end test (crates/e2e, for the layout): where the state lives, and how a component is
# started detached, found again by its pid file, waited for and stopped. The process itself
# is started, waited for and signalled by scripts/lib/stack.py, the supervisor the Python
# benchmark scripts use too (why Python: the top of that file). The components' own start
# and configuration helpers are in scripts/lib/native/.
#
# Settings (environment variables):
#   FLEET_STATE_DIR        state folder: logs/, run/ (pids, exit codes), rendered configs, data
#                          (default: .local-stack/ in the repository)
#   FLEET_BIN_DIR          folder with aggregator, call-simulator, host-metrics, web-prober
#                          (and devbroker, the Kafka stand-in without Java); unset: local-up
#                          runs `cargo build --release --locked --bins` and uses target/release
#   FLEET_START_TIMEOUT    seconds to wait for each component to be ready (default 60)
#   FLEET_STOP_TIMEOUT     seconds between SIGTERM and SIGKILL (default 15)
#   FLEET_AGGREGATOR_PORT, FLEET_CALL_SIMULATOR_PORT, FLEET_HOST_METRICS_PORT,
#   FLEET_WEB_PROBER_PORT, FLEET_PROBE_SITE_PORT, FLEET_PROMETHEUS_PORT,
#   FLEET_ALERTMANAGER_PORT, FLEET_SMTP_PORT, FLEET_MAILPIT_PORT, FLEET_JAEGER_PORT,
#   FLEET_JAEGER_OTLP_PORT, FLEET_JAEGER_HEALTH_PORT
#                          local ports (6066, 6067, 6068, 6069, 8443, 9090, 9093, 1025, 8025,
#                          16686, 4317, 13133); all bound to 127.0.0.1. Jaeger's other
#                          listeners take the JAEGER_* variables of jaeger/config.yaml
#                          (defaults 4318, 16685, 8888)
#   FLEET_PG_PORT          port of the private PostgreSQL cluster, when one is needed (55432)
#   FLEET_KAFKA_PORT       Apache Kafka's plaintext listener, when local-up starts it (9092)

# shellcheck disable=SC2034 # the settings below are used by the scripts that source this
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
STATE=${FLEET_STATE_DIR:-$REPO/.local-stack}
case $STATE in /*) ;; *) STATE=$PWD/$STATE ;; esac
RUN=$STATE/run
LOGS=$STATE/logs

AGGREGATOR_PORT=${FLEET_AGGREGATOR_PORT:-6066}
CALL_SIMULATOR_PORT=${FLEET_CALL_SIMULATOR_PORT:-6067}
HOST_METRICS_PORT=${FLEET_HOST_METRICS_PORT:-6068}
WEB_PROBER_PORT=${FLEET_WEB_PROBER_PORT:-6069}
# probe-site: a small https server with a self-signed certificate, one of web-prober's targets.
PROBE_SITE_PORT=${FLEET_PROBE_SITE_PORT:-8443}
PROMETHEUS_PORT=${FLEET_PROMETHEUS_PORT:-9090}
ALERTMANAGER_PORT=${FLEET_ALERTMANAGER_PORT:-9093}
# Mailpit: SMTP (Alertmanager's mails) and its web UI / API.
SMTP_PORT=${FLEET_SMTP_PORT:-1025}
MAILPIT_PORT=${FLEET_MAILPIT_PORT:-8025}
# Jaeger: the UI / query API, OTLP gRPC (the services export to it) and its health check.
JAEGER_PORT=${FLEET_JAEGER_PORT:-16686}
JAEGER_OTLP_PORT=${FLEET_JAEGER_OTLP_PORT:-4317}
JAEGER_HEALTH_PORT=${FLEET_JAEGER_HEALTH_PORT:-13133}
PG_PORT=${FLEET_PG_PORT:-55432}
KAFKA_PORT=${FLEET_KAFKA_PORT:-9092}
START_TIMEOUT=${FLEET_START_TIMEOUT:-60}
STOP_TIMEOUT=${FLEET_STOP_TIMEOUT:-15}

# Start order; local-down stops in reverse.
COMPONENTS=(mailpit jaeger kafka postgres aggregator call-simulator host-metrics probe-site web-prober
  alertmanager prometheus)

say() { printf '==> %s\n' "$*"; }
warn() { printf 'warning: %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

now() { date +%s; }

# obs_bin PROGRAM: the natively built prometheus, promtool, alertmanager, amtool, mailpit or
# jaeger at deploy/versions.env's version (built on first use: scripts/observability.sh).
obs_bin() { "$REPO/scripts/observability.sh" path "$1"; }

# Every numeric setting is checked before anything starts: one line naming the bad value.
for setting in FLEET_AGGREGATOR_PORT FLEET_CALL_SIMULATOR_PORT FLEET_HOST_METRICS_PORT \
  FLEET_WEB_PROBER_PORT FLEET_PROBE_SITE_PORT FLEET_PROMETHEUS_PORT FLEET_ALERTMANAGER_PORT \
  FLEET_SMTP_PORT FLEET_MAILPIT_PORT FLEET_JAEGER_PORT FLEET_JAEGER_OTLP_PORT \
  FLEET_JAEGER_HEALTH_PORT FLEET_PG_PORT FLEET_KAFKA_PORT FLEET_START_TIMEOUT FLEET_STOP_TIMEOUT; do
  value=${!setting:-}
  if [ -n "$value" ] && ! [[ $value =~ ^[1-9][0-9]{0,4}$ && $value -le 65535 ]]; then
    die "invalid value '$value' for $setting: expected a number from 1 to 65535"
  fi
done
unset setting value

# pid_of NAME: prints the pid of a live component started by local-up, else fails. The pid
# must still run the command it was started with, so a recycled pid is never signalled.
pid_of() {
  local name=$1 pid want got
  [ -s "$RUN/$name.pid" ] || return 1
  pid=$(<"$RUN/$name.pid")
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [ -r "/proc/$pid/cmdline" ] && [ -s "$RUN/$name.cmd" ]; then
    want=$(<"$RUN/$name.cmd")
    got=$(tr '\0' '\n' <"/proc/$pid/cmdline" | head -n 1)
    [ "$got" = "$want" ] || return 1
  fi
  printf '%s\n' "$pid"
}

# start_detached NAME CMD [ARGS...]: runs CMD in the background, detached from this shell,
# output appended to logs/NAME.log, under the scripts' one supervisor (scripts/lib/stack.py
# supervise), which waits for it, so that its exit status lands in run/NAME.rc (local-down
# and the e2e read it); run/NAME.pid holds CMD's own pid, the one to signal.
start_detached() {
  local name=$1
  shift
  rm -f "$RUN/$name.pid" "$RUN/$name.rc"
  printf '%s\n' "$1" >"$RUN/$name.cmd"
  printf '\n--- %s: starting %s\n' "$(date -Is)" "$*" >>"$LOGS/$name.log"
  nohup python3 "$REPO/scripts/lib/stack.py" supervise "$RUN/$name.pid" "$RUN/$name.rc" -- "$@" \
    >>"$LOGS/$name.log" 2>&1 </dev/null &
  local deadline=$(($(now) + 5))
  until [ -s "$RUN/$name.pid" ]; do
    [ "$(now)" -lt "$deadline" ] || die "$name: no pid after 5 s (see $LOGS/$name.log)"
    sleep 0.05
  done
}

# log_tail NAME [LINES]
log_tail() {
  local f="$LOGS/$1.log"
  [ -f "$f" ] || return 0
  printf -- '----- last %s lines of %s\n' "${2:-30}" "$f"
  tail -n "${2:-30}" "$f"
}

# wait_ready NAME URL [TIMEOUT]: polls URL until it answers 2xx. Fails early, with the log's
# tail, if the component's process exits meanwhile.
wait_ready() {
  local name=$1 url=$2 timeout=${3:-$START_TIMEOUT}
  local deadline=$(($(now) + timeout))
  while :; do
    curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null && return 0
    if ! pid_of "$name" >/dev/null; then
      log_tail "$name" >&2
      die "$name exited before it was ready (exit status $(cat "$RUN/$name.rc" 2>/dev/null || echo '?'))"
    fi
    if [ "$(now)" -ge "$deadline" ]; then
      log_tail "$name" >&2
      curl -sS --max-time 2 "$url" >&2 || true
      die "$name not ready at $url after ${timeout}s"
    fi
    sleep 0.25
  done
}

# tcp_open HOST PORT: true when something accepts connections there.
tcp_open() {
  # shellcheck disable=SC2016 # positional parameters of the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$1/$2"' _ "$1" "$2" 2>/dev/null
}

# ensure_port_free NAME PORT VARIABLE: fails with the variable to change when PORT is taken.
ensure_port_free() {
  if tcp_open 127.0.0.1 "$2"; then
    die "$1: port $2 on 127.0.0.1 is already in use; stop what holds it (ss -ltnp 'sport = :$2') or set $3 to another port"
  fi
}

# stop_component NAME: SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL. Prints the exit status
# when the supervisor recorded it. Returns 1 only if the process would not die.
stop_component() {
  local name=$1 pid deadline rc=""
  if [ "$name" = postgres ] && [ -f "$STATE/postgres/data/PG_VERSION" ]; then
    stop_private_postgres
    return
  fi
  if ! pid=$(pid_of "$name"); then
    rm -f "$RUN/$name.pid"
    return 0
  fi
  # SIGTERM, SIGKILL after STOP_TIMEOUT: the supervisor's stop, the one the Python scripts use.
  python3 "$REPO/scripts/lib/stack.py" stop "$name" "$pid" "$STOP_TIMEOUT" || return 1
  # The supervisor writes the exit status right after the process is reaped.
  deadline=$(($(now) + 3))
  while [ ! -s "$RUN/$name.rc" ] && [ "$(now)" -lt "$deadline" ]; do sleep 0.05; done
  [ -s "$RUN/$name.rc" ] && rc=$(<"$RUN/$name.rc")
  rm -f "$RUN/$name.pid"
  say "stopped $name (pid $pid, exit status ${rc:-unknown})"
}

# The private PostgreSQL cluster is run by pg_ctl (it daemonizes), as the postgres user when
# we are root (initdb and postgres refuse to run as root).
pg_as_owner() {
  if [ "$(id -u)" -eq 0 ]; then
    id postgres >/dev/null 2>&1 || die "running as root and there is no postgres user to run a private PostgreSQL cluster; set DATABASE_URL"
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

pg_bindir() {
  local d
  if command -v pg_ctl >/dev/null; then
    dirname "$(readlink -f "$(command -v pg_ctl)")"
    return
  fi
  d=$(printf '%s\n' /usr/lib/postgresql/*/bin | grep -v '\*' | sort -V | tail -n 1)
  [ -n "$d" ] || die "no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql, or set DATABASE_URL"
  printf '%s\n' "$d"
}

stop_private_postgres() {
  local data=$STATE/postgres/data
  if pg_as_owner "$(pg_bindir)/pg_ctl" -D "$data" status >/dev/null 2>&1; then
    pg_as_owner "$(pg_bindir)/pg_ctl" -D "$data" -m fast -w -t "$STOP_TIMEOUT" stop >/dev/null
    say "stopped postgres (private cluster in $data)"
  fi
  rm -f "$RUN/postgres.pid"
}

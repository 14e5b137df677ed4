# shellcheck shell=bash
# Shared by ./dc-up.sh, ./dc-down.sh and scripts/dc-rebuild.sh: which compose command to use
# (`docker compose` v2, else `docker-compose`), the .env file, and waiting for health.
#
# Settings: COMPOSE_PROJECT_NAME (default: .env's, else fleetpulse), DC_UP_TIMEOUT (seconds
# to wait for health, default 300).

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$REPO" || exit 1

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

DC=()
dc_init() {
  if docker compose version >/dev/null 2>&1; then
    DC=(docker compose)
  elif command -v docker-compose >/dev/null; then
    DC=(docker-compose)
  else
    die "neither 'docker compose' nor 'docker-compose' is installed (Docker Compose v2: https://docs.docker.com/compose/install/)"
  fi
  docker info >/dev/null 2>&1 || die "no Docker engine answers ('docker info' failed): is the daemon running, may this user use it?"
  # deploy/Dockerfile uses BuildKit cache mounts; docker-compose v1 needs these to use it.
  export DOCKER_BUILDKIT=1 COMPOSE_DOCKER_CLI_BUILD=1
  if [ -z "${COMPOSE_PROJECT_NAME:-}" ]; then
    COMPOSE_PROJECT_NAME=$(env_value COMPOSE_PROJECT_NAME)
  fi
  export COMPOSE_PROJECT_NAME=${COMPOSE_PROJECT_NAME:-fleetpulse}
}

dc() { "${DC[@]}" "$@"; }

random_secret() { od -An -N18 -tx1 /dev/urandom | tr -d ' \n'; }

# ensure_env: .env from .env.example when missing; every empty secret gets a random value.
ensure_env() {
  local var
  if [ ! -f .env ]; then
    (umask 077 && cp .env.example .env)
    say "created .env from .env.example"
  fi
  for var in POSTGRES_PASSWORD FLEET_DB_OWNER_PASSWORD FLEET_DB_WRITER_PASSWORD FLEET_DB_READER_PASSWORD \
    GRAFANA_ADMIN_PASSWORD ALERTS_TOKEN; do
    if grep -qE "^$var=.+" .env; then continue; fi
    if grep -qE "^$var=$" .env; then
      sed -i "s/^$var=\$/$var=$(random_secret)/" .env
    else
      printf '%s=%s\n' "$var" "$(random_secret)" >>.env
    fi
    say "generated $var in .env"
  done
}

# env_value NAME: the last value of NAME in .env (empty when absent).
env_value() {
  if [ -f .env ]; then sed -n "s/^$1=//p" .env | tail -n 1; fi
}

# wait_healthy [SERVICE...]: until every container of the project (or of SERVICE...) is healthy,
# or running when it has no health check. Fails after DC_UP_TIMEOUT seconds, or at once when
# a container exited, showing the logs of those not ready.
wait_healthy() {
  local timeout=${DC_UP_TIMEOUT:-300} deadline services ids state health pending bad last=0
  deadline=$(($(date +%s) + timeout))
  mapfile -t services < <(if [ $# -gt 0 ]; then printf '%s\n' "$@"; else dc config --services; fi)
  while :; do
    pending=() bad=()
    for svc in "${services[@]}"; do
      ids=$(dc ps -a -q "$svc" 2>/dev/null)
      if [ -z "$ids" ]; then pending+=("$svc:no-container"); continue; fi
      # shellcheck disable=SC2086 # one or more container ids
      while read -r _ state health; do
        case $state/$health in
          running/healthy | running/none) ;;
          exited/* | dead/*) bad+=("$svc:$state") ;;
          *) pending+=("$svc:$state/$health") ;;
        esac
      done < <(docker inspect -f '{{.Name}} {{.State.Status}} {{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}' $ids)
    done
    if [ ${#bad[@]} -eq 0 ] && [ ${#pending[@]} -eq 0 ]; then
      say "all ${#services[@]} services are up (healthy where they have a health check)"
      return 0
    fi
    if [ ${#bad[@]} -gt 0 ] || [ "$(date +%s)" -ge "$deadline" ]; then
      dc ps -a >&2 || true
      for svc in "${bad[@]}" "${pending[@]}"; do
        printf '\n----- logs of %s\n' "${svc%%:*}" >&2
        dc logs --tail 40 "${svc%%:*}" >&2 || true
      done
      [ ${#bad[@]} -eq 0 ] || die "stopped: ${bad[*]}"
      die "not healthy after ${timeout}s: ${pending[*]}"
    fi
    if [ $(($(date +%s) - last)) -ge 10 ]; then
      say "waiting for: ${pending[*]}"
      last=$(date +%s)
    fi
    sleep 2
  done
}

print_urls() {
  local pg_user pg_db pg_port kafka_port gf_user
  pg_user=$(env_value POSTGRES_USER) pg_db=$(env_value POSTGRES_DB) pg_port=$(env_value POSTGRES_HOST_PORT)
  kafka_port=$(env_value KAFKA_HOST_PORT) gf_user=$(env_value GRAFANA_ADMIN_USER)
  cat <<EOF

  aggregator      http://localhost:6066/metrics    (/readyz, /livez)
  call-simulator  http://localhost:6067/metrics
  host-metrics    http://localhost:6068/metrics    (on the host's network: samples this host)
  web-prober      http://localhost:6069/metrics    (targets: deploy/web-prober/targets.yaml)
  prometheus      http://localhost:9090
  alertmanager    http://localhost:9093
  grafana         http://localhost:3000            (anonymous visitors: viewer; admin: ${gf_user:-admin}, password in .env)
  mailpit         http://localhost:8025            (Alertmanager's mails)
  jaeger          http://localhost:16686           (traces: call-simulator -> Kafka -> aggregator)
  kafka           localhost:${kafka_port:-9092}                   (127.0.0.1 only)
  postgres        postgres://${pg_user:-fleetpulse}@127.0.0.1:${pg_port:-5432}/${pg_db:-fleetpulse}   (127.0.0.1 only; password in .env)

  logs: ${DC[*]} logs -f SERVICE   stop: ./dc-down.sh [-v]   rebuild one: scripts/dc-rebuild.sh SERVICE
EOF
}

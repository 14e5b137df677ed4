#!/usr/bin/env bash
# Stops the docker compose stack and removes its containers and network.
#
#   ./dc-down.sh        # keep the data volumes (Kafka, PostgreSQL, Prometheus, Grafana...)
#   ./dc-down.sh -v     # also delete them: the next ./dc-up.sh starts from nothing
#
# Works with `docker compose` (v2) and `docker-compose`.
set -euo pipefail
# shellcheck source=scripts/lib/dc.sh
source "$(dirname "$0")/scripts/lib/dc.sh"

args=(down --remove-orphans)
for arg in "$@"; do
  case $arg in
    -v | --volumes) args+=(--volumes) ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d'; exit 0 ;;
    *) die "unknown argument $arg (only -v)" ;;
  esac
done

dc_init
# The file requires the passwords to be set (no .env, or an empty value in it); stopping does
# not need their values.
for var in POSTGRES_PASSWORD GRAFANA_ADMIN_PASSWORD; do
  if [ -z "${!var:-}" ] && [ -z "$(env_value "$var")" ]; then export "$var=unused"; fi
done
dc "${args[@]}"
say "stopped${args[2]:+; volumes deleted}"

#!/usr/bin/env bash
# Rebuilds one service's image (when it is built here) and recreates its container, leaving
# the rest of the stack running; then waits until it is healthy. For image-only services
# (prometheus, grafana...) it just recreates the container, e.g. after editing its
# configuration.
#
#   scripts/dc-rebuild.sh aggregator
#   scripts/dc-rebuild.sh aggregator call-simulator
set -euo pipefail
# shellcheck source=scripts/lib/dc.sh
source "$(dirname "$0")/lib/dc.sh"

[ $# -gt 0 ] || die "usage: scripts/dc-rebuild.sh SERVICE... (services: see docker-compose.yml)"
case $1 in -h | --help) sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d'; exit 0 ;; esac

dc_init
ensure_env
known=$(dc config --services)
for svc in "$@"; do
  grep -qx -- "$svc" <<<"$known" || die "no service '$svc' (known: $(echo "$known" | xargs))"
done
say "building $*"
dc build "$@"
say "recreating $*"
dc up -d --no-deps --force-recreate "$@"
wait_healthy "$@"

#!/usr/bin/env bash
# The whole Fleetpulse stack with docker compose: builds the service images, starts every
# container, waits until all are healthy, then prints where everything is.
#
#   ./dc-up.sh                      # everything
#   ./dc-up.sh --no-build           # skip the image build
#   ./dc-up.sh aggregator kafka     # only these services (and what they depend on)
#   DC_UP_TIMEOUT=600 ./dc-up.sh    # wait longer for health (default 300 s)
#
# Creates .env from .env.example on the first run, with random passwords. Works with
# `docker compose` (v2) and `docker-compose`. Stop with ./dc-down.sh.
set -euo pipefail
# shellcheck source=scripts/lib/dc.sh
source "$(dirname "$0")/scripts/lib/dc.sh"

build=1 services=()
for arg in "$@"; do
  case $arg in
    --no-build) build=0 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d'; exit 0 ;;
    -*) die "unknown option $arg" ;;
    *) services+=("$arg") ;;
  esac
done

dc_init
ensure_env
if [ "$build" = 1 ]; then
  say "building the images (${DC[*]} build)"
  dc build "${services[@]}"
fi
say "starting (${DC[*]} up -d)"
dc up -d --remove-orphans "${services[@]}"
if [ ${#services[@]} -gt 0 ]; then
  wait_healthy "${services[@]}"
else
  wait_healthy
fi
print_urls

#!/usr/bin/env bash
# Fails when docker-compose.yml runs another version of a third-party program than the one
# deploy/versions.env pins for the native stack, the tests and the benchmarks: one version in
# one place, and compose follows it. Also that deploy/jaeger/go.mod pins the Jaeger module of
# that file.
#
#   scripts/check-versions.sh [path/to/compose.yml]
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
FILE=${1:-$REPO/docker-compose.yml}
# shellcheck source=deploy/versions.env
. "$REPO/deploy/versions.env"

# image  variable of deploy/versions.env  tag prefix
PINNED=(
  "apache/kafka KAFKA_VERSION -"
  "prom/prometheus PROMETHEUS_VERSION v"
  "prom/alertmanager ALERTMANAGER_VERSION v"
  "axllent/mailpit MAILPIT_VERSION v"
  "jaegertracing/jaeger JAEGER_VERSION -"
)

failures=0
for row in "${PINNED[@]}"; do
  read -r image variable prefix <<<"$row"
  [ "$prefix" = - ] && prefix=''
  want=$prefix${!variable}
  # The image lines of compose: `image: name:tag`, quoted or not.
  tags=$(sed -nE "s#^[[:space:]]*image:[[:space:]]*[\"']?$image:([^\"'[:space:]]+).*#\1#p" "$FILE")
  if [ -z "$tags" ]; then
    printf '  FAIL  %s: no service runs image %s\n' "$FILE" "$image"
    failures=$((failures + 1))
    continue
  fi
  for tag in $tags; do
    if [ "$tag" = "$want" ]; then
      printf '  ok    %s:%s = %s in deploy/versions.env\n' "$image" "$tag" "$variable"
    else
      printf '  FAIL  %s runs %s:%s but deploy/versions.env has %s=%s\n' \
        "$FILE" "$image" "$tag" "$variable" "${!variable}"
      failures=$((failures + 1))
    fi
  done
done

# Jaeger is built from deploy/jaeger/go.mod, which must pin the module release of JAEGER_VERSION.
if grep -Eq "^\s*github.com/jaegertracing/jaeger v$JAEGER_MODULE_VERSION( |\$)" "$REPO/deploy/jaeger/go.mod"; then
  printf '  ok    deploy/jaeger/go.mod: github.com/jaegertracing/jaeger v%s = JAEGER_MODULE_VERSION\n' "$JAEGER_MODULE_VERSION"
else
  printf '  FAIL  deploy/jaeger/go.mod does not require github.com/jaegertracing/jaeger v%s (JAEGER_MODULE_VERSION)\n' "$JAEGER_MODULE_VERSION"
  failures=$((failures + 1))
fi
[ "$failures" -eq 0 ]

#!/usr/bin/env bash
# Fails when docker-compose.yml runs another version of a third-party program than the one
# deploy/versions.env pins for the native stack, the tests and the benchmarks: one version in
# one place, and compose follows it.
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
[ "$failures" -eq 0 ]

#!/usr/bin/env bash
# Stops what scripts/local-up.sh started, newest first: SIGTERM, then SIGKILL after
# FLEET_STOP_TIMEOUT (15) seconds. Only processes recorded in the state folder's pid files
# are signalled. Running it again, or with nothing running, is harmless.
#
#   scripts/local-down.sh                  # everything
#   scripts/local-down.sh call-simulator   # one component (local-up.sh starts it again)
#   scripts/local-down.sh --purge          # everything, then delete the state folder
#
# Reads FLEET_STATE_DIR (default .local-stack/) and FLEET_STOP_TIMEOUT. Exit statuses are
# kept in the state folder's run/NAME.rc.
set -euo pipefail
# shellcheck source=scripts/lib/local-stack.sh
source "$(dirname "$0")/lib/local-stack.sh"

purge=0 names=()
for arg in "$@"; do
  case $arg in
    --purge) purge=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d'; exit 0 ;;
    *)
      [[ " ${COMPONENTS[*]} " == *" $arg "* ]] || die "unknown component '$arg' (known: ${COMPONENTS[*]})"
      names+=("$arg")
      ;;
  esac
done
[ ${#names[@]} -gt 0 ] || names=("${COMPONENTS[@]}")

if [ ! -d "$RUN" ]; then
  say "nothing to stop: no $RUN"
  [ "$purge" = 0 ] || rm -rf "$STATE"
  exit 0
fi

failed=0
for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
  c=${COMPONENTS[$i]}
  [[ " ${names[*]} " == *" $c "* ]] || continue
  stop_component "$c" || failed=1
done

# With everything down, the Kafka address and database of this run are forgotten.
if [ ${#names[@]} -eq ${#COMPONENTS[@]} ] && [ "$failed" = 0 ]; then
  rm -f "$RUN/stack.env"
  [ "$purge" = 0 ] || { rm -rf "$STATE"; say "removed $STATE"; }
fi
exit "$failed"

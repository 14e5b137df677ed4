# shellcheck shell=bash
# What scripts/test.sh undoes when it exits, passed or failed (sourced by it; also by a test of
# this file alone). test.sh calls, in this order:
#   hba_trust_local FILE RELOAD_CMD...  before the tests: the trust line for 127.0.0.1, if missing
#   note_test_objects URL               once the server answers: the test objects already there
#   trap test_cleanup EXIT              and exit on INT, TERM, HUP, so that the trap runs then too
# test_cleanup then stops this run's Kafka (KAFKA_DIR, and deletes its folder), drops the test
# databases and roles this run made (TEST_OBJECT_FILTER: the tests' agg_test_* and the e2e's
# database) and takes the trust line out again, the file byte for byte as it was, reloading
# the server. Each part does nothing when its step did not happen (an early failure).
#
# "This run's" objects: those absent when note_test_objects looked (the tests name theirs
# agg_test_ + a random id, and mark them no other way). Objects another run makes on the same
# server at the same time would count as ours.

KAFKA_DIR=""
TRUST_LINE='host all all 127.0.0.1/32 trust'
HBA_FILE="" HBA_SUM="" HBA_RELOAD=()
TEST_OBJECTS_URL="" TEST_OBJECTS_BEFORE=""
# The tests' databases and roles, and the e2e's database (crates/e2e: E2E_DB_NAME).
TEST_DB_FILTER="datname LIKE 'agg\\_test\\_%'" TEST_ROLE_FILTER="rolname LIKE 'agg\\_test\\_%'"
if [[ ${E2E_DB_NAME:-fleetpulse_e2e} =~ ^[a-z_][a-z0-9_]*$ ]]; then
  TEST_DB_FILTER+=" OR datname = '${E2E_DB_NAME:-fleetpulse_e2e}'"
fi

cleanup_as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
cleanup_log() { printf '==> cleanup: %s\n' "$*"; }

# hba_trust_local FILE RELOAD_CMD...: the tests connect over TCP as postgres without a
# password; puts TRUST_LINE first in FILE (when no line starts with it) and reloads.
hba_trust_local() {
  local file=$1
  shift
  cleanup_as_root grep -q "^$TRUST_LINE" "$file" && return 0
  HBA_SUM=$(cleanup_as_root sha256sum "$file" | cut -d' ' -f1)
  HBA_FILE=$file HBA_RELOAD=("$@")
  cleanup_as_root sed -i "1i $TRUST_LINE" "$file"
  cleanup_as_root "${HBA_RELOAD[@]}"
}

# hba_restore: the line hba_trust_local added goes (only the first line, only if it is that
# line); the file's checksum must then be the one before.
hba_restore() {
  [ -n "$HBA_FILE" ] || return 0
  if [ "$(cleanup_as_root head -n 1 "$HBA_FILE")" = "$TRUST_LINE" ]; then
    cleanup_as_root sed -i '1d' "$HBA_FILE"
    cleanup_as_root "${HBA_RELOAD[@]}"
  fi
  if [ "$(cleanup_as_root sha256sum "$HBA_FILE" | cut -d' ' -f1)" = "$HBA_SUM" ]; then
    cleanup_log "$HBA_FILE as it was (trust line removed, server reloaded)"
  else
    printf 'warning: %s changed during the run (not only by us): check it\n' "$HBA_FILE" >&2
  fi
  HBA_FILE=""
}

# list_test_objects URL: "database NAME" and "role NAME" lines (NAME quoted for SQL), sorted.
list_test_objects() {
  psql "$1" -XqAt -v ON_ERROR_STOP=1 \
    -c "SELECT 'database ' || quote_ident(datname) FROM pg_database WHERE $TEST_DB_FILTER" \
    -c "SELECT 'role ' || quote_ident(rolname) FROM pg_roles WHERE $TEST_ROLE_FILTER" | LC_ALL=C sort
}

# note_test_objects URL: the test objects there before this run (kept at exit).
note_test_objects() {
  TEST_OBJECTS_BEFORE=$(mktemp "${TMPDIR:-/tmp}/fleet-test-objects.XXXXXX")
  list_test_objects "$1" >"$TEST_OBJECTS_BEFORE" || { rm -f "$TEST_OBJECTS_BEFORE"; return 1; }
  TEST_OBJECTS_URL=$1
}

# drop_new_test_objects: drops what list_test_objects finds now and did not before; the
# databases first (a role that owns a schema in one cannot go), each even if one fails.
drop_new_test_objects() {
  [ -n "$TEST_OBJECTS_URL" ] || return 0
  local new kind name dbs=() roles=() failed=0 stmt
  new=$(list_test_objects "$TEST_OBJECTS_URL" | LC_ALL=C comm -13 "$TEST_OBJECTS_BEFORE" -) ||
    { printf 'warning: cannot list the test databases on %s: none dropped\n' "$TEST_OBJECTS_URL" >&2; return 0; }
  while read -r kind name; do
    case $kind in
      database) dbs+=("DROP DATABASE IF EXISTS $name WITH (FORCE)") ;;
      role) roles+=("DROP ROLE IF EXISTS $name") ;;
    esac
  done <<<"$new"
  for stmt in "${dbs[@]}" "${roles[@]}"; do
    psql "$TEST_OBJECTS_URL" -Xq -v ON_ERROR_STOP=1 -c "$stmt" >/dev/null || failed=$((failed + 1))
  done
  cleanup_log "dropped this run's ${#dbs[@]} test databases and ${#roles[@]} roles ($failed failed); kept the $(wc -l <"$TEST_OBJECTS_BEFORE") from before"
  rm -f "$TEST_OBJECTS_BEFORE"
  TEST_OBJECTS_URL=""
}

# test_cleanup: the EXIT trap; keeps the exit status.
test_cleanup() {
  local rc=$?
  set +e
  if [ -n "$KAFKA_DIR" ]; then
    "$(dirname "${BASH_SOURCE[0]}")/../kafka.sh" stop "$KAFKA_DIR" && rm -rf "$KAFKA_DIR"
  fi
  drop_new_test_objects
  hba_restore
  exit "$rc"
}

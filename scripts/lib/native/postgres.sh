# shellcheck shell=bash
# shellcheck disable=SC2034 # the globals here are read by the files that source this
# PostgreSQL for the native stack (sourced by scripts/local-up.sh, after
# scripts/lib/local-stack.sh): DATABASE_URL as it is; else database FLEET_DB_NAME, created on
# FLEET_PG_ADMIN_URL's server, on the local server at 127.0.0.1:5432 (as postgres), or on a
# private cluster in the state folder's postgres/ (FLEET_PG_PRIVATE=1, or no local server).
#
# Sets DB_URL and STACK_PG_MODE (external, admin-url, private or local-server).
DB_URL="" PG_ADMIN=""

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
  local db=${FLEET_DB_NAME:-fleetpulse}
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
  choose_pg_server
  psql "$PG_ADMIN" -XqAtc 'SELECT 1' >/dev/null 2>&1 ||
    die "cannot connect to $PG_ADMIN as postgres (password needed?): set DATABASE_URL or FLEET_PG_ADMIN_URL"
  create_database "$PG_ADMIN" "$db"
  DB_URL=$(db_url_for "$PG_ADMIN" "$db")
}

# choose_pg_server: PG_ADMIN, the server's admin URL, and STACK_PG_MODE.
choose_pg_server() {
  if [ -n "${FLEET_PG_ADMIN_URL:-}" ]; then
    PG_ADMIN=$FLEET_PG_ADMIN_URL STACK_PG_MODE=admin-url
  elif [ "$STACK_PG_MODE" = private ] || [ "${FLEET_PG_PRIVATE:-0}" = 1 ] ||
    ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    start_private_postgres
    PG_ADMIN=postgres://postgres@127.0.0.1:$PG_PORT/postgres STACK_PG_MODE=private
  else
    PG_ADMIN=postgres://postgres@127.0.0.1:5432/postgres STACK_PG_MODE=local-server
  fi
}

# create_database ADMIN_URL DB: creates DB unless it exists; drops it first on FLEET_DB_RESET=1
# (not while the aggregator runs on it).
create_database() {
  local admin=$1 db=$2
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
}

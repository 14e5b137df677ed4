# shellcheck shell=bash
# shellcheck disable=SC2034 # the globals here are read by the files that source this
# The settings chosen by an earlier run of scripts/local-up.sh (Kafka address, database URL),
# kept in the state folder's run/stack.env, so that restarting one component joins the same
# Kafka and database (sourced by scripts/local-up.sh, after scripts/lib/local-stack.sh).
STACK_ENV=$RUN/stack.env
STACK_KAFKA="" STACK_KAFKA_MODE="" STACK_DATABASE_URL="" STACK_PG_MODE=""

load_stack_env() {
  # shellcheck source=/dev/null
  [ ! -f "$STACK_ENV" ] || source "$STACK_ENV"
}

save_stack_env() {
  {
    printf 'STACK_KAFKA=%q\n' "$KAFKA"
    printf 'STACK_KAFKA_MODE=%q\n' "$STACK_KAFKA_MODE"
    printf 'STACK_DATABASE_URL=%q\n' "$DB_URL"
    printf 'STACK_PG_MODE=%q\n' "$STACK_PG_MODE"
  } >"$STACK_ENV"
}

# shellcheck shell=bash
# The webhook token of the native stack (sourced by scripts/local-up.sh, after
# scripts/lib/local-stack.sh). POST /alerts requires a bearer token, as in compose: ALERTS_TOKEN from the shell, else one
# generated once into the state folder. The aggregator gets it at start, Alertmanager reads
# the file (compose's /run/secrets/alerts_token, rewritten).
ALERTS_TOKEN_FILE=$STATE/secrets/alerts_token
ensure_alerts_token() {
  (
    umask 077
    mkdir -p "$STATE/secrets"
    if [ -n "${ALERTS_TOKEN:-}" ]; then
      printf '%s' "$ALERTS_TOKEN" >"$ALERTS_TOKEN_FILE"
    elif [ ! -s "$ALERTS_TOKEN_FILE" ]; then
      od -An -N18 -tx1 /dev/urandom | tr -d ' \n' >"$ALERTS_TOKEN_FILE"
    fi
  )
}

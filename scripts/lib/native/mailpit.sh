# shellcheck shell=bash
# Mailpit for the native stack (sourced by scripts/local-up.sh, after scripts/lib/local-stack.sh):
# Alertmanager's SMTP server; the mails are read through its API (natively there is no web UI:
# docs/running.md). Kept in the state folder's mailpit/ across restarts (compose keeps them in memory).
ensure_mailpit() {
  pid_of mailpit >/dev/null && return
  local bin
  bin=$(obs_bin mailpit)
  ensure_port_free mailpit "$SMTP_PORT" FLEET_SMTP_PORT
  ensure_port_free mailpit "$MAILPIT_PORT" FLEET_MAILPIT_PORT
  mkdir -p "$STATE/mailpit"
  start_detached mailpit "$bin" --smtp "127.0.0.1:$SMTP_PORT" --listen "127.0.0.1:$MAILPIT_PORT" \
    --database "$STATE/mailpit/mailpit.db" --disable-version-check --smtp-disable-rdns
  wait_ready mailpit "http://127.0.0.1:$MAILPIT_PORT/readyz"
}

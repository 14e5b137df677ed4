# shellcheck shell=bash
# Alertmanager for the native stack (sourced by scripts/local-up.sh, after
# scripts/lib/local-stack.sh and monitors.sh): alertmanager/ (or FLEET_ALERTMANAGER_DIR) copied
# to the state folder's alertmanager/config with the compose hostnames and the token's path
# rewritten (FLEET_FAST_ALERTS=1: group_wait and group_interval 1s); checked by amtool.

render_alertmanager() {
  local src=${FLEET_ALERTMANAGER_DIR:-$REPO/alertmanager} dst=$STATE/alertmanager/config
  [ -f "$src/alertmanager.yml" ] || die "$src/alertmanager.yml is missing (or set FLEET_ALERTMANAGER_DIR)"
  copy_config "$src" "$dst"
  mkdir -p "$STATE/alertmanager/data"
  local edits=()
  if [ "${FLEET_FAST_ALERTS:-0}" = 1 ]; then
    # On every route that has them, and on the top-level route.
    edits=(--set alertmanager.yml route group_wait 1s --set alertmanager.yml route group_interval 1s)
  fi
  render_config "$dst" "${edits[@]}"
  local amtool
  amtool=$(obs_bin amtool)
  "$amtool" check-config "$dst/alertmanager.yml" >"$LOGS/amtool.log" 2>&1 ||
    { cat "$LOGS/amtool.log" >&2; die "amtool rejects the rendered $dst/alertmanager.yml"; }
}

# start_alertmanager PORT
start_alertmanager() {
  local bin
  bin=$(obs_bin alertmanager)
  start_detached alertmanager "$bin" \
    --config.file="$STATE/alertmanager/config/alertmanager.yml" \
    --storage.path="$STATE/alertmanager/data" \
    --web.listen-address="127.0.0.1:$1" \
    --cluster.listen-address= \
    --web.external-url="http://127.0.0.1:$1"
}

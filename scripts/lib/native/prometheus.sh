# shellcheck shell=bash
# Prometheus for the native stack (sourced by scripts/local-up.sh, after
# scripts/lib/local-stack.sh and monitors.sh): prometheus/ (or FLEET_PROMETHEUS_DIR) copied to
# the state folder's prometheus/config with FLEET_EXTRA_RULES in its rules/,
# FLEET_SCRAPE_INTERVAL applied and the compose hostnames rewritten; checked by promtool.

render_prometheus() {
  local src=${FLEET_PROMETHEUS_DIR:-$REPO/prometheus} dst=$STATE/prometheus/config f base
  [ -f "$src/prometheus.yml" ] || die "$src/prometheus.yml is missing (or set FLEET_PROMETHEUS_DIR)"
  copy_config "$src" "$dst"
  mkdir -p "$dst/rules" "$STATE/prometheus/data"
  # Extra rules join rules/, which prometheus.yml loads (rule_files: rules/*.yml).
  local extra=${FLEET_EXTRA_RULES:-}
  for f in ${extra//:/ }; do
    case $f in /*) ;; *) f=$REPO/$f ;; esac
    [ -f "$f" ] || die "FLEET_EXTRA_RULES: $f is not a file"
    base=$(basename "$f")
    cp "$f" "$dst/rules/extra-${base%.*}.yml"
  done
  local edits=()
  if [ -n "${FLEET_SCRAPE_INTERVAL:-}" ]; then
    [[ $FLEET_SCRAPE_INTERVAL =~ ^[0-9]+(ms|s|m)$ ]] || die "FLEET_SCRAPE_INTERVAL=$FLEET_SCRAPE_INTERVAL: use e.g. 2s"
    # Every scrape_interval and evaluation_interval (global and per job) becomes it. A timeout
    # above the interval is a config error, so any scrape_timeout does too; without one,
    # Prometheus lowers its 10 s default to the interval itself.
    edits=(--set prometheus.yml global scrape_interval "$FLEET_SCRAPE_INTERVAL"
      --set prometheus.yml global evaluation_interval "$FLEET_SCRAPE_INTERVAL"
      --set-existing prometheus.yml global scrape_timeout "$FLEET_SCRAPE_INTERVAL")
  fi
  render_config "$dst" "${edits[@]}"
  if grep -qE '\b(grafana|jaeger|mailpit|kafka|postgres):[0-9]+' "$dst/prometheus.yml"; then
    warn "prometheus.yml names compose-only hosts; those targets stay down here:"
    grep -nE '\b(grafana|jaeger|mailpit|kafka|postgres):[0-9]+' "$dst/prometheus.yml" >&2 || true
  fi
  local promtool
  promtool=$(obs_bin promtool)
  "$promtool" check config "$dst/prometheus.yml" >"$LOGS/promtool.log" 2>&1 ||
    { cat "$LOGS/promtool.log" >&2; die "promtool rejects the rendered $dst/prometheus.yml"; }
}

# start_prometheus PORT
start_prometheus() {
  local bin
  bin=$(obs_bin prometheus)
  start_detached prometheus "$bin" \
    --config.file="$STATE/prometheus/config/prometheus.yml" \
    --storage.tsdb.path="$STATE/prometheus/data" \
    --storage.tsdb.retention.time=2d \
    --web.listen-address="127.0.0.1:$1" \
    --web.enable-lifecycle
}

# shellcheck shell=bash
# What Prometheus and Alertmanager share on the native stack (sourced by scripts/local-up.sh,
# after scripts/lib/local-stack.sh; their own parts: prometheus.sh, alertmanager.sh): a copy
# of the configuration folder in the state folder, edited by scripts/lib/render_config.py
# (PyYAML), and the start, or the reload when it already runs.

# copy_config SRC DST: a fresh copy of a configuration folder.
copy_config() {
  rm -rf "$2"
  mkdir -p "$2"
  cp -R "$1/." "$2/"
}

# render_config DIR [OPTIONS...]: edits DIR's YAML with the options given
# (scripts/lib/render_config.py: --set, --set-existing) and rewrites the compose hostnames to
# this machine in every *.yml, *.yaml and *.tmpl file. host-metrics runs on the host's network
# in compose, so Prometheus reaches it as host.docker.internal:6068 (host-metrics:6068 is
# accepted too).
render_config() {
  local dir=$1
  shift
  python3 "$REPO/scripts/lib/render_config.py" "$dir" "$@" \
    --addr aggregator:6066 "127.0.0.1:$AGGREGATOR_PORT" \
    --addr call-simulator:6067 "127.0.0.1:$CALL_SIMULATOR_PORT" \
    --addr host.docker.internal:6068 "127.0.0.1:$HOST_METRICS_PORT" \
    --addr host-metrics:6068 "127.0.0.1:$HOST_METRICS_PORT" \
    --addr web-prober:6069 "127.0.0.1:$WEB_PROBER_PORT" \
    --addr prometheus:9090 "127.0.0.1:$PROMETHEUS_PORT" \
    --addr alertmanager:9093 "127.0.0.1:$ALERTMANAGER_PORT" \
    --addr mailpit:1025 "127.0.0.1:$SMTP_PORT" \
    --path /run/secrets/alerts_token "$ALERTS_TOKEN_FILE" ||
    die "could not render the configuration in $dir"
}

# ensure_monitor NAME PORT: (re)renders the configuration (render_NAME); starts NAME
# (start_NAME), or reloads it when it already runs, so that edited rules take effect.
ensure_monitor() {
  local name=$1 port=$2
  "render_$name"
  if pid_of "$name" >/dev/null; then
    curl -fsS -X POST --max-time 5 "http://127.0.0.1:$port/-/reload" >/dev/null ||
      die "$name did not accept the reloaded configuration (see $LOGS/$name.log)"
    return
  fi
  ensure_port_free "$name" "$port" "FLEET_${name^^}_PORT"
  "start_$name" "$port"
  wait_ready "$name" "http://127.0.0.1:$port/-/ready"
}

# shellcheck shell=bash
# Jaeger for the native stack (sourced by scripts/local-up.sh, after scripts/lib/local-stack.sh):
# Jaeger v2 with compose's jaeger/config.yaml, on 127.0.0.1; traces in memory.
ensure_jaeger() {
  pid_of jaeger >/dev/null && return
  local bin
  bin=$(obs_bin jaeger)
  ensure_port_free jaeger "$JAEGER_PORT" FLEET_JAEGER_PORT
  ensure_port_free jaeger "$JAEGER_OTLP_PORT" FLEET_JAEGER_OTLP_PORT
  ensure_port_free jaeger "$JAEGER_HEALTH_PORT" FLEET_JAEGER_HEALTH_PORT
  (
    export JAEGER_LISTEN_HOST=127.0.0.1 JAEGER_QUERY_PORT=$JAEGER_PORT \
      JAEGER_OTLP_GRPC_PORT=$JAEGER_OTLP_PORT JAEGER_HEALTH_PORT
    start_detached jaeger "$bin" --config "$REPO/jaeger/config.yaml"
  )
  wait_ready jaeger "http://127.0.0.1:$JAEGER_HEALTH_PORT/status"
}

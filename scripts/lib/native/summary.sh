# shellcheck shell=bash
# The table scripts/local-up.sh ends with: each running component, its pid, address and log
# (sourced by scripts/local-up.sh, after scripts/lib/local-stack.sh).
print_table() {
  local c pid url
  printf '\n%-15s %-8s %-62s %s\n' component pid address log
  for c in "${COMPONENTS[@]}"; do
    pid=$(pid_of "$c") || continue
    case $c in
      # Natively without the web UIs their Go modules lack (docs/running.md): the APIs.
      mailpit) url="http://127.0.0.1:$MAILPIT_PORT/api/v1/messages (SMTP on $SMTP_PORT)" ;;
      jaeger) url="http://127.0.0.1:$JAEGER_PORT/api/traces (OTLP on $JAEGER_OTLP_PORT)" ;;
      kafka) url="kafka: $(cat "$RUN/kafka.bootstrap" 2>/dev/null) ($STACK_KAFKA_MODE)" ;;
      postgres) url="postgres://postgres@127.0.0.1:$PG_PORT" ;;
      aggregator) url="http://127.0.0.1:$AGGREGATOR_PORT/metrics" ;;
      call-simulator) url="http://127.0.0.1:$CALL_SIMULATOR_PORT/metrics" ;;
      host-metrics) url="http://127.0.0.1:$HOST_METRICS_PORT/metrics" ;;
      probe-site) url="https://localhost:$PROBE_SITE_PORT/health" ;;
      web-prober) url="http://127.0.0.1:$WEB_PROBER_PORT/metrics" ;;
      alertmanager) url="http://127.0.0.1:$ALERTMANAGER_PORT" ;;
      prometheus) url="http://127.0.0.1:$PROMETHEUS_PORT/api/v1/alerts" ;;
    esac
    printf '%-15s %-8s %-62s %s\n' "$c" "$pid" "$url" "$LOGS/$c.log"
  done
  [ "$STACK_KAFKA_MODE" != external ] || printf '%-15s %-8s %s\n' kafka - "$KAFKA"
  printf '%-15s %-8s %s\n' database - "$DB_URL"
  printf '\nstate: %s   stop: scripts/local-down.sh\n' "$STATE"
}

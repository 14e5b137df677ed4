# shellcheck shell=bash
# Kafka for the native stack (sourced by scripts/local-up.sh, after scripts/lib/local-stack.sh):
# the one KAFKA_BOOTSTRAP_SERVERS names if it answers, else Apache Kafka at deploy/versions.env's
# version (scripts/kafka.sh, data in the state folder's kafka/), else (no Java or Maven, or
# FLEET_KAFKA=devbroker) devbroker, librdkafka's in-memory mock cluster.
#
# Sets KAFKA (the bootstrap servers) and STACK_KAFKA_MODE (external, apache or devbroker);
# KAFKA_FRESH=1 when the services already running joined another Kafka.
KAFKA="" KAFKA_FRESH=0

# kafka_reachable LIST: any host:port of a comma-separated list accepts connections.
kafka_reachable() {
  local hp hps
  IFS=',' read -r -a hps <<<"$1"
  for hp in "${hps[@]}"; do
    hp=${hp#*://}
    tcp_open "${hp%:*}" "${hp##*:}" && return 0
  done
  return 1
}

ensure_kafka() {
  if pid_of kafka >/dev/null && [ -s "$RUN/kafka.bootstrap" ]; then
    KAFKA=$(<"$RUN/kafka.bootstrap")
    return
  fi
  if [ "$STACK_KAFKA_MODE" = external ] && kafka_reachable "$STACK_KAFKA"; then
    KAFKA=$STACK_KAFKA
    return
  fi
  if [ -n "${KAFKA_BOOTSTRAP_SERVERS:-}" ]; then
    if kafka_reachable "$KAFKA_BOOTSTRAP_SERVERS"; then
      say "Kafka: $KAFKA_BOOTSTRAP_SERVERS (from KAFKA_BOOTSTRAP_SERVERS)"
      KAFKA=$KAFKA_BOOTSTRAP_SERVERS STACK_KAFKA_MODE=external KAFKA_FRESH=1
      return
    fi
    warn "KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS does not accept connections: starting our own"
  fi
  local mode=${FLEET_KAFKA:-apache}
  case $mode in
    apache | devbroker) ;;
    *) die "invalid value '$mode' for FLEET_KAFKA: expected apache or devbroker" ;;
  esac
  if [ "$mode" = apache ] && ! { command -v java && command -v mvn; } >/dev/null; then
    warn "no Java or Maven here: starting devbroker (librdkafka's mock cluster) instead of Apache Kafka"
    mode=devbroker
  fi
  rm -f "$RUN/kafka.bootstrap"
  if [ "$mode" = apache ]; then start_apache_kafka; else start_devbroker; fi
  warn_services_on_old_kafka
}

start_apache_kafka() {
  ensure_port_free kafka "$KAFKA_PORT" FLEET_KAFKA_PORT
  "$REPO/scripts/kafka.sh" fetch
  rm -f "$STATE/kafka/start.mark" # the next one is this run's (kafka.sh wait reads it)
  start_detached kafka "$REPO/scripts/kafka.sh" run "$STATE/kafka" --port "$KAFKA_PORT"
  # kafka.sh execs the JVM: that is the command line pid_of finds from now on.
  printf 'java\n' >"$RUN/kafka.cmd"
  FLEET_KAFKA_START_TIMEOUT=$START_TIMEOUT "$REPO/scripts/kafka.sh" wait "$STATE/kafka" \
    "$(<"$RUN/kafka.pid")" >"$RUN/kafka.bootstrap.new" || { log_tail kafka >&2; die "Kafka did not start"; }
  mv "$RUN/kafka.bootstrap.new" "$RUN/kafka.bootstrap"
  KAFKA=$(<"$RUN/kafka.bootstrap") KAFKA_FRESH=1
  # The same broker again (same folder, same port): running services just reconnect.
  [ "$STACK_KAFKA_MODE:$STACK_KAFKA" != "apache:$KAFKA" ] || KAFKA_FRESH=0
  STACK_KAFKA_MODE=apache
  say "Kafka: Apache Kafka $("$REPO/scripts/kafka.sh" version) at $KAFKA (data in $STATE/kafka; FLEET_KAFKA=devbroker for the in-memory stand-in)"
}

start_devbroker() {
  need_bin devbroker
  start_detached kafka "$BIN_DIR/devbroker" \
    --partitions "${KAFKA_TOPIC_PARTITIONS:-6}" --bootstrap-file "$RUN/kafka.bootstrap"
  local deadline=$(($(now) + 15))
  until [ -s "$RUN/kafka.bootstrap" ]; do
    pid_of kafka >/dev/null || { log_tail kafka >&2; die "devbroker exited"; }
    [ "$(now)" -lt "$deadline" ] || die "devbroker wrote no bootstrap file in 15 s"
    sleep 0.05
  done
  KAFKA=$(<"$RUN/kafka.bootstrap") STACK_KAFKA_MODE=devbroker KAFKA_FRESH=1
  say "Kafka: devbroker at $KAFKA (librdkafka's mock cluster, in memory: gone when it stops)"
}

# A new Kafka: the services running that this run does not (re)start still use the old one.
warn_services_on_old_kafka() {
  local c
  for c in aggregator call-simulator host-metrics web-prober; do
    if [ "$KAFKA_FRESH" = 1 ] && [ -z "${WANT[$c]:-}" ] && pid_of "$c" >/dev/null; then
      warn "$c still uses the previous Kafka: restart it (scripts/local-down.sh $c && scripts/local-up.sh $c)"
    fi
  done
}

#!/usr/bin/env bash
# The whole fleet without Docker, on 127.0.0.1, with the same configuration files as
# docker-compose.yml and the same versions of the third-party programs (deploy/versions.env):
# prometheus/ and alertmanager/ are copied into the state folder with the compose hostnames
# rewritten (aggregator:6066 -> 127.0.0.1:6066, mailpit:1025 -> 127.0.0.1:1025, ...);
# jaeger/config.yaml is used as it is. Prometheus, Alertmanager, Mailpit and Jaeger are built
# from their Go modules on first use (scripts/observability.sh: about 8 minutes, once).
#
#   scripts/local-up.sh                   # start whatever is not running yet
#   scripts/local-up.sh call-simulator    # start one component (and what it needs), e.g.
#                                         # after scripts/local-down.sh call-simulator
#   FLEET_BIN_DIR=target/debug scripts/local-up.sh   # binaries already built
#   scripts/local-down.sh                 # stop what this started
#
# Components, in start order: mailpit (SMTP for Alertmanager's mails; its API on
# FLEET_MAILPIT_PORT), jaeger (OTLP from the services; its query API on FLEET_JAEGER_PORT),
# kafka (unless KAFKA_BOOTSTRAP_SERVERS answers: Apache Kafka at deploy/versions.env's version,
# run by scripts/kafka.sh with its data in the state folder's kafka/; without Java and Maven, or
# with FLEET_KAFKA=devbroker, devbroker, librdkafka's in-memory mock cluster), postgres (a
# private cluster, only when no server is found), aggregator, call-simulator, host-metrics (samples this machine),
# probe-site (python3 https server with a self-signed certificate made by openssl, one of
# web-prober's targets), web-prober (checks the targets of web-prober/targets.yaml in the
# state folder, written on first start), alertmanager, prometheus.
#
# Settings, besides those in scripts/lib/local-stack.sh:
#   KAFKA_BOOTSTRAP_SERVERS  an existing Kafka; used if it accepts connections, else ours
#   FLEET_KAFKA              apache (default) or devbroker: which Kafka local-up starts
#   KAFKA_TOPIC_PARTITIONS   partitions of the topics the services create (default 6)
#   DATABASE_URL             an existing database, used as is
#   FLEET_PG_ADMIN_URL       a server to create the database on (default: the local server at
#                            127.0.0.1:5432 as postgres if pg_isready, else a private cluster)
#   FLEET_PG_PRIVATE=1       always use a private cluster (initdb in the state folder)
#   FLEET_DB_NAME            database created when DATABASE_URL is unset (default fleetpulse)
#   FLEET_DB_RESET=1         drop and recreate that database first (only if the aggregator
#                            is not running)
#   FLEET_PROMETHEUS_DIR, FLEET_ALERTMANAGER_DIR
#                            configuration sources (default prometheus/, alertmanager/)
#   FLEET_SCRAPE_INTERVAL    e.g. 2s: scrape and rule evaluation interval (and scrape timeout)
#   FLEET_EXTRA_RULES        extra rule files (space or colon separated), loaded with the rest
#   FLEET_FAST_ALERTS=1      Alertmanager group_wait and group_interval 1s (for the e2e)
#   ALERTS_TOKEN             the bearer token of the aggregator's POST /alerts (default: one
#                            generated once into the state folder's secrets/alerts_token,
#                            which Alertmanager reads)
#   OTEL_EXPORTER_OTLP_ENDPOINT  where the services send their traces (default: our Jaeger, as
#                            in compose; set it empty for no export)
#   RUST_LOG, LOG_FORMAT and every other service setting are passed through to the services
#   unchanged (e.g. SAMPLE_INTERVAL_SECS=1 for host-metrics,
#   PROBE_INTERVAL_SECS=5 for web-prober). PROBE_TARGETS_FILE replaces the generated targets
#   file; PROBE_CA_FILE replaces probe-site's certificate as the extra CA.
set -euo pipefail
# How: scripts/lib/local-stack.sh (state folder, ports, start/stop of a component) and one file
# per component in scripts/lib/native/; this file only picks the components and starts them in
# order.
# shellcheck source=scripts/lib/local-stack.sh
source "$(dirname "$0")/lib/local-stack.sh"
# shellcheck source=scripts/lib/native/stack-env.sh
source "$REPO/scripts/lib/native/stack-env.sh"
# shellcheck source=scripts/lib/native/services.sh
source "$REPO/scripts/lib/native/services.sh"
# shellcheck source=scripts/lib/native/alerts-token.sh
source "$REPO/scripts/lib/native/alerts-token.sh"
# shellcheck source=scripts/lib/native/mailpit.sh
source "$REPO/scripts/lib/native/mailpit.sh"
# shellcheck source=scripts/lib/native/jaeger.sh
source "$REPO/scripts/lib/native/jaeger.sh"
# shellcheck source=scripts/lib/native/kafka.sh
source "$REPO/scripts/lib/native/kafka.sh"
# shellcheck source=scripts/lib/native/postgres.sh
source "$REPO/scripts/lib/native/postgres.sh"
# shellcheck source=scripts/lib/native/probe-site.sh
source "$REPO/scripts/lib/native/probe-site.sh"
# shellcheck source=scripts/lib/native/web-prober.sh
source "$REPO/scripts/lib/native/web-prober.sh"
# shellcheck source=scripts/lib/native/monitors.sh
source "$REPO/scripts/lib/native/monitors.sh"
# shellcheck source=scripts/lib/native/alertmanager.sh
source "$REPO/scripts/lib/native/alertmanager.sh"
# shellcheck source=scripts/lib/native/prometheus.sh
source "$REPO/scripts/lib/native/prometheus.sh"
# shellcheck source=scripts/lib/native/summary.sh
source "$REPO/scripts/lib/native/summary.sh"

usage() { sed -n '2,/^set -euo/p' "$0" | sed 's/^# \{0,1\}//; /^set -euo/d'; }

# --- what to start ----------------------------------------------------------------------
declare -A WANT=()
add_with_deps() {
  case $1 in
    mailpit | jaeger | kafka | postgres) ;;
    aggregator) add_with_deps jaeger; add_with_deps kafka; add_with_deps postgres ;;
    call-simulator | host-metrics) add_with_deps jaeger; add_with_deps kafka ;;
    probe-site) ;;
    web-prober) add_with_deps jaeger; add_with_deps kafka; add_with_deps probe-site ;;
    alertmanager) add_with_deps mailpit ;;
    prometheus) add_with_deps alertmanager ;;
    *) die "unknown component '$1' (known: ${COMPONENTS[*]})" ;;
  esac
  WANT[$1]=1
}
if [ $# -eq 0 ]; then
  for c in "${COMPONENTS[@]}"; do WANT[$c]=1; done
else
  for arg in "$@"; do
    case $arg in
      -h | --help) usage; exit 0 ;;
      *) add_with_deps "$arg" ;;
    esac
  done
fi
wanted() { [ -n "${WANT[$1]:-}" ]; }

mkdir -p "$RUN" "$LOGS"
trap 'rc=$?; [ "$rc" -eq 0 ] || echo "local-up.sh failed; what did start keeps running: scripts/local-down.sh stops it" >&2' EXIT
command -v curl >/dev/null || die "curl is required (apt-get install curl)"
python3 -c 'import yaml' 2>/dev/null ||
  die "python3 with PyYAML is required (apt-get install python3-yaml): it supervises the components and renders the configuration"
load_stack_env

# --- start, in order ----------------------------------------------------------------------
if wanted mailpit; then ensure_mailpit; fi
if wanted jaeger; then ensure_jaeger; fi
if wanted kafka; then ensure_kafka; else KAFKA=$STACK_KAFKA; fi
if wanted postgres; then ensure_database; else DB_URL=$STACK_DATABASE_URL; fi
save_stack_env
if wanted aggregator || wanted alertmanager; then ensure_alerts_token; fi
if wanted aggregator; then start_aggregator; fi
if wanted call-simulator; then start_service call-simulator "$CALL_SIMULATOR_PORT"; fi
if wanted host-metrics; then start_service host-metrics "$HOST_METRICS_PORT"; fi
if wanted probe-site; then ensure_probe_site; fi
if wanted web-prober; then start_web_prober; fi
if wanted alertmanager; then ensure_monitor alertmanager "$ALERTMANAGER_PORT"; fi
if wanted prometheus; then ensure_monitor prometheus "$PROMETHEUS_PORT"; fi
print_table

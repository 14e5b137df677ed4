#!/usr/bin/env bash
# End-to-end test of the whole fleet on the native stack (scripts/local-up.sh): real
# processes; Prometheus, Alertmanager, Mailpit and Jaeger at compose's versions with the
# repository's configuration; Apache Kafka; PostgreSQL.
#
#   scripts/e2e.sh                                  # builds the release binaries first
#   FLEET_BIN_DIR=target/debug scripts/e2e.sh       # binaries already built
#
# Checks, each a polling loop with a deadline:
#   1. every Prometheus scrape target is up (host-metrics and web-prober included);
#   2. call_stats_1m, long_calls and call_totals grow; host samples reach system_metrics and
#      host_metrics_1m, under the host name Prometheus sees; web checks reach probe_results and
#      probe_stats_1m with every kind of answer of the generated targets file (ok,
#      regex_mismatch, http_status, connect_error), under the URLs Prometheus sees in the
#      `target` label; every recording and alerting rule evaluates without error, and the
#      host and probe pipelines' own alerts stay inactive; web-prober rejects a broken targets
#      file (keeping its targets), reloads the fixed one on change, and again on SIGHUP;
#   3. every dashboard query (scripts/dashboard-queries.py) returns data: PromQL through
#      Prometheus' API, SQL through psql (queries over the alert history are retried after 5);
#      the Hosts dashboard's `host` and the Web probes dashboard's `target` variables are set
#      to "All" (`.*`);
#   4. the e2e alert (prometheus/e2e/fast-alerts.yml) on a stopped call-simulator fires in
#      Prometheus, reaches Alertmanager, lands as a 'firing' row in the alerts table (via
#      the aggregator's POST /alerts) and as an e-mail in Mailpit (read through its API: the
#      recipient, the alert's name in the subject, its summary in the body), while a POST
#      /alerts without Alertmanager's bearer token gets 401 and stores nothing; restarting the
#      simulator resolves it, in Prometheus, in Alertmanager, as a 'resolved' row and as a
#      second e-mail;
#   4b. Jaeger (through its query API) holds a trace with call-simulator's produce_call span
#      and the aggregator's aggregate and flush spans under one trace id;
#   5. every target is up again and the remaining queries return data;
#   6. scripts/local-down.sh stops everything: no process left, every exit status 0.
#
# Runs in its own state folder (E2E_STATE_DIR, default .local-stack-e2e/) and database
# (E2E_DB_NAME, default fleetpulse_e2e, dropped at start), with its own Kafka (Apache Kafka in
# the state folder, as local-up starts it; devbroker where there is no Java). Uses the
# default ports (FLEET_*_PORT to move them) and TEST_DATABASE_URL as the PostgreSQL server
# when set. The stack is always stopped at the end; on failure the logs' tails are printed.
set -euo pipefail
cd "$(dirname "$0")/.."

export FLEET_STATE_DIR=${E2E_STATE_DIR:-$PWD/.local-stack-e2e}
export FLEET_SCRAPE_INTERVAL=2s FLEET_FAST_ALERTS=1 FLEET_EXTRA_RULES=prometheus/e2e/fast-alerts.yml
# host-metrics samples every second (default 10), web-prober checks every target every second
# (default 60) and looks at its targets file twice a second (default 2), so that rates and
# tables fill, and reloads happen, in seconds.
export SAMPLE_INTERVAL_SECS=1 PROBE_INTERVAL_SECS=1 PROBE_RELOAD_SECS=0.5
# The generated targets file and probe-site's certificate, whatever the shell points at.
unset PROBE_TARGETS_FILE PROBE_CA_FILE PROBE_REGEX
export FLEET_DB_NAME=${E2E_DB_NAME:-fleetpulse_e2e}
# Hermetic: a Kafka and a database of our own, whatever the shell points at.
unset DATABASE_URL KAFKA_BOOTSTRAP_SERVERS FLEET_PG_ADMIN_URL
[ -z "${TEST_DATABASE_URL:-}" ] || export FLEET_PG_ADMIN_URL=$TEST_DATABASE_URL
# shellcheck source=scripts/lib/local-stack.sh
source scripts/lib/local-stack.sh

PROM=http://127.0.0.1:$PROMETHEUS_PORT
AM=http://127.0.0.1:$ALERTMANAGER_PORT
MAILPIT=http://127.0.0.1:$MAILPIT_PORT
JAEGER=http://127.0.0.1:$JAEGER_PORT
ALERT=FleetE2EServiceDown
# Where alertmanager/alertmanager.yml sends the on-call mail, and the e2e alert's summary as
# prometheus/e2e/fast-alerts.yml renders it for the simulator.
MAIL_TO=oncall@fleetpulse.local
ALERT_SUMMARY="call-simulator is down (end-to-end test)"
# The services export their traces to our Jaeger (local-up's default), whatever the shell says.
unset OTEL_EXPORTER_OTLP_ENDPOINT OTEL_TRACES_SAMPLER OTEL_TRACES_SAMPLER_ARG

# --- reporting ----------------------------------------------------------------------------
T0=$(date +%s.%N)
STEP="" STEP_T0=$T0 DONE=()
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }
step() {
  STEP=$1 STEP_T0=$(date +%s.%N)
  printf '\n=== %s\n' "$STEP"
}
passed() {
  DONE+=("$(printf '  ok  %-70s %6ss' "$STEP" "$(elapsed "$STEP_T0")")")
  printf '    ok (%ss)\n' "$(elapsed "$STEP_T0")"
}
fail() {
  printf '\nE2E FAILED at "%s": %s\n' "$STEP" "$*" >&2
  exit 1
}
info() { printf '    %s\n' "$*"; }

# poll SECONDS CMD...: runs CMD every second until it succeeds; fails after SECONDS.
poll() {
  local deadline=$(($(date +%s) + $1))
  shift
  until "$@"; do
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 1
  done
}

DOWN_DONE=0
cleanup() {
  local rc=$?
  trap - EXIT
  if [ "$rc" -ne 0 ]; then
    printf '\n--- logs (tails) from %s\n' "$LOGS" >&2
    for c in "${COMPONENTS[@]}"; do log_tail "$c" 40 >&2; done
  fi
  if [ "$DOWN_DONE" = 0 ]; then
    scripts/local-down.sh >/dev/null 2>&1 || scripts/local-down.sh || true
  fi
  [ "$rc" -eq 0 ] || printf '\ne2e: FAILED after %ss (state and logs kept in %s)\n' "$(elapsed "$T0")" "$STATE" >&2
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- helpers ------------------------------------------------------------------------------
DB=""
sql() { psql "$DB" -XqAt -v ON_ERROR_STOP=1 -c "$1"; }
promql() { curl -fsS --max-time 5 -G "$PROM/api/v1/query" --data-urlencode "query=$1"; }

targets_up() {
  curl -fsS --max-time 5 "$PROM/api/v1/targets" >"$STATE/targets.json" 2>/dev/null &&
    jq -e '.data.activeTargets as $t | ($t | length) > 0 and ($t | all(.health == "up"))
           and (["aggregator", "call-simulator", "host-metrics", "web-prober", "prometheus", "alertmanager"]
                | all(. as $s | $t | any(.labels.service == $s)))' "$STATE/targets.json" >/dev/null
}
show_targets() {
  jq -r '.data.activeTargets[] | "      \(.labels.service // .labels.job) \(.scrapeUrl) \(.health) \(.lastError)"' \
    "$STATE/targets.json" 2>/dev/null || true
}

table_counts() {
  sql "SELECT (SELECT coalesce(sum(calls), 0) FROM call_stats_1m) || ' ' ||
              (SELECT count(*) FROM long_calls) || ' ' ||
              (SELECT coalesce(max(calls), 0) FROM call_totals)"
}
# counts_grew NAME COUNTS: runs the function COUNTS (it prints numbers) into ${NAME}1; true
# when every number is above its value in ${NAME}0.
counts_grew() {
  local after i
  after=$("$2") || return 1
  printf -v "${1}1" '%s' "$after"
  local -n start="${1}0"
  local -a was now
  read -ra was <<<"$start"
  read -ra now <<<"$after"
  [ "${#was[@]}" -gt 0 ] && [ "${#now[@]}" -eq "${#was[@]}" ] || return 1
  for i in "${!was[@]}"; do
    [ "${now[$i]}" -gt "${was[$i]}" ] || return 1
  done
}

host_counts() {
  sql "SELECT (SELECT count(*) FROM system_metrics) || ' ' ||
              (SELECT coalesce(sum(samples), 0) FROM host_metrics_1m)"
}
# The host names in PostgreSQL and in Prometheus (label `host`), comma-separated, sorted.
pg_hosts() { sql "SELECT string_agg(DISTINCT host, ',' ORDER BY host) FROM system_metrics"; }
prom_hosts() {
  promql 'group by (host) (host_metrics_cpu_usage_ratio)' |
    jq -r '[.data.result[].metric.host] | sort | join(",")'
}

probe_counts() {
  sql "SELECT (SELECT count(*) FROM probe_results) || ' ' ||
              (SELECT coalesce(sum(checks), 0) FROM probe_stats_1m)"
}
# The results stored, and the URLs in PostgreSQL and in Prometheus (label `target`), sorted.
pg_results() { sql "SELECT string_agg(DISTINCT result, ',' ORDER BY result) FROM probe_results"; }
pg_urls() { sql "SELECT string_agg(DISTINCT url, ' ' ORDER BY url) FROM probe_results"; }
prom_urls() {
  promql 'group by (target) (web_prober_target_success)' |
    jq -r '[.data.result[].metric.target] | sort | join(" ")'
}
# One value of web-prober's own /metrics (an exact series name, labels included).
WEB_PROBER_METRICS=""
web_prober_metric() {
  WEB_PROBER_METRICS=$(curl -fsS --max-time 2 "http://127.0.0.1:$WEB_PROBER_PORT/metrics") || return 1
  awk -v s="$1" '$1 == s { print $2 }' <<<"$WEB_PROBER_METRICS"
}
web_prober_metric_is() { [ "$(web_prober_metric "$1")" = "$2" ]; }
reloads_above() { local n; n=$(web_prober_metric 'web_prober_config_reloads_total{result="success"}') && [ "${n:-0}" -gt "$1" ]; }

# Rules: every rule has been evaluated (health ok), none failed; the named ones are loaded.
RULES_BAD=""
rules_healthy() {
  local out
  out=$(curl -fsS --max-time 5 "$PROM/api/v1/rules") || { RULES_BAD="rules API unreachable"; return 1; }
  RULES_BAD=$(jq -r '.data.groups[].rules[] | select(.health != "ok")
                     | "\(.name): \(.health) \(.lastError // "")"' <<<"$out")
  [ -z "$RULES_BAD" ]
}
rules_loaded() { # NAME...
  local out name
  out=$(curl -fsS --max-time 5 "$PROM/api/v1/rules") || return 1
  for name in "$@"; do
    jq -e --arg n "$name" '[.data.groups[].rules[] | select(.name == $n)] | length > 0' <<<"$out" >/dev/null ||
      { RULES_BAD="$name is not loaded"; return 1; }
  done
}
alerts_inactive() { # NAME...: none of them pending or firing in Prometheus
  local out active
  out=$(curl -fsS --max-time 5 "$PROM/api/v1/alerts") || { RULES_BAD="alerts API unreachable"; return 1; }
  active=$(jq -r --args '[.data.alerts[] | select(.labels.alertname as $a | $ARGS.positional | index($a))
                          | "\(.labels.alertname) \(.state)"] | join(", ")' "$@" <<<"$out")
  RULES_BAD=$active
  [ -z "$active" ]
}

# Dashboard queries: QUERY_TEXT/KIND/NAME by index; SATISFIED[i]=1 once it returned data;
# LAST_ERROR[i] the latest reason it did not.
QUERY_TEXT=() QUERY_KIND=() QUERY_NAME=()
declare -A SATISFIED=() LAST_ERROR=()
load_queries() {
  local lines q kind name
  [ -f scripts/dashboard-queries.py ] || fail "scripts/dashboard-queries.py is missing"
  lines=$(python3 scripts/dashboard-queries.py) || fail "scripts/dashboard-queries.py failed"
  # One jq for all: query, datasource and name, each ended by a NUL (queries span lines).
  while IFS= read -r -d '' q && IFS= read -r -d '' kind && IFS= read -r -d '' name; do
    QUERY_TEXT+=("$q") QUERY_KIND+=("$kind") QUERY_NAME+=("$name")
  done < <(jq -j '.query, "\u0000", .datasource, "\u0000", "\(.dashboard) / \(.panel)", "\u0000"' <<<"$lines")
  [ ${#QUERY_TEXT[@]} -gt 0 ] || fail "scripts/dashboard-queries.py printed no query"
}
# Queries over the alert history can only return rows once an alert went through.
about_alerts() { grep -qE '\bFROM alerts\b|\bJOIN alerts\b|\bALERTS\b' <<<"${QUERY_TEXT[$1]}"; }

run_query() { # index -> 0 when it returned data; LAST_ERROR otherwise
  local i=$1 q=${QUERY_TEXT[$1]} out n
  case ${QUERY_KIND[$i]} in
    prometheus)
      if ! out=$(promql "$q" 2>&1); then LAST_ERROR[$i]="HTTP error: $out"; return 1; fi
      out=$(jq -r 'if .status != "success" then .error // tostring
                   elif (.data.resultType | . == "scalar" or . == "string") or (.data.result | length > 0) then "ok"
                   else "empty result" end' <<<"$out" 2>&1)
      [ "$out" = ok ] && return 0
      LAST_ERROR[$i]=$out
      return 1
      ;;
    postgres)
      q=${q%"${q##*[![:space:]]}"} # a trailing `;` cannot stay inside the subquery
      q=${q%;}
      if ! out=$(sql "SELECT count(*) FROM ($q) AS e2e_query" 2>&1); then LAST_ERROR[$i]=$out; return 1; fi
      [ "$out" -ge 1 ] && return 0
      LAST_ERROR[$i]="no rows"
      return 1
      ;;
    *) LAST_ERROR[$i]="unknown datasource ${QUERY_KIND[$i]}"; return 1 ;;
  esac
}
# check_queries SECONDS [defer]: retries the unsatisfied queries until all return data or
# SECONDS pass. With `defer`, queries over the alert history do not keep the loop going.
check_queries() {
  local deadline=$(($(date +%s) + $1)) defer=${2:-} i open
  while :; do
    open=0
    for i in "${!QUERY_TEXT[@]}"; do
      [ -z "${SATISFIED[$i]:-}" ] || continue
      if run_query "$i"; then SATISFIED[$i]=1; elif [ -z "$defer" ] || ! about_alerts "$i"; then open=$((open + 1)); fi
    done
    [ "$open" -gt 0 ] || return 0
    [ "$(date +%s)" -lt "$deadline" ] || return 1
    sleep 2
  done
}
unsatisfied() { # [defer]: lists the queries still without data
  local i
  for i in "${!QUERY_TEXT[@]}"; do
    [ -z "${SATISFIED[$i]:-}" ] || continue
    if [ "${1:-}" = defer ] && about_alerts "$i"; then continue; fi
    printf '      [%s] %s\n        %s\n        -> %s\n' "${QUERY_KIND[$i]}" "${QUERY_NAME[$i]}" \
      "$(tr '\n' ' ' <<<"${QUERY_TEXT[$i]}" | cut -c1-200)" "${LAST_ERROR[$i]:-?}"
  done
}

prom_alert_state() { # the e2e alert's state in Prometheus (firing/pending), empty when none
  local out
  out=$(curl -fsS --max-time 5 "$PROM/api/v1/alerts") || { echo unreachable; return; }
  jq -r --arg a "$ALERT" '[.data.alerts[] | select(.labels.alertname == $a) | .state] | unique | join(",")' <<<"$out"
}
am_alert_state() { # the e2e alert's state in Alertmanager (active/suppressed...), empty when none
  local out
  out=$(curl -fsS --max-time 5 "$AM/api/v2/alerts") || { echo unreachable; return; }
  jq -r --arg a "$ALERT" '[.[] | select(.labels.alertname == $a) | .status.state] | unique | join(",")' <<<"$out"
}
prom_alert_is() { [ "$(prom_alert_state)" = "$1" ]; }
am_alert_is() { [ "$(am_alert_state)" = "$1" ]; }
alert_rows() { sql "SELECT count(*) FROM alerts WHERE alertname = '$ALERT' AND status = '$1'" 2>/dev/null; }
alert_row_landed() { local n; n=$(alert_rows "$1") && [ "$n" -ge 1 ]; }
alerts_table_missing() {
  [ "$(sql "SELECT to_regclass('public.alerts') IS NULL")" = t ]
}
webhook_errors() { grep -E 'Notify for alerts failed|webhook' "$LOGS/alertmanager.log" | tail -n 3 || true; }
email_errors() { grep -E 'Notify for alerts failed|email' "$LOGS/alertmanager.log" | tail -n 3 || true; }

# The e2e alert's mail in Mailpit: STATUS is FIRING or RESOLVED (Alertmanager's subject
# starts with [FIRING:n] or [RESOLVED]). True once a message to MAIL_TO has that status and
# the alert's name in its subject and the summary in its body; MAIL_SEEN says what was there.
MAIL_SEEN=""
mail_arrived() {
  local status=$1 list id body
  list=$(curl -fsS --max-time 5 "$MAILPIT/api/v1/messages?limit=50") || { MAIL_SEEN="Mailpit API unreachable"; return 1; }
  MAIL_SEEN=$(jq -r '[.messages[] | "\(.Subject) -> \([.To[].Address] | join(","))"] | join("; ")' <<<"$list")
  for id in $(jq -r --arg s "[$status" --arg a "$ALERT" --arg to "$MAIL_TO" \
    '.messages[] | select((.Subject | startswith($s)) and (.Subject | contains($a))
                          and any(.To[]; .Address == $to)) | .ID' <<<"$list"); do
    body=$(curl -fsS --max-time 5 "$MAILPIT/api/v1/message/$id") || continue
    jq -e --arg summary "$ALERT_SUMMARY" '(.HTML + .Text) | contains($summary)' <<<"$body" >/dev/null && return 0
  done
  return 1
}

# A trace in Jaeger with call-simulator's produce_call span and the aggregator's aggregate and
# flush spans: the trace context crossed Kafka. TRACE_ID is the first one found.
TRACE_ID="" TRACE_SEEN=""
trace_across_services() {
  local out
  out=$(curl -fsS --max-time 10 -G "$JAEGER/api/traces" --data-urlencode service=aggregator \
    --data-urlencode operation=flush --data-urlencode limit=20 --data-urlencode lookback=1h) ||
    { TRACE_SEEN="Jaeger's query API unreachable"; return 1; }
  TRACE_SEEN=$(jq -r '[.data[] | [.spans[] as $s | "\(.processes[$s.processID].serviceName)/\($s.operationName)"]
                       | unique | join(" ")] | unique | join("; ")' <<<"$out")
  TRACE_ID=$(jq -r 'first(.data[] | . as $t
      | [.spans[] | "\($t.processes[.processID].serviceName)/\(.operationName)"] as $names
      | select(["call-simulator/produce_call", "aggregator/aggregate", "aggregator/flush"]
               | all(. as $n | $names | index($n)))
      | .traceID) // empty' <<<"$out")
  [ -n "$TRACE_ID" ]
}

# --- 0. preflight -------------------------------------------------------------------------
step "preflight: tools and a clean state folder"
missing=()
for tool in curl jq psql python3 openssl; do command -v "$tool" >/dev/null || missing+=("$tool"); done
[ ${#missing[@]} -eq 0 ] || fail "missing: ${missing[*]} (apt-get install curl jq postgresql-client python3 openssl)"
# Prometheus, Alertmanager, Mailpit and Jaeger at compose's versions (built once, cached).
scripts/observability.sh build || fail "scripts/observability.sh could not build the observability stack"
[ -f prometheus/e2e/fast-alerts.yml ] || fail "prometheus/e2e/fast-alerts.yml is missing"
scripts/local-down.sh --purge >/dev/null
passed

# --- 1. start -------------------------------------------------------------------------------
step "start the native stack (scripts/local-up.sh)"
FLEET_DB_RESET=1 scripts/local-up.sh
# shellcheck source=/dev/null
source "$RUN/stack.env"
DB=$STACK_DATABASE_URL
[ -n "$DB" ] || fail "local-up.sh recorded no database URL"
passed

step "every Prometheus scrape target is up"
poll 60 targets_up || { show_targets; fail "targets not all up after 60 s"; }
show_targets
curl -fsS "$PROM/api/v1/rules" | jq -e --arg a "$ALERT" '[.data.groups[].rules[] | select(.name == $a)] | length > 0' >/dev/null ||
  fail "Prometheus has not loaded the rule $ALERT (FLEET_EXTRA_RULES)"
passed

# --- 2. tables ------------------------------------------------------------------------------
step "call_stats_1m, long_calls and call_totals grow"
COUNTS0=$(table_counts)
COUNTS1=$COUNTS0
poll 60 counts_grew COUNTS table_counts || fail "not all grew in 60 s: sum(calls) long_calls call_totals.calls = $COUNTS0 -> $COUNTS1"
info "sum(calls) long_calls call_totals.calls: $COUNTS0 -> $COUNTS1"
passed

step "host samples reach system_metrics and host_metrics_1m; hosts agree"
HOSTS0=$(host_counts)
HOSTS1=$HOSTS0
poll 30 counts_grew HOSTS host_counts || fail "not both grew in 30 s: system_metrics rows, sum(host_metrics_1m.samples) = $HOSTS0 -> $HOSTS1"
info "system_metrics rows, sum(host_metrics_1m.samples): $HOSTS0 -> $HOSTS1"
hosts_match() { [ -n "$(pg_hosts)" ] && [ "$(pg_hosts)" = "$(prom_hosts)" ]; }
poll 10 hosts_match || fail "hosts in PostgreSQL '$(pg_hosts)' differ from Prometheus' '$(prom_hosts)'"
info "host: $(pg_hosts)"
passed

step "web checks reach probe_results and probe_stats_1m; URLs agree"
PROBES0=$(probe_counts)
PROBES1=$PROBES0
poll 30 counts_grew PROBES probe_counts || fail "not both grew in 30 s: probe_results rows, sum(probe_stats_1m.checks) = $PROBES0 -> $PROBES1"
info "probe_results rows, sum(probe_stats_1m.checks): $PROBES0 -> $PROBES1"
# The generated targets file has one target of each of these answers.
all_results() {
  local have r
  have=,$(pg_results),
  for r in connect_error http_status ok regex_mismatch; do [[ $have == *,$r,* ]] || return 1; done
}
poll 10 all_results || fail "results stored: '$(pg_results)'; expected connect_error, http_status, ok and regex_mismatch"
info "results: $(pg_results)"
urls_match() { [ -n "$(pg_urls)" ] && [ "$(pg_urls)" = "$(prom_urls)" ]; }
poll 10 urls_match || fail "URLs in PostgreSQL '$(pg_urls)' differ from Prometheus' '$(prom_urls)'"
info "URLs: $(pg_urls)"
passed

step "every rule evaluates; the pipelines' own alerts stay inactive"
HOST_ALERTS=(FleetHostCpuHigh FleetHostMemoryLow FleetHostDiskFull FleetHostSamplesDropped FleetHostSamplesNotStored)
PROBE_ALERTS=(FleetProbeFailing FleetProbeSlow FleetProbeCertExpiring FleetProbeTargetsRejected FleetProbeResultsNotStored)
rules_loaded "${HOST_ALERTS[@]}" "${PROBE_ALERTS[@]}" || fail "$RULES_BAD"
poll 20 rules_healthy || fail "rules not healthy after 20 s: $RULES_BAD"
# Samples and results are published and stored, the targets file loaded, probe-site's
# certificate has 30 days: the alerts about the pipelines themselves must not even pend.
poll 20 alerts_inactive FleetHostSamplesDropped FleetHostSamplesNotStored \
  FleetProbeResultsNotStored FleetProbeTargetsRejected FleetProbeCertExpiring || fail "active: $RULES_BAD"
passed

step "targets file: a bad one is rejected; reloads on change and on SIGHUP"
TARGETS_FILE=$STATE/web-prober/targets.yaml
[ -f "$TARGETS_FILE" ] || fail "local-up.sh wrote no $TARGETS_FILE"
targets_before=$(web_prober_metric web_prober_targets) || fail "web-prober's /metrics unreachable"
cp "$TARGETS_FILE" "$STATE/targets.yaml.good"
printf 'targets:\n  - url: ftp://not-http.example/\n' >"$TARGETS_FILE"
poll 10 web_prober_metric_is web_prober_config_last_reload_successful 0 ||
  fail "a broken targets file was not rejected within 10 s"
[ "$(web_prober_metric web_prober_targets)" = "$targets_before" ] ||
  fail "web_prober_targets moved from $targets_before after a rejected file"
cp "$STATE/targets.yaml.good" "$TARGETS_FILE"
poll 10 web_prober_metric_is web_prober_config_last_reload_successful 1 ||
  fail "the fixed targets file was not loaded within 10 s"
loads=$(web_prober_metric 'web_prober_config_reloads_total{result="success"}')
pid=$(pid_of web-prober) || fail "web-prober is not running"
kill -HUP "$pid"
poll 10 reloads_above "$loads" || fail "SIGHUP did not reload the targets file within 10 s"
info "$targets_before targets kept through a rejected file; reloads (success): $loads -> $(web_prober_metric 'web_prober_config_reloads_total{result="success"}')"
passed

# --- 3. dashboards --------------------------------------------------------------------------
step "every dashboard query returns data (alert history: after the alert)"
load_queries
info "${#QUERY_TEXT[@]} queries from scripts/dashboard-queries.py"
check_queries 90 defer || { unsatisfied defer; fail "queries without data after 90 s (listed above)"; }
passed

# --- 4. an alert, end to end ----------------------------------------------------------------
step "stop call-simulator: $ALERT fires in Prometheus"
scripts/local-down.sh call-simulator
rc=$(cat "$RUN/call-simulator.rc" 2>/dev/null || echo '?')
[ "$rc" = 0 ] || fail "call-simulator exited with status $rc after SIGTERM"
poll 60 prom_alert_is firing || fail "$ALERT not firing in Prometheus after 60 s (state: '$(prom_alert_state)')"
passed

step "Alertmanager has $ALERT"
poll 30 am_alert_is active || fail "$ALERT not active in Alertmanager after 30 s (state: '$(am_alert_state)')"
passed

step "a 'firing' row for $ALERT lands in the alerts table"
if alerts_table_missing; then
  fail "there is no table 'alerts': the aggregator does not store Alertmanager's webhooks (POST /alerts) yet. Alertmanager says: $(webhook_errors)"
fi
poll 30 alert_row_landed firing || fail "no firing row after 30 s. Alertmanager says: $(webhook_errors)"
check_queries 0 || true # the alert-history queries, while the alert is open
passed

step "POST /alerts without Alertmanager's token is refused and stores nothing"
# A valid notification: stored, were it let in.
forged='{"version":"4","receiver":"oncall","status":"firing","alerts":[{"status":"firing",
  "labels":{"alertname":"E2EForged"},"startsAt":"2026-01-01T00:00:00Z"}]}'
for auth in "" "Authorization: Bearer not-the-token-0123456789"; do
  code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H 'content-type: application/json' \
    ${auth:+-H "$auth"} --data "$forged" "http://127.0.0.1:$AGGREGATOR_PORT/alerts")
  [ "$code" = 401 ] || fail "POST /alerts with '${auth:-no Authorization header}' answered $code, not 401"
done
[ "$(sql "SELECT count(*) FROM alerts WHERE alertname = 'E2EForged'")" = 0 ] || fail "a refused POST /alerts stored a row"
passed

step "the $ALERT e-mail reaches $MAIL_TO in Mailpit"
poll 30 mail_arrived FIRING ||
  fail "no [FIRING] mail for $ALERT to $MAIL_TO with '$ALERT_SUMMARY' after 30 s; Mailpit has: '$MAIL_SEEN'. Alertmanager says: $(email_errors)"
passed

step "restart call-simulator: $ALERT resolves in Prometheus"
scripts/local-up.sh call-simulator >/dev/null
poll 60 prom_alert_is "" || fail "$ALERT still '$(prom_alert_state)' in Prometheus 60 s after the restart"
passed

step "Alertmanager resolves $ALERT"
poll 30 am_alert_is "" || fail "$ALERT still '$(am_alert_state)' in Alertmanager after 30 s"
passed

step "a 'resolved' row for $ALERT lands in the alerts table"
poll 60 alert_row_landed resolved || fail "no resolved row after 60 s. Alertmanager says: $(webhook_errors)"
passed

step "the [RESOLVED] e-mail for $ALERT reaches $MAIL_TO in Mailpit"
poll 30 mail_arrived RESOLVED ||
  fail "no [RESOLVED] mail for $ALERT to $MAIL_TO after 30 s; Mailpit has: '$MAIL_SEEN'. Alertmanager says: $(email_errors)"
passed

# --- 4b. traces -----------------------------------------------------------------------------
step "Jaeger has a trace from call-simulator (produce_call) to the aggregator (aggregate, flush)"
poll 60 trace_across_services ||
  fail "no such trace in Jaeger after 60 s; traces of the aggregator's flush hold: '$TRACE_SEEN'"
info "trace $TRACE_ID: $JAEGER/api/traces/$TRACE_ID"
passed

# --- 5. after the restart -------------------------------------------------------------------
step "every target up again; every remaining dashboard query returns data"
poll 60 targets_up || { show_targets; fail "targets not all up 60 s after the restart"; }
check_queries 60 || { unsatisfied; fail "queries without data (listed above)"; }
passed

# --- 6. stop --------------------------------------------------------------------------------
step "scripts/local-down.sh stops everything cleanly"
pids=()
for c in "${COMPONENTS[@]}"; do
  if pid=$(pid_of "$c"); then pids+=("$c:$pid"); fi
done
DOWN_DONE=1
scripts/local-down.sh || fail "local-down.sh failed"
for cp in "${pids[@]}"; do
  kill -0 "${cp#*:}" 2>/dev/null && fail "${cp%%:*} (pid ${cp#*:}) still alive after local-down.sh"
  [ "${cp%%:*}" = postgres ] && continue # stopped by pg_ctl, no exit status of ours
  rc=$(cat "$RUN/${cp%%:*}.rc" 2>/dev/null || echo '?')
  # A JVM stopped by SIGTERM exits 143 once its shutdown hook (Kafka's orderly stop) is done.
  [ "${cp%%:*}" = kafka ] && [ "$rc" = 143 ] && continue
  [ "$rc" = 0 ] || fail "${cp%%:*} exited with status $rc after SIGTERM"
done
for port in "$AGGREGATOR_PORT" "$CALL_SIMULATOR_PORT" "$HOST_METRICS_PORT" "$WEB_PROBER_PORT" \
  "$PROBE_SITE_PORT" "$PROMETHEUS_PORT" "$ALERTMANAGER_PORT" "$SMTP_PORT" "$MAILPIT_PORT" \
  "$JAEGER_PORT" "$JAEGER_OTLP_PORT"; do
  tcp_open 127.0.0.1 "$port" && fail "port $port still accepts connections"
done
info "stopped: ${pids[*]%%:*}"
passed

printf '\n'
printf '%s\n' "${DONE[@]}"
printf '\ne2e: all %d checks passed in %ss\n' "${#DONE[@]}" "$(elapsed "$T0")"

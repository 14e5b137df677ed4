# shellcheck shell=bash
# web-prober on the native stack (sourced by scripts/local-up.sh, after
# scripts/lib/local-stack.sh and scripts/lib/native/services.sh): its targets file, and
# probe-site's certificate as its extra CA.

# The targets of the native stack: one of each kind of answer, so that every panel of the Web
# probes dashboard has data. Written only when missing: edits survive restarts.
write_probe_targets() {
  mkdir -p "$(dirname "$1")"
  cat >"$1" <<EOF
# web-prober's targets on the native stack, written by scripts/local-up.sh when missing (delete
# it to get this one back, with the ports of the day). Edit it freely: web-prober applies a
# change within PROBE_RELOAD_SECS (2 s), or at once on kill -HUP \$(cat $RUN/web-prober.pid).
# An invalid file is rejected whole and the targets loaded before keep running.
#
# One of each kind of answer, so that every panel of the Web probes dashboard has data. The
# failing ones fail on purpose: FleetProbeFailing fires for them after 5 minutes (critical
# after 15); delete them for a quiet stack.
targets:
  # ok: Prometheus' own health endpoint, its body checked
  - url: http://127.0.0.1:$PROMETHEUS_PORT/-/healthy
    regex: Healthy
  # ok over https: probe-site's self-signed certificate, trusted through PROBE_CA_FILE
  # (localhost is a name: the check has a dns phase)
  - url: https://localhost:$PROBE_SITE_PORT/health
    regex: '"status":\\s*"ok"'
    timeout_secs: 5
  # regex_mismatch: probe-site serves version 1.4.2
  - url: https://127.0.0.1:$PROBE_SITE_PORT/version
    regex: '"version":\\s*"2\\.'
  # http_status: 404 (2xx expected)
  - url: https://127.0.0.1:$PROBE_SITE_PORT/missing
  # connect_error: nothing listens on port 1
  - url: http://127.0.0.1:1/

# More, as examples (any field can go under a top-level defaults: too):
#  - url: https://example.com/
#    method: HEAD
#    expect_status: [200, "3xx"]
#    headers: { User-Agent: fleetpulse }
#    interval_secs: 30
#    insecure_skip_verify: false
EOF
}
start_web_prober() {
  local targets=${PROBE_TARGETS_FILE:-$STATE/web-prober/targets.yaml} ca=()
  if [ -z "${PROBE_TARGETS_FILE:-}" ] && [ ! -f "$targets" ]; then
    write_probe_targets "$targets"
    say "web-prober: targets in $targets"
  fi
  if [ -z "${PROBE_CA_FILE:-}" ] && [ -s "$PROBE_SITE_DIR/cert.pem" ]; then
    ca=(PROBE_CA_FILE="$PROBE_SITE_DIR/cert.pem")
  fi
  start_service web-prober "$WEB_PROBER_PORT" PROBE_TARGETS_FILE="$targets" "${ca[@]}"
}

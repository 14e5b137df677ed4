# shellcheck shell=bash
# probe-site for the native stack (sourced by scripts/local-up.sh, after
# scripts/lib/local-stack.sh): scripts/lib/probe_site.py, https on 127.0.0.1 with a
# self-signed certificate for localhost and 127.0.0.1 (made by openssl, valid 30 days, renewed
# a week before it expires), one of web-prober's targets.
PROBE_SITE_DIR=$STATE/probe-site
ensure_probe_site_cert() {
  local dir=$PROBE_SITE_DIR
  if [ -s "$dir/cert.pem" ] && [ -s "$dir/key.pem" ] &&
    openssl x509 -checkend $((7 * 86400)) -noout -in "$dir/cert.pem" >/dev/null 2>&1; then
    return
  fi
  mkdir -p "$dir"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
    -keyout "$dir/key.pem" -out "$dir/cert.pem" >>"$LOGS/probe-site.log" 2>&1 ||
    { log_tail probe-site >&2; die "openssl could not make probe-site's certificate"; }
  chmod 600 "$dir/key.pem"
  say "probe-site: new self-signed certificate $dir/cert.pem (30 days)"
  if pid_of web-prober >/dev/null; then
    warn "web-prober trusts the previous certificate: restart it (scripts/local-down.sh web-prober && scripts/local-up.sh web-prober)"
  fi
}
ensure_probe_site() {
  pid_of probe-site >/dev/null && return
  if ! command -v openssl >/dev/null; then
    warn "no openssl: no probe-site, web-prober's https targets will fail (apt-get install openssl)"
    return
  fi
  ensure_probe_site_cert
  ensure_port_free probe-site "$PROBE_SITE_PORT" FLEET_PROBE_SITE_PORT
  start_detached probe-site "$(python3 -c 'import sys; print(sys.executable)')" -u \
    "$REPO/scripts/lib/probe_site.py" "$PROBE_SITE_PORT" "$PROBE_SITE_DIR/cert.pem" "$PROBE_SITE_DIR/key.pem"
  local deadline=$(($(now) + 10))
  until curl -fsS -o /dev/null --max-time 2 --cacert "$PROBE_SITE_DIR/cert.pem" \
    "https://localhost:$PROBE_SITE_PORT/health" 2>/dev/null; do
    pid_of probe-site >/dev/null || { log_tail probe-site >&2; die "probe-site exited"; }
    [ "$(now)" -lt "$deadline" ] || { log_tail probe-site >&2; die "probe-site not answering on $PROBE_SITE_PORT after 10 s"; }
    sleep 0.1
  done
}

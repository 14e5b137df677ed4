#!/usr/bin/env bash
# Turns TLS on in the local PostgreSQL cluster for the tests: a test CA and a server certificate
# for DNS name `localhost` only (so that connecting to 127.0.0.1 with sslmode=verify-full shows
# a host name mismatch), both in /etc/fleetpulse-test-tls/ (not under /etc/postgresql, whose
# folders are clusters), made once. Plain connections keep working (ssl = on only adds TLS).
# Idempotent; run by scripts/test.sh as root.
#
#   scripts/pg-test-tls.sh [ADMIN_URL]     # default postgres://postgres@127.0.0.1:5432/postgres
set -euo pipefail
URL=${1:-postgres://postgres@127.0.0.1:5432/postgres}
DIR=/etc/fleetpulse-test-tls
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! as_root test -s "$DIR/server.key"; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=Fleetpulse test CA" \
    -keyout "$work/ca.key" -out "$work/ca.pem" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
    -keyout "$work/server.key" -out "$work/server.csr" 2>/dev/null
  printf 'subjectAltName=DNS:localhost\n' >"$work/ext"
  openssl x509 -req -in "$work/server.csr" -CA "$work/ca.pem" -CAkey "$work/ca.key" \
    -CAcreateserial -days 3650 -extfile "$work/ext" -out "$work/server.pem" 2>/dev/null
  as_root mkdir -p "$DIR"
  as_root install -m 0644 "$work/ca.pem" "$DIR/ca.pem"
  as_root install -m 0644 "$work/server.pem" "$DIR/server.pem"
  # PostgreSQL refuses a key others can read; it must be the server's own.
  as_root install -m 0600 -o postgres -g postgres "$work/server.key" "$DIR/server.key"
fi
if [ "$(psql "$URL" -XqAtc 'SHOW ssl')" != on ] ||
  [ "$(psql "$URL" -XqAtc 'SHOW ssl_cert_file')" != "$DIR/server.pem" ]; then
  psql "$URL" -Xq -v ON_ERROR_STOP=1 \
    -c "ALTER SYSTEM SET ssl_cert_file = '$DIR/server.pem'" \
    -c "ALTER SYSTEM SET ssl_key_file = '$DIR/server.key'" \
    -c "ALTER SYSTEM SET ssl = on" \
    -c "SELECT pg_reload_conf()" >/dev/null
  # The reload is asynchronous: wait until a TLS connection is accepted.
  for _ in $(seq 1 50); do
    psql "postgres://postgres@localhost:5432/postgres?sslmode=verify-full&sslrootcert=$DIR/ca.pem" \
      -XqAtc 'SELECT 1' >/dev/null 2>&1 && break
    sleep 0.1
  done
fi
psql "postgres://postgres@localhost:5432/postgres?sslmode=verify-full&sslrootcert=$DIR/ca.pem" \
  -XqAtc 'SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()' | grep -qx t ||
  { echo "pg-test-tls.sh: the server does not accept TLS with $DIR/ca.pem" >&2; exit 1; }
echo "PostgreSQL: TLS on (CA $DIR/ca.pem, certificate for localhost)"

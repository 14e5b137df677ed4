#!/usr/bin/env bash
# The PostgreSQL roles of the compose stack, least privilege first. The postgres image runs
# this once, on a new data volume (/docker-entrypoint-initdb.d/10-roles.sh). It is idempotent:
# on an existing volume, or after changing a password in .env (rotation), run it again with
#   docker compose exec postgres /docker-entrypoint-initdb.d/10-roles.sh
# then `docker compose up -d` the services whose password changed.
#
#   fleetpulse_owner       LOGIN, owns the schema and every table: runs the migrations (the
#                          aggregator's DATABASE_MIGRATION_URL, used at start only)
#   fleetpulse_writer      NOLOGIN group: what the flush needs (granted by migration 0007)
#   fleetpulse_reader      NOLOGIN group: SELECT on every table (migration 0007)
#   fleetpulse_aggregator  LOGIN, in fleetpulse_writer: the aggregator's DATABASE_URL
#   fleetpulse_grafana     LOGIN, in fleetpulse_reader: Grafana's PostgreSQL data source
# POSTGRES_USER stays the superuser the image made; no service uses it.
set -euo pipefail
: "${POSTGRES_USER:?}" "${POSTGRES_DB:?}"
: "${FLEET_DB_OWNER_PASSWORD:?set FLEET_DB_OWNER_PASSWORD in .env}"
: "${FLEET_DB_WRITER_PASSWORD:?set FLEET_DB_WRITER_PASSWORD in .env}"
: "${FLEET_DB_READER_PASSWORD:?set FLEET_DB_READER_PASSWORD in .env}"

psql -v ON_ERROR_STOP=1 -X -q --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v db="$POSTGRES_DB" -v owner_password="$FLEET_DB_OWNER_PASSWORD" \
  -v writer_password="$FLEET_DB_WRITER_PASSWORD" -v reader_password="$FLEET_DB_READER_PASSWORD" <<'SQL'
SET client_min_messages = warning;
SELECT format('CREATE ROLE %I', name)
  FROM unnest(ARRAY['fleetpulse_owner', 'fleetpulse_writer', 'fleetpulse_reader',
                    'fleetpulse_aggregator', 'fleetpulse_grafana']) AS name
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = name) \gexec
ALTER ROLE fleetpulse_owner LOGIN PASSWORD :'owner_password';
ALTER ROLE fleetpulse_writer NOLOGIN;
ALTER ROLE fleetpulse_reader NOLOGIN;
ALTER ROLE fleetpulse_aggregator LOGIN PASSWORD :'writer_password';
ALTER ROLE fleetpulse_grafana LOGIN PASSWORD :'reader_password';
GRANT fleetpulse_writer TO fleetpulse_aggregator;
GRANT fleetpulse_reader TO fleetpulse_grafana;
-- The owner owns the schema, and the tables an older stack made as the superuser.
ALTER SCHEMA public OWNER TO fleetpulse_owner;
SELECT format('ALTER TABLE public.%I OWNER TO fleetpulse_owner', tablename)
  FROM pg_tables WHERE schemaname = 'public' AND tableowner <> 'fleetpulse_owner' \gexec
SQL
echo "roles.sh: fleetpulse_owner, fleetpulse_aggregator (writer), fleetpulse_grafana (reader) ready in $POSTGRES_DB"

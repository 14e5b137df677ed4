#!/usr/bin/env bash
# The storage benchmark (not a test; docs/benchmarks.md#storage): on a database of its own,
# migrated with the aggregator's migrations, it fills the partitioned tables with rows shaped
# like the fleet's and prints
#   1. bytes on disk per row of every table (heap, indexes and TOAST, after VACUUM), the
#      numbers docs/operations.md#storage computes a fleet's disk from;
#   2. a 30-day history query ("mean CPU per host per hour", 20 hosts) on the hourly rollups
#      against the same query on the minute windows, best of 5 runs each.
#
#   scripts/bench-storage.sh                 # 1,000,000 rows per raw table; about a minute
#   BENCH_ROWS=200000 scripts/bench-storage.sh
#
# Needs a PostgreSQL server (TEST_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/postgres)
# and psql; the database it makes is dropped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
ROWS=${BENCH_ROWS:-1000000}
[[ $ROWS =~ ^[1-9][0-9]{3,8}$ ]] || { echo "bench-storage.sh: invalid value '$ROWS' for BENCH_ROWS: expected a whole number from 1000" >&2; exit 2; }
ADMIN=${TEST_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}
DB=bench_storage_$$
URL=${ADMIN%/*}/$DB
psql -X -q "$ADMIN" -c "CREATE DATABASE $DB"
trap 'psql -X -q "$ADMIN" -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)"' EXIT

run() { psql -X -q -v ON_ERROR_STOP=1 "$URL" "$@"; }
{
  # What the aggregator's migrate() does first.
  echo "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
        applied_at timestamptz NOT NULL DEFAULT now());"
  cat services/aggregator/migrations/*.sql
} | run >/dev/null

echo "filling: $ROWS rows per raw table, 30 days of windows for 20 hosts x 5 metrics, 50 URLs"
start=$(date +%s.%N)
run <<SQL >/dev/null
SET client_min_messages = warning;
SELECT fleet_create_partitions(now() - interval '31 days', now());
-- Raw rows over the last day, shaped like the fleet's: long calls with a UUID and two
-- numbers, host values of a host-metrics sample, check results of web-prober.
INSERT INTO long_calls (topic, topic_id, partition, kafka_offset, call_id, caller, callee,
                        start_time, duration_ms)
SELECT 'calls', 8234567890123, (g % 6)::int, g, gen_random_uuid(),
       '+4179' || lpad((g * 7919 % 10000000)::text, 7, '0'),
       '+4178' || lpad((g * 104729 % 10000000)::text, 7, '0'),
       now() - (g % 86400) * interval '1 s', 60000 + g % 600000
FROM generate_series(1::bigint, $ROWS) g;
INSERT INTO system_metrics (time, host, metric, device, value, unit)
SELECT now() - (g / 20) * interval '10 s', 'host-' || lpad((g % 20)::text, 2, '0'),
       (ARRAY['cpu_usage','memory_usage','swap_usage','load1','filesystem_usage'])[1 + g % 5],
       CASE WHEN g % 5 = 4 THEN '/var/lib/postgresql' ELSE '' END,
       random() * 100, (ARRAY['ratio','ratio','ratio','','ratio'])[1 + g % 5]
FROM generate_series(1::bigint, $ROWS) g;
INSERT INTO probe_results (time, url, method, result, status, response_time_seconds,
    dns_seconds, connect_seconds, tls_seconds, ttfb_seconds, transfer_seconds, body_bytes,
    regex_match, redirects, tls_version, cert_not_after, error)
SELECT now() - (g / 50) * interval '1 s', 'https://service-' || g % 50 || '.example.test/health',
       'GET', 'ok', 200, 0.05 + random() / 10, 0.001, 0.002, 0.01, 0.03, 0.001, 1024 + g % 100,
       true, 0, 'TLSv1.3', now() + interval '60 days', NULL
FROM generate_series(1::bigint, $ROWS) g;
-- 30 days of minute windows for 20 hosts x 5 metrics, their hours as the flush writes them.
INSERT INTO host_metrics_1m (host, metric, device, window_start, window_secs, unit, samples,
                             sum, min, max, last_time, last)
SELECT 'host-' || lpad(h::text, 2, '0'), m, '', w, 60, 'ratio', 6, 6 * v, v, v, w + interval '50 s', v
FROM generate_series(0, 19) h,
     unnest(ARRAY['cpu_usage','memory_usage','swap_usage','load1','filesystem_usage']) m,
     generate_series(date_trunc('minute', now()) - interval '30 days', now(), interval '1 minute') w,
     LATERAL (SELECT random() AS v) r;
INSERT INTO host_metrics_1h (host, metric, device, window_start, window_secs, unit, samples,
                             sum, min, max, last_time, last)
SELECT host, metric, device, date_bin('1 hour', window_start, timestamptz 'epoch'), 3600,
       min(unit), sum(samples), sum(sum), min(min), max(max), max(last_time), max(last)
FROM host_metrics_1m GROUP BY 1, 2, 3, 4;
INSERT INTO probe_stats_1m (url, window_start, window_secs, checks, ok, timeouts, dns_errors,
    connect_errors, tls_errors, http_status_errors, regex_mismatches, body_errors,
    latency_sum_seconds, latency_min_seconds, latency_max_seconds)
SELECT 'https://service-' || u || '.example.test/health', w, 60, 6, 6, 0, 0, 0, 0, 0, 0, 0,
       0.6, 0.05, 0.15
FROM generate_series(0, 49) u,
     generate_series(date_trunc('minute', now()) - interval '1 day', now(), interval '1 minute') w;
INSERT INTO call_stats_1m (window_start, window_secs, calls, duration_sum_ms, duration_min_ms,
                           duration_max_ms, long_calls)
SELECT w, 60, 3600, 3600 * 90000, 1000, 600000, 2000
FROM generate_series(date_trunc('minute', now()) - interval '1 day', now(), interval '1 minute') w;
VACUUM ANALYZE;
SQL
echo "filled in $(python3 -c "print(round($(date +%s.%N) - $start, 1))") s"
echo
echo "| table | rows | bytes on disk | bytes per row |"
echo "|---|---|---|---|"
run -At -F ' | ' <<'SQL' | sed 's/^/| /; s/$/ |/'
SELECT p.parent, to_char(c.n, 'FM999,999,999'), to_char(sum(p.bytes), 'FM999,999,999,999'),
       round(sum(p.bytes) / nullif(c.n, 0))
FROM fleet_partitions p
CROSS JOIN LATERAL (SELECT (xpath('/row/n/text()',
    query_to_xml(format('SELECT count(*) AS n FROM %I', p.parent), false, true, '')))[1]::text::bigint AS n) c
WHERE p.parent IN ('long_calls', 'system_metrics', 'probe_results', 'host_metrics_1m',
                   'host_metrics_1h', 'probe_stats_1m', 'call_stats_1m')
GROUP BY p.parent, c.n ORDER BY p.parent;
SQL

# "Mean CPU per host per hour over 30 days", as the hosts dashboard asks it past two days.
QUERY="SELECT date_bin('1 hour', window_start, timestamptz 'epoch') AS t, host,
       sum(sum) / sum(samples) AS mean, max(max) AS peak
FROM host_metrics_TABLE
WHERE window_start BETWEEN now() - interval '30 days' AND now() AND metric = 'cpu_usage'
  AND device = ''
GROUP BY 1, 2 ORDER BY 1, 2"
best() {
  local table=$1 best=
  for _ in 1 2 3 4 5; do
    ms=$(run -At -c "EXPLAIN (ANALYZE, FORMAT JSON) ${QUERY//TABLE/$table}" |
         python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["Execution Time"])')
    best=$(python3 -c "print(min(float('${best:-inf}'), $ms))")
  done
  rows=$(run -At -c "SELECT count(*) FROM (${QUERY//TABLE/$table}) q")
  echo "| host_metrics_$table | $rows | $best |"
}
echo
echo "30 days of mean CPU per host per hour (20 hosts), best of 5:"
echo
echo "| read from | rows returned | ms |"
echo "|---|---|---|"
best 1h
best 1m

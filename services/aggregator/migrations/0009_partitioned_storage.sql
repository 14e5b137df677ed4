-- Storage that runs for years on a bounded disk (docs/operations.md#storage):
--
-- - every table that grows with the stream is range-partitioned by time (native partitioning,
--   no extension), and there is no default partition: a row only lands in a partition made
--   for its time, so a maintenance that stopped shows as missing partitions (made before the
--   write by the flush, and alerted on), never as rows piling up where retention cannot reach;
-- - each window table gains an hourly twin (`*_1h`, the same columns), written by the same
--   flush transaction as the minutes, so it is exact at every commit;
-- - retention drops whole partitions per tier (raw, 1m, 1h), never rows.
--
-- Upgrading in place: each table of the previous schema is renamed `<table>_legacy` and a
-- partitioned table takes its name. This is catalog work only, done in the start-up
-- transaction; the aggregator's upgrade task then moves the legacy rows over in short
-- transactions of 128 pages each (newest first, folding windows into what the
-- flush wrote meanwhile, and into the hourly twins) and drops each legacy table once empty.
-- An empty legacy table (a new database) is dropped here at once.

-- What is partitioned: the parent, its partition key, the width of a partition, and the
-- retention tier that drops it.
CREATE TABLE fleet_partitioned (
    parent text PRIMARY KEY,
    key    text NOT NULL,
    width  text NOT NULL CHECK (width IN ('day', 'month')),
    tier   text NOT NULL CHECK (tier IN ('raw', '1m', '1h'))
);

-- Renames a table of the previous schema and its indexes out of the way (index names are
-- unique in the schema, and the new tables want the same ones); drops it if empty.
CREATE FUNCTION pg_temp.set_aside(t text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    i text;
    empty boolean;
BEGIN
    EXECUTE format('SELECT NOT EXISTS (SELECT FROM %I)', t) INTO empty;
    IF empty THEN
        EXECUTE format('DROP TABLE %I', t);
        RETURN;
    END IF;
    FOR i IN SELECT indexrelid::regclass::text FROM pg_index WHERE indrelid = t::regclass LOOP
        EXECUTE format('ALTER INDEX %I RENAME TO %I', i, i || '_legacy');
    END LOOP;
    EXECUTE format('ALTER TABLE %I RENAME TO %I', t, t || '_legacy');
END
$$;

-- The alerts' ids continue where they were: the sequence outlives the legacy table.
ALTER SEQUENCE alerts_id_seq OWNED BY NONE;

SELECT pg_temp.set_aside(t) FROM unnest(ARRAY['long_calls', 'system_metrics', 'probe_results',
    'alerts', 'call_stats_1m', 'host_metrics_1m', 'probe_stats_1m']) AS t;

-- Raw tables: one row per event, one partition per day. The columns are those of the previous
-- schema, in its order. A partitioned table's unique keys include its partition key: a long
-- call's key keeps its message (topic incarnation, partition, offset) and adds its start time,
-- which the same message always carries.
CREATE TABLE long_calls (
    topic        text        NOT NULL,
    partition    integer     NOT NULL,
    kafka_offset bigint      NOT NULL,
    call_id      uuid,
    caller       text        NOT NULL,
    callee       text        NOT NULL,
    start_time   timestamptz NOT NULL,
    duration_ms  bigint      NOT NULL,
    stored_at    timestamptz NOT NULL DEFAULT now(),
    topic_id     bigint      NOT NULL DEFAULT 0,
    PRIMARY KEY (partition, kafka_offset, topic_id, topic, start_time)
) PARTITION BY RANGE (start_time);
CREATE INDEX long_calls_start_time_brin ON long_calls USING brin (start_time);

CREATE TABLE system_metrics (
    time   timestamptz      NOT NULL,
    host   text             NOT NULL,
    metric text             NOT NULL,
    device text             NOT NULL DEFAULT '',
    value  double precision NOT NULL,
    unit   text             NOT NULL
) PARTITION BY RANGE (time);
CREATE INDEX system_metrics_series ON system_metrics (host, metric, device, time);
CREATE INDEX system_metrics_time ON system_metrics USING brin (time);

CREATE TABLE probe_results (
    time                  timestamptz      NOT NULL,
    url                   text             NOT NULL,
    method                text             NOT NULL,
    result                text             NOT NULL,
    status                integer,
    response_time_seconds double precision NOT NULL,
    dns_seconds           double precision,
    connect_seconds       double precision,
    tls_seconds           double precision,
    ttfb_seconds          double precision,
    transfer_seconds      double precision,
    body_bytes            bigint           NOT NULL,
    regex_match           boolean,
    redirects             integer          NOT NULL,
    tls_version           text,
    cert_not_after        timestamptz,
    error                 text
) PARTITION BY RANGE (time);
CREATE INDEX probe_results_url_time ON probe_results (url, time);
CREATE INDEX probe_results_time ON probe_results USING brin (time);

-- Alerts are few and their history is the point: monthly partitions, kept as long as the
-- hourly tier.
CREATE TABLE alerts (
    id            bigint      NOT NULL DEFAULT nextval('alerts_id_seq'),
    received_at   timestamptz NOT NULL DEFAULT now(),
    receiver      text        NOT NULL,
    status        text        NOT NULL CHECK (status IN ('firing', 'resolved')),
    alertname     text        NOT NULL,
    severity      text,
    service       text,
    fingerprint   text        NOT NULL,
    labels        jsonb       NOT NULL,
    annotations   jsonb       NOT NULL,
    starts_at     timestamptz NOT NULL,
    ends_at       timestamptz,
    generator_url text        NOT NULL,
    PRIMARY KEY (id, received_at)
) PARTITION BY RANGE (received_at);
ALTER SEQUENCE alerts_id_seq OWNED BY alerts.id;
CREATE INDEX alerts_received_at ON alerts (received_at);
CREATE INDEX alerts_alertname_received_at ON alerts (alertname, received_at);

-- Window tables: one partition per day for the windows of AGG_WINDOW_SECS, one per month for
-- their hourly twins.
CREATE TABLE call_stats_1m (
    window_start    timestamptz NOT NULL,
    window_secs     integer     NOT NULL,
    calls           bigint      NOT NULL,
    duration_sum_ms bigint      NOT NULL,
    duration_min_ms bigint      NOT NULL,
    duration_max_ms bigint      NOT NULL,
    long_calls      bigint      NOT NULL,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (window_start, window_secs)
) PARTITION BY RANGE (window_start);

CREATE TABLE host_metrics_1m (
    host         text             NOT NULL,
    metric       text             NOT NULL,
    device       text             NOT NULL,
    window_start timestamptz      NOT NULL,
    window_secs  integer          NOT NULL,
    unit         text             NOT NULL,
    samples      bigint           NOT NULL,
    sum          double precision NOT NULL,
    min          double precision NOT NULL,
    max          double precision NOT NULL,
    last_time    timestamptz      NOT NULL,
    last         double precision NOT NULL,
    updated_at   timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (host, metric, device, window_start, window_secs)
) PARTITION BY RANGE (window_start);
CREATE INDEX host_metrics_1m_window ON host_metrics_1m (window_start);

CREATE TABLE probe_stats_1m (
    url                 text             NOT NULL,
    window_start        timestamptz      NOT NULL,
    window_secs         integer          NOT NULL,
    checks              bigint           NOT NULL,
    ok                  bigint           NOT NULL,
    timeouts            bigint           NOT NULL,
    dns_errors          bigint           NOT NULL,
    connect_errors      bigint           NOT NULL,
    tls_errors          bigint           NOT NULL,
    http_status_errors  bigint           NOT NULL,
    regex_mismatches    bigint           NOT NULL,
    body_errors         bigint           NOT NULL,
    latency_sum_seconds double precision NOT NULL,
    latency_min_seconds double precision NOT NULL,
    latency_max_seconds double precision NOT NULL,
    updated_at          timestamptz      NOT NULL DEFAULT now(),
    PRIMARY KEY (url, window_start, window_secs)
) PARTITION BY RANGE (window_start);
CREATE INDEX probe_stats_1m_window ON probe_stats_1m (window_start);

CREATE TABLE call_stats_1h (LIKE call_stats_1m INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (window_start, window_secs)) PARTITION BY RANGE (window_start);
CREATE TABLE host_metrics_1h (LIKE host_metrics_1m INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (host, metric, device, window_start, window_secs))
    PARTITION BY RANGE (window_start);
CREATE INDEX host_metrics_1h_window ON host_metrics_1h (window_start);
CREATE TABLE probe_stats_1h (LIKE probe_stats_1m INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
    PRIMARY KEY (url, window_start, window_secs)) PARTITION BY RANGE (window_start);
CREATE INDEX probe_stats_1h_window ON probe_stats_1h (window_start);

INSERT INTO fleet_partitioned (parent, key, width, tier) VALUES
    ('long_calls', 'start_time', 'day', 'raw'),
    ('system_metrics', 'time', 'day', 'raw'),
    ('probe_results', 'time', 'day', 'raw'),
    ('call_stats_1m', 'window_start', 'day', '1m'),
    ('host_metrics_1m', 'window_start', 'day', '1m'),
    ('probe_stats_1m', 'window_start', 'day', '1m'),
    ('alerts', 'received_at', 'month', '1h'),
    ('call_stats_1h', 'window_start', 'month', '1h'),
    ('host_metrics_1h', 'window_start', 'month', '1h'),
    ('probe_stats_1h', 'window_start', 'month', '1h');

-- Every partition of every partitioned table, with its bounds and size: what maintenance
-- drops by, what the metrics show, what an operator reads.
CREATE VIEW fleet_partitions AS
SELECT p.parent, c.relname::text AS partition, p.tier, p.width,
       b[1]::timestamptz AS lower, b[2]::timestamptz AS upper,
       pg_total_relation_size(c.oid) AS bytes
FROM fleet_partitioned p
JOIN pg_inherits i ON i.inhparent = p.parent::regclass
JOIN pg_class c ON c.oid = i.inhrelid
CROSS JOIN LATERAL regexp_match(pg_get_expr(c.relpartbound, c.oid),
    'FROM \(''([^'']+)''\) TO \(''([^'']+)''\)') AS b;

-- Makes the missing partitions of `parents` (all when NULL) covering [lo, hi]; returns how
-- many it made. Partitions are named <parent>_pYYYYMMDD (day) or <parent>_pYYYYMM (month), in
-- UTC. Made as a table, then attached: ATTACH takes a lock on the parent that lets flushes and
-- readers go on (CREATE TABLE ... PARTITION OF would stop both). One maker at a time (an
-- advisory lock), so that several aggregators never race. SECURITY DEFINER: the flush's role
-- (fleetpulse_writer) may make a missing partition, as the owner, and nothing else.
CREATE FUNCTION fleet_create_partitions(lo timestamptz, hi timestamptz, parents text[] DEFAULT NULL)
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER
SET search_path = public, pg_temp SET TimeZone = 'UTC' AS $$
DECLARE
    t fleet_partitioned;
    start timestamptz;
    stop timestamptz;
    name text;
    made integer := 0;
BEGIN
    IF lo IS NULL OR hi IS NULL OR hi < lo OR NOT isfinite(lo) OR NOT isfinite(hi) THEN
        RETURN 0;
    END IF;
    -- A bound on what one call makes (ten years of days), against a runaway span.
    IF hi - lo > interval '3660 days' THEN
        RAISE EXCEPTION 'fleet_create_partitions: % to % is more than ten years', lo, hi;
    END IF;
    PERFORM pg_advisory_xact_lock(7379242316088833390);
    FOR t IN SELECT * FROM fleet_partitioned
             WHERE parents IS NULL OR parent = ANY(parents) ORDER BY parent LOOP
        start := date_trunc(t.width, lo);
        WHILE start <= hi LOOP
            stop := start + ('1 ' || t.width)::interval;
            name := t.parent || '_p'
                || to_char(start, CASE t.width WHEN 'day' THEN 'YYYYMMDD' ELSE 'YYYYMM' END);
            IF to_regclass(name) IS NULL THEN
                EXECUTE format('CREATE TABLE %I (LIKE %I INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                               name, t.parent);
                EXECUTE format('ALTER TABLE %I ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                               t.parent, name, start, stop);
                made := made + 1;
            END IF;
            start := stop;
        END LOOP;
    END LOOP;
    RETURN made;
END
$$;
REVOKE ALL ON FUNCTION fleet_create_partitions(timestamptz, timestamptz, text[]) FROM PUBLIC;

-- Drops the partitions of `tier` wholly older than `before` (their upper bound at or before
-- it); returns their names. Whole tables, never rows. Only the owner may.
CREATE FUNCTION fleet_drop_partitions(drop_tier text, before timestamptz)
RETURNS SETOF text LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
DECLARE
    name text;
BEGIN
    -- The makers' lock: two instances' passes drop one after the other, the second finding
    -- nothing left to drop.
    PERFORM pg_advisory_xact_lock(7379242316088833390);
    FOR name IN SELECT partition FROM fleet_partitions
                WHERE tier = drop_tier AND upper <= before ORDER BY lower LOOP
        EXECUTE format('DROP TABLE %I', name);
        RETURN NEXT name;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION fleet_drop_partitions(text, timestamptz) FROM PUBLIC;

-- The grants of 0007 went with the renamed tables: the new ones get theirs.
DO $$
BEGIN
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'fleetpulse_writer') THEN
        GRANT SELECT, INSERT, UPDATE ON call_stats_1m, host_metrics_1m, probe_stats_1m,
            call_stats_1h, host_metrics_1h, probe_stats_1h TO fleetpulse_writer;
        GRANT INSERT ON long_calls, system_metrics, probe_results, alerts TO fleetpulse_writer;
        GRANT SELECT ON fleet_partitioned, fleet_partitions TO fleetpulse_writer;
        GRANT EXECUTE ON FUNCTION fleet_create_partitions(timestamptz, timestamptz, text[])
            TO fleetpulse_writer;
    END IF;
    IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'fleetpulse_reader') THEN
        GRANT SELECT ON ALL TABLES IN SCHEMA public TO fleetpulse_reader;
    END IF;
END
$$;

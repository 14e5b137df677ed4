-- Host metrics: every value of every sample (the demo's `system_metrics`, with a real time
-- type, double precision values, the unit and the device), and per-window aggregates.

CREATE TABLE system_metrics (
    time   timestamptz      NOT NULL,
    host   text             NOT NULL,
    metric text             NOT NULL,
    device text             NOT NULL DEFAULT '',
    value  double precision NOT NULL,
    unit   text             NOT NULL
);
-- "This host's metric over this range" is the query dashboards make; BRIN keeps time-range
-- scans over the whole table cheap to maintain on an append-only table.
CREATE INDEX system_metrics_series ON system_metrics (host, metric, device, time);
CREATE INDEX system_metrics_time ON system_metrics USING brin (time);

-- Tumbling event-time windows per series. Flushes add their deltas (samples and sums add,
-- min/max fold, `last` keeps the value with the latest time), so late samples merge.
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
);
CREATE INDEX host_metrics_1m_window ON host_metrics_1m (window_start);

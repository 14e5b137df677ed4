-- Web checks: every result (the demo's `web_health_metrics` columns: time, url, status,
-- response time, regex match; plus the result, the phases and TLS details), and per-window
-- statistics per URL.

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
);
CREATE INDEX probe_results_url_time ON probe_results (url, time);
CREATE INDEX probe_results_time ON probe_results USING brin (time);

-- Tumbling event-time windows per URL; flushes add their deltas. One counter per result.
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
);
CREATE INDEX probe_stats_1m_window ON probe_stats_1m (window_start);

-- Call pipeline: per-window call statistics, long calls, the consumer offsets that make the
-- flushes exactly-once, and all-time totals.

-- Next offset to read per (consumer group, topic, partition). Written in the same transaction
-- as the data it covers; the aggregator resumes from here, not from Kafka's committed offsets.
CREATE TABLE consumer_offsets (
    group_id    text        NOT NULL,
    topic       text        NOT NULL,
    partition   integer     NOT NULL,
    next_offset bigint      NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (group_id, topic, partition)
);

-- Tumbling event-time windows. Flushes add their deltas (calls and sums add, min/max fold),
-- so late events merge into the window they belong to.
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
);

-- Calls longer than the threshold, one row per Kafka message (its position is the key, so a
-- message can never be stored twice).
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
    PRIMARY KEY (topic, partition, kafka_offset)
);
CREATE INDEX long_calls_start_time ON long_calls (start_time);

-- All-time totals, one row, updated by every flush: what the old demo's counters lost on
-- restart.
CREATE TABLE call_totals (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    calls       bigint  NOT NULL,
    duration_ms bigint  NOT NULL,
    long_calls  bigint  NOT NULL
);
INSERT INTO call_totals (calls, duration_ms, long_calls) VALUES (0, 0, 0);

-- Which host samples are stored, by host and sample time. host-metrics re-sends a sample whose
-- delivery timed out, and one that Kafka had in fact written then arrives twice, as two
-- messages: the flush claims each sample's key here first and stores only the samples it could
-- claim. Time first: rows arrive in time order and are pruned by time (older than the
-- aggregator's AGG_MAX_LATENESS_SECS, when a re-sent copy would be rejected anyway).
CREATE TABLE host_samples_seen (
    time timestamptz NOT NULL,
    host text        NOT NULL,
    PRIMARY KEY (time, host)
);
-- Samples stored before this table existed are not in it; a copy of one of those re-sent
-- after the upgrade would be stored again (within the lateness limit only).

-- Alertmanager notifications received on POST /alerts: one row per alert per notification
-- (a repeated or resolved notification adds a row; the history is the point).
CREATE TABLE alerts (
    id            bigserial   PRIMARY KEY,
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
    generator_url text        NOT NULL
);
CREATE INDEX alerts_received_at ON alerts (received_at);
CREATE INDEX alerts_alertname_received_at ON alerts (alertname, received_at);

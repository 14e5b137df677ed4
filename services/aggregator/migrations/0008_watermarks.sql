-- Each partition's watermark: the latest event time read from it up to next_offset, in
-- milliseconds since the epoch (NULL: no valid event yet). Lateness is judged against it, not
-- the clock, so a backlog replayed after a long outage is judged as it was live; it is stored
-- with the offset, in the same transaction, so a restart judges every message as the first
-- read did. Rows written before this migration start with none (nothing is late until the
-- partition's next event).
ALTER TABLE consumer_offsets ADD COLUMN watermark_ms bigint;

-- Offsets the processor skipped because their records were gone (ON_DATA_LOSS=continue): the
-- broker lost data, the topic was recreated, retention removed records before they were read,
-- or offsets were never delivered between two records. Each row is written in the same
-- transaction as the first batch after the gap. from_offset is where reading was expected to
-- go on, to_offset where it did; after a log that started over, to_offset < from_offset.
CREATE TABLE stream_gaps (
    id              bigserial   PRIMARY KEY,
    consumer_group  text        NOT NULL,
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    from_offset     bigint      NOT NULL,
    to_offset       bigint      NOT NULL,
    detected_at     timestamptz NOT NULL,
    reason          text        NOT NULL
        CHECK (reason IN ('offset_beyond_log_end', 'offset_before_log_start', 'offsets_missing_in_log'))
);
-- GET /batches: the gaps of the last day.
CREATE INDEX stream_gaps_detected_at ON stream_gaps (detected_at DESC);
-- The API reads it with its read-only role (see V3).
GRANT SELECT ON stream_gaps TO spine_reader;

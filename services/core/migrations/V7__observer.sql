-- What the observers (GET /batches, spine-tui, the live page) need to tell whether the
-- processor is alive, keeping up and fresh (docs/contracts.md, "Tables").

-- Per batch, written in the batch's own transaction:
--   max_event_time        the newest event_time among the events the batch inserted
--   max_broker_timestamp  the newest broker (record) timestamp among the records it read
--   input_rate            records/s that arrived on its partitions since the previous batch
-- (commit lag and processing rate are computed from these and the existing columns on read.)
ALTER TABLE stream_batches
    ADD COLUMN max_event_time       timestamptz,
    ADD COLUMN max_broker_timestamp timestamptz,
    ADD COLUMN input_rate           double precision;

-- One row per live processor replica, refreshed every trigger (at least every 5 s, at most
-- every 1 s) in a transaction of its own, so a reader can tell a processor that is alive but
-- idle from one that is gone. A replica deletes its row when it stops cleanly; rows older
-- than a day are deleted by any replica.
CREATE TABLE processor_heartbeats (
    replica_id          text        PRIMARY KEY,
    consumer_group      text        NOT NULL,
    topic               text        NOT NULL,
    assigned_partitions integer[]   NOT NULL,
    trigger_interval_ms bigint      NOT NULL,
    started_at          timestamptz NOT NULL,
    heartbeat_at        timestamptz NOT NULL
);

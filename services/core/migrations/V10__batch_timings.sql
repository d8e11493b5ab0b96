-- Where a batch's time goes (docs/contracts.md, "Tables"): from its newest record's broker
-- timestamp to the start of its write (queued_ms: waiting in the broker, the fetch and the
-- batch), and the COMMIT round trip (commit_ms). write_ms stays the write before the COMMIT.
--
-- A batch cannot time its own COMMIT inside its transaction: commit_ms is filled in by the
-- same writer's next batch, in that batch's transaction (NULL until then, and for a batch
-- written before V10 or last before a shutdown).
ALTER TABLE stream_batches
    ADD COLUMN queued_ms double precision,
    ADD COLUMN commit_ms double precision;

-- GET /stream pushes each committed batch to its subscribers (docs/contracts.md, "HTTP API").
--
-- Which orders a batch changed: the upsert stamps each row it writes with the batch's id, so
-- "the orders batch N changed" and "every order changed since batch N" (a reconnecting
-- subscriber's replay) are one index range. Rows written before V9 read as batch 0 (a constant
-- default adds the column without rewriting the table): they changed no later than the newest
-- batch at the upgrade, and every id a subscriber can hold is at least that. (A row inserted by
-- hand, outside any batch, reads as 0 too: no batch event ever carries it.)
ALTER TABLE current_orders ADD COLUMN last_batch_id bigint NOT NULL DEFAULT 0;
CREATE INDEX current_orders_last_batch_id ON current_orders (last_batch_id);

-- When: every new stream_batches row notifies channel `spine_batches` with its batch id. A
-- NOTIFY is delivered at COMMIT, and only if the transaction commits, so a listener hears of
-- exactly the batches that are visible, in commit order (= batch id order, see the batch lock).
CREATE FUNCTION spine_notify_batch() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('spine_batches', NEW.batch_id::text);
    RETURN NULL;
END
$$;
CREATE TRIGGER stream_batches_notify AFTER INSERT ON stream_batches
    FOR EACH ROW EXECUTE FUNCTION spine_notify_batch();

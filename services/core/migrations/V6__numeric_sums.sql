-- Per-tenant sums can't overflow: a bigint sum of amounts (up to 10^12 cents each) overflows
-- after ~9 million large orders, and the batch that crossed it would fail forever
-- ("bigint out of range"). numeric has no such bound. Takes the same lock as a batch first,
-- so no batch of a processor still running the previous image is half-way through.
LOCK TABLE stream_batches IN SHARE ROW EXCLUSIVE MODE;
ALTER TABLE tenant_stats
    ALTER COLUMN orders TYPE numeric,
    ALTER COLUMN amount_cents TYPE numeric;

-- Recount from current_orders, under that lock: repairs counts that drifted if a processor
-- image from before V2 (which did not keep tenant_stats) wrote batches after V2's backfill
-- during a rolling update. The processor Deployment is `strategy: Recreate` for that reason.
DELETE FROM tenant_stats;
INSERT INTO tenant_stats (tenant, status, orders, amount_cents)
SELECT tenant, status, count(*), sum(amount_cents) FROM current_orders GROUP BY tenant, status;

-- Two indexes fewer on current_orders, the table every batch updates (issue 14, "database
-- work per event"). An order's update changes updated_at, so it is never a HOT update: every
-- index gets a new entry for every order a batch changes, and these two cost about a fifth of
-- the upsert. GET /orders without a status now reads the per-status indexes of migration V3,
-- one branch per status (the CHECK constraint on status lists all four), merged newest first:
-- still at most `limit` rows per branch, never a scan (docs/contracts.md, "Tables").
DROP INDEX IF EXISTS current_orders_updated_at;
DROP INDEX IF EXISTS current_orders_tenant_updated_at;

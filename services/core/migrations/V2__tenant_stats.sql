-- Per-tenant, per-status order counts and amounts, kept by the processor in the same
-- transaction as current_orders (every replaced row moves from its old status to its new one),
-- so GET /stats reads a few rows instead of scanning every order.
CREATE TABLE tenant_stats (
    tenant       text   NOT NULL,
    status       text   NOT NULL,
    orders       bigint NOT NULL,
    amount_cents bigint NOT NULL,
    PRIMARY KEY (tenant, status)
);

INSERT INTO tenant_stats (tenant, status, orders, amount_cents)
SELECT tenant, status, count(*), sum(amount_cents) FROM current_orders GROUP BY tenant, status;

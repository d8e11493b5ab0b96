-- GET /orders/{tenant}/{order_id} reads one order's events oldest first, and
-- GET /dead_letters?partition= one partition's dead letters newest first: each reads one index
-- range, never a scan of the table (docs/contracts.md, "Tables").
CREATE INDEX events_tenant_order_time ON events (tenant, order_id, event_time, event_id);
CREATE INDEX dead_letters_partition_id ON dead_letters (kafka_partition, id DESC);

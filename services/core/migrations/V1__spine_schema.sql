-- spine's tables (docs/contracts.md, "Tables"). The processor migrates at start-up; the API waits.

-- Every distinct event ever read, append-only. The primary key makes re-delivery harmless.
CREATE TABLE events (
    event_id        uuid        PRIMARY KEY,
    tenant          text        NOT NULL,
    event_type      text        NOT NULL,
    order_id        text        NOT NULL,
    amount_cents    bigint      NOT NULL,
    currency        text        NOT NULL,
    event_time      timestamptz NOT NULL,
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    ingested_at     timestamptz NOT NULL DEFAULT now()
);

-- The latest state of each order. A row is replaced only by an event strictly newer by
-- (updated_at, last_event_id): see the processor's upsert.
CREATE TABLE current_orders (
    tenant        text        NOT NULL,
    order_id      text        NOT NULL,
    status        text        NOT NULL
        CHECK (status IN ('order_placed', 'order_paid', 'order_shipped', 'order_cancelled')),
    amount_cents  bigint      NOT NULL,
    currency      text        NOT NULL,
    updated_at    timestamptz NOT NULL,
    last_event_id uuid        NOT NULL,
    PRIMARY KEY (tenant, order_id)
);
-- GET /orders: newest first, optionally for one tenant.
CREATE INDEX current_orders_updated_at ON current_orders (updated_at DESC, tenant, order_id);
CREATE INDEX current_orders_tenant_updated_at ON current_orders (tenant, updated_at DESC, order_id);

-- Records that are not valid events, kept byte for byte with the reason.
CREATE TABLE dead_letters (
    id              bigserial   PRIMARY KEY,
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    kafka_offset    bigint      NOT NULL,
    key             bytea,
    payload         bytea,
    error           text        NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);

-- Where each consumer group is in each partition. next_offset moves in the same transaction
-- as the batch it covers; that is what makes the sink exactly-once.
CREATE TABLE stream_offsets (
    consumer_group  text        NOT NULL,
    topic           text        NOT NULL,
    kafka_partition integer     NOT NULL,
    next_offset     bigint      NOT NULL CHECK (next_offset >= 0),
    high_watermark  bigint,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, kafka_partition)
);

-- One row per committed micro-batch, like Spark's query progress.
CREATE TABLE stream_batches (
    batch_id        bigint      PRIMARY KEY,
    consumer_group  text        NOT NULL,
    topic           text        NOT NULL,
    started_at      timestamptz NOT NULL,
    finished_at     timestamptz NOT NULL,
    input_rows      integer     NOT NULL,
    events_inserted integer     NOT NULL,
    duplicates      integer     NOT NULL,
    orders_upserted integer     NOT NULL,
    stale_skipped   integer     NOT NULL,
    dead_lettered   integer     NOT NULL,
    fetch_ms        double precision NOT NULL,
    write_ms        double precision NOT NULL,
    total_ms        double precision NOT NULL
);

-- The offset range [start_offset, end_offset) each batch read from each partition.
CREATE TABLE stream_batch_partitions (
    batch_id        bigint  NOT NULL REFERENCES stream_batches (batch_id) ON DELETE CASCADE,
    kafka_partition integer NOT NULL,
    start_offset    bigint  NOT NULL,
    end_offset      bigint  NOT NULL,
    PRIMARY KEY (batch_id, kafka_partition)
);

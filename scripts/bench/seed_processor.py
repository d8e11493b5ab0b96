"""The seed's kind of stream processor, for comparison in `make bench`.

What the original Python/Spark job does per micro-batch (`foreachBatch`), written as plain
Python with the same client libraries a Python shop would use (confluent-kafka, psycopg2):
take what arrived (up to 50,000 records), parse the JSON into rows, reduce to the latest event
per order, append the events with execute_values and upsert current state with the seed's
"newer wins" guard, then record the offsets. No Spark: it cannot be installed here, and its
JVM would only add to the cost measured.

It writes to tables of its own (seed_events, seed_current_orders) in the database it is given.

    python seed_processor.py BOOTSTRAP TOPIC PARTITIONS DSN EXPECTED_RECORDS
"""
import json
import sys

import psycopg2
import psycopg2.extras
from confluent_kafka import Consumer, TopicPartition

BATCH = 50_000

SCHEMA = """
CREATE TABLE IF NOT EXISTS seed_events (
    event_id uuid PRIMARY KEY, tenant text NOT NULL, event_type text NOT NULL,
    order_id text NOT NULL, amount_cents bigint NOT NULL, currency text NOT NULL,
    event_time timestamptz NOT NULL);
CREATE TABLE IF NOT EXISTS seed_current_orders (
    tenant text NOT NULL, order_id text NOT NULL, status text NOT NULL,
    amount_cents bigint NOT NULL, currency text NOT NULL, updated_at timestamptz NOT NULL,
    PRIMARY KEY (tenant, order_id));
"""

INSERT_EVENTS = """
INSERT INTO seed_events (event_id, tenant, event_type, order_id, amount_cents, currency, event_time)
VALUES %s ON CONFLICT (event_id) DO NOTHING"""

# The seed's upsert, keyed per tenant.
UPSERT = """
INSERT INTO seed_current_orders (tenant, order_id, status, amount_cents, currency, updated_at)
VALUES %s
ON CONFLICT (tenant, order_id) DO UPDATE SET
    status = EXCLUDED.status, amount_cents = EXCLUDED.amount_cents,
    currency = EXCLUDED.currency, updated_at = EXCLUDED.updated_at
WHERE EXCLUDED.updated_at >= seed_current_orders.updated_at"""


def parse(value):
    """The seed's from_json: a row, or None for a record that does not fit."""
    try:
        e = json.loads(value)
        return (e["event_id"], e["tenant"], e["event_type"], e["order_id"],
                int(e["amount_cents"]), e.get("currency", "USD"), e["event_time"])
    except (ValueError, KeyError, TypeError):
        return None


def latest_per_order(rows):
    """The seed's transforms.py: keep the newest event per order."""
    latest = {}
    for r in rows:
        key = (r[1], r[3])
        if key not in latest or r[6] > latest[key][6]:
            latest[key] = r
    return [(r[1], r[3], r[2], r[4], r[5], r[6]) for r in latest.values()]


def main():
    bootstrap, topic, partitions, dsn, expected = sys.argv[1:6]
    partitions, expected = int(partitions), int(expected)
    consumer = Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": "seed-bench",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    conn = psycopg2.connect(dsn)
    with conn, conn.cursor() as cur:
        cur.execute(SCHEMA)
    seen = 0
    while seen < expected:
        messages = consumer.consume(num_messages=BATCH, timeout=1.0)
        if not messages:
            continue
        rows = [r for r in (parse(m.value()) for m in messages if m.error() is None) if r]
        with conn, conn.cursor() as cur:
            psycopg2.extras.execute_values(cur, INSERT_EVENTS, rows, page_size=5000)
            psycopg2.extras.execute_values(cur, UPSERT, latest_per_order(rows), page_size=5000)
        ends = {}
        for m in messages:
            ends[m.partition()] = m.offset() + 1
        consumer.commit(asynchronous=False, offsets=[TopicPartition(topic, p, o) for p, o in ends.items()])
        seen += len(messages)
    consumer.close()
    conn.close()


if __name__ == "__main__":
    main()

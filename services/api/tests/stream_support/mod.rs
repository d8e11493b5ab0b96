//! What the `/stream` and cache tests share: the API on port 0 over a migrated test database,
//! batches committed the way the processor commits them, and a Server-Sent Events reader.

#![allow(dead_code)]

use std::time::Duration;

use serde_json::Value;
use spine_api::AppState;
use spine_testkit::{postgres, TestDb};
use tokio_util::sync::CancellationToken;

pub struct Server {
    pub base: String,
    pub db: TestDb,
    pub state: AppState,
    pub http: reqwest::Client,
    _stop: tokio_util::sync::DropGuard,
}

pub async fn migrated_db() -> TestDb {
    let db = postgres().fresh_database().await;
    spine_core::schema::migrate(&mut db.connect().await)
        .await
        .expect("migrate");
    db
}

impl Server {
    pub async fn start() -> Server {
        Server::serve(migrated_db().await, |s| s).await
    }

    /// The API over `db`, its state shaped by `shape`, serving on a free port with the batch
    /// listener running; waits until the listener knows the newest batch.
    pub async fn serve(db: TestDb, shape: impl FnOnce(AppState) -> AppState) -> Server {
        let state = shape(AppState::connect(db.config()).expect("pools"));
        let s = Server::listen(db, state).await;
        s.settle().await;
        s
    }

    /// The API with `state` (its pools may point anywhere, or at a database without the
    /// schema), serving on a free port, without waiting for its batch listener.
    pub async fn listen(db: TestDb, state: AppState) -> Server {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let stop = CancellationToken::new();
        tokio::spawn(spine_api::serve(listener, state.clone(), stop.clone()));
        Server {
            base,
            db,
            state,
            http: reqwest::Client::new(),
            _stop: stop.drop_guard(),
        }
    }

    /// Waits until the listener has heard of the newest committed batch (a NOTIFY is
    /// delivered a moment after the commit returns).
    pub async fn settle(&self) {
        let newest: i64 = self
            .db
            .connect()
            .await
            .query_one(
                "SELECT coalesce(max(batch_id), 0)::bigint FROM stream_batches",
                &[],
            )
            .await
            .expect("newest")
            .get(0);
        for _ in 0..500 {
            if self.state.push.newest() == Some(newest) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "the listener never heard of batch {newest}: {:?}",
            self.state.push
        );
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{}", self.base, path))
            .send()
            .await
            .expect("request")
    }

    /// The status, headers and body of `path`.
    pub async fn text(
        &self,
        path: &str,
    ) -> (reqwest::StatusCode, reqwest::header::HeaderMap, String) {
        let r = self.get(path).await;
        let status = r.status();
        let headers = r.headers().clone();
        (status, headers, r.text().await.expect("body"))
    }

    pub async fn json(&self, path: &str) -> Value {
        let (status, _, body) = self.text(path).await;
        assert_eq!(status, 200, "{path}: {body}");
        serde_json::from_str(&body).expect("json")
    }

    /// Runs `sql` (rows as the processor would have left them), then waits until the
    /// listener has heard of the newest batch, as a client would see it.
    pub async fn sql(&self, sql: &str) {
        self.db
            .connect()
            .await
            .batch_execute(sql)
            .await
            .expect("seed sql");
        self.settle().await;
    }

    pub async fn metric(&self, line_start: &str) -> f64 {
        let text = self.get("/metrics").await.text().await.expect("metrics");
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    /// Commits batch `id` as the processor would: the orders it wrote stamped with its id,
    /// their tenants' counts, and its `stream_batches` row (whose trigger notifies).
    pub async fn commit(&self, id: i64, orders: &[(&str, &str, &str)]) {
        let mut client = self.db.connect().await;
        let tx = client.transaction().await.expect("begin");
        let tenants: Vec<&str> = orders.iter().map(|o| o.0).collect();
        let ids: Vec<&str> = orders.iter().map(|o| o.1).collect();
        let statuses: Vec<&str> = orders.iter().map(|o| o.2).collect();
        tx.execute(
            "INSERT INTO current_orders (tenant, order_id, status, amount_cents, currency,
                                         updated_at, last_event_id, last_batch_id)
             SELECT t, o, s, 100, 'USD', clock_timestamp(), gen_random_uuid(), $4
               FROM unnest($1::text[], $2::text[], $3::text[]) AS u(t, o, s)
             ON CONFLICT (tenant, order_id) DO UPDATE
               SET status = EXCLUDED.status, updated_at = EXCLUDED.updated_at,
                   last_batch_id = EXCLUDED.last_batch_id",
            &[&tenants, &ids, &statuses, &id],
        )
        .await
        .expect("orders");
        tx.batch_execute(
            "DELETE FROM tenant_stats;
             INSERT INTO tenant_stats SELECT tenant, status, count(*), sum(amount_cents)
               FROM current_orders GROUP BY 1, 2;",
        )
        .await
        .expect("stats");
        tx.execute(
            "INSERT INTO stream_batches (batch_id, consumer_group, topic, started_at, finished_at,
               input_rows, events_inserted, duplicates, orders_upserted, stale_skipped,
               dead_lettered, fetch_ms, write_ms, total_ms)
             VALUES ($1, 'stream-processor', 'events', now(), now(), $2, $2, 0, $2, 0, 0, 1, 1, 2)",
            &[&id, &(orders.len() as i32)],
        )
        .await
        .expect("batch");
        tx.execute(
            "INSERT INTO stream_batch_partitions VALUES ($1, 0, $2, $3)",
            &[&id, &(id * 10), &(id * 10 + 10)],
        )
        .await
        .expect("partition");
        tx.commit().await.expect("commit");
    }

    pub async fn subscribe(&self, path: &str, last_event_id: Option<i64>) -> Sse {
        let mut request = self.http.get(format!("{}{}", self.base, path));
        if let Some(id) = last_event_id {
            request = request.header("Last-Event-ID", id.to_string());
        }
        let response = request.send().await.expect("subscribe");
        assert_eq!(response.status(), 200, "{path}");
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "{path}"
        );
        Sse {
            response,
            buffer: String::new(),
        }
    }
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default)]
pub struct Event {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl Event {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).expect("event data is JSON")
    }

    pub fn id(&self) -> i64 {
        self.id
            .as_deref()
            .and_then(|i| i.parse().ok())
            .expect("a numeric id")
    }
}

/// Parses `text/event-stream` as it arrives (comments skipped).
pub struct Sse {
    pub response: reqwest::Response,
    buffer: String,
}

impl From<reqwest::Response> for Sse {
    fn from(response: reqwest::Response) -> Sse {
        Sse {
            response,
            buffer: String::new(),
        }
    }
}

impl Sse {
    /// The next event, `None` when the stream ended; panics after `within`.
    pub async fn next_within(&mut self, within: Duration) -> Option<Event> {
        tokio::time::timeout(within, self.next())
            .await
            .unwrap_or_else(|_| panic!("no event within {within:?}"))
    }

    pub async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(e) = parse(&block) {
                    return Some(e);
                }
                continue;
            }
            match self.response.chunk().await {
                Ok(Some(bytes)) => self.buffer.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }

    /// The next event other than `status`.
    pub async fn next_data_within(&mut self, within: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let e = self.next_within(left).await?;
            if e.event != "status" {
                return Some(e);
            }
        }
    }
}

pub fn parse(block: &str) -> Option<Event> {
    let mut e = Event::default();
    let mut any = false;
    for line in block.lines() {
        let (field, value) = match line.split_once(':') {
            Some(("", _)) => continue, // a comment (keep-alive)
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        any = true;
        match field {
            "event" => e.event = value.to_string(),
            "id" => e.id = Some(value.to_string()),
            "data" => {
                if !e.data.is_empty() {
                    e.data.push('\n');
                }
                e.data.push_str(value);
            }
            _ => {}
        }
    }
    if e.event.is_empty() {
        e.event = "message".into();
    }
    any.then_some(e)
}

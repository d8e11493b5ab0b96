//! Least privilege and bounded queries, against a real Postgres: the API's role can read and
//! nothing else, its sessions are read-only and named `spine-api`, and every `/orders` filter
//! combination reads an index in the order it answers.

use std::time::Duration;

use serde_json::Value;
use spine_api::AppState;
use spine_testkit::{postgres, unique_name, PgServer, TestDb};
use tokio_postgres::error::SqlState;

/// A migrated database and a fresh login role in spine_reader, as `make up` creates it.
async fn migrated_with_reader() -> (TestDb, String, tokio_postgres::Client) {
    let db = postgres().fresh_database().await;
    let mut admin = db.connect().await;
    spine_core::schema::migrate(&mut admin)
        .await
        .expect("migrate");
    let role = unique_name("api").to_lowercase();
    admin
        .batch_execute(&format!("CREATE ROLE {role} LOGIN IN ROLE spine_reader"))
        .await
        .expect("create the API's role");
    (db, role, admin)
}

fn as_role(db: &TestDb, role: &str) -> tokio_postgres::Config {
    let mut c = db.config();
    c.user(role);
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_role_reads_but_can_never_write() {
    let (db, role, admin) = migrated_with_reader().await;
    admin
        .batch_execute(
            "INSERT INTO current_orders VALUES ('acme', 'o1', 'order_paid', 5, 'USD', now(), gen_random_uuid())",
        )
        .await
        .expect("seed");
    let state = AppState::connect(as_role(&db, &role)).expect("pools");

    // It reads: the data routes answer.
    let response = spine_api::app(state.clone()).oneshot_get("/orders").await;
    assert_eq!(response.0, 200, "{}", response.1);
    let v: Value = serde_json::from_str(&response.1).expect("json");
    assert_eq!(v["orders"][0]["order_id"], "o1");

    let client = state.pool.get().await.expect("a connection");
    // The session is read-only...
    let e = client
        .batch_execute("DELETE FROM current_orders")
        .await
        .expect_err("a read-only session cannot delete");
    assert_eq!(e.code(), Some(&SqlState::READ_ONLY_SQL_TRANSACTION), "{e}");
    // ...and even when a compromised client turns that off, the role has no write privilege.
    for write in [
        "INSERT INTO current_orders VALUES ('x', 'y', 'order_paid', 1, 'USD', now(), gen_random_uuid())",
        "UPDATE current_orders SET amount_cents = 0",
        "DELETE FROM events",
        "TRUNCATE stream_offsets",
        "CREATE TABLE sneaky (x int)",
    ] {
        let e = client
            .batch_execute(&format!(
                "BEGIN READ WRITE; {write}; COMMIT"
            ))
            .await
            .expect_err(write);
        let _ = client.batch_execute("ROLLBACK").await;
        assert_eq!(e.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{write}: {e}");
    }

    // Every table: SELECT and nothing else; and no superuser, no role or database creation.
    let rows = admin
        .query(
            "SELECT c.relname,
                    has_table_privilege($1, c.oid, 'SELECT'),
                    has_table_privilege($1, c.oid, 'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')",
            &[&role],
        )
        .await
        .expect("privileges");
    assert!(rows.len() >= 8, "spine's tables: {}", rows.len());
    for r in &rows {
        let (table, select, write): (String, bool, bool) = (r.get(0), r.get(1), r.get(2));
        assert!(select && !write, "{table}: select {select}, write {write}");
    }
    let attrs = admin
        .query_one(
            "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = $1",
            &[&role],
        )
        .await
        .expect("role");
    let attrs: (bool, bool, bool) = (attrs.get(0), attrs.get(1), attrs.get(2));
    assert_eq!(
        attrs,
        (false, false, false),
        "no superuser, createrole, createdb"
    );

    // pg_stat_activity tells the API's sessions apart, and they carry the short timeout.
    let named = admin
        .query(
            "SELECT application_name FROM pg_stat_activity WHERE usename = $1 AND datname = current_database()",
            &[&role],
        )
        .await
        .expect("activity");
    assert!(!named.is_empty());
    for r in &named {
        assert_eq!(r.get::<_, String>(0), "spine-api");
    }
    let timeout: String = client
        .query_one("SHOW statement_timeout", &[])
        .await
        .expect("show")
        .get(0);
    assert_eq!(timeout, "1500ms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn even_the_writers_role_gets_read_only_sessions_from_the_api() {
    let db = postgres().fresh_database().await;
    let mut admin = db.connect().await;
    spine_core::schema::migrate(&mut admin)
        .await
        .expect("migrate");
    // The fallback when no API role is configured: the writer's (here a superuser).
    let state = AppState::connect(db.config()).expect("pools");
    let client = state.pool.get().await.expect("a connection");
    let e = client
        .batch_execute("TRUNCATE current_orders")
        .await
        .expect_err("read-only");
    assert_eq!(e.code(), Some(&SqlState::READ_ONLY_SQL_TRANSACTION), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_migrating_user_without_createrole_is_told_what_to_run() {
    // A server of its own: spine_reader must not exist yet, and roles are server-wide.
    let server = PgServer::start().expect("a second Postgres");
    let db = server.fresh_database().await;
    let admin = db.connect().await;
    admin
        .batch_execute(&format!(
            "CREATE ROLE migrator LOGIN; ALTER DATABASE {} OWNER TO migrator;
             GRANT ALL ON SCHEMA public TO migrator",
            db.name
        ))
        .await
        .expect("a plain owner");
    let mut as_migrator = {
        let (c, conn) = as_role(&db, "migrator")
            .connect(tokio_postgres::NoTls)
            .await
            .expect("connect");
        tokio::spawn(conn);
        c
    };
    let e = spine_core::schema::migrate(&mut as_migrator)
        .await
        .expect_err("cannot create spine_reader");
    let text = format!("{e:#}");
    assert!(
        text.contains("CREATEROLE") && text.contains("CREATE ROLE spine_reader NOLOGIN"),
        "{text}"
    );

    // Once an administrator made the role, the same user migrates (what `make up` does).
    admin
        .batch_execute("CREATE ROLE spine_reader NOLOGIN")
        .await
        .expect("create");
    spine_core::schema::migrate(&mut as_migrator)
        .await
        .expect("migrates once the role exists");
    let granted: bool = admin
        .query_one(
            "SELECT has_table_privilege('spine_reader', 'current_orders', 'SELECT')",
            &[],
        )
        .await
        .expect("privilege")
        .get(0);
    assert!(granted);
}

/// The API's largest `/orders` page.
const LIMIT: i64 = spine_api::routes::orders::MAX_LIMIT;

/// Every node of an `EXPLAIN (FORMAT JSON)` plan.
fn nodes<'a>(plan: &'a Value, out: &mut Vec<&'a Value>) {
    out.push(plan);
    for child in plan["Plans"].as_array().into_iter().flatten() {
        nodes(child, out);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_orders_filter_reads_an_index_in_order_on_200000_orders() {
    let (db, _, admin) = migrated_with_reader().await;
    // 200,000 orders over 20 tenants, one of them rare; one status rare.
    admin
        .batch_execute(
            "INSERT INTO current_orders
             SELECT CASE WHEN i % 4000 = 0 THEN 'rare' ELSE 'tenant-' || (i % 19) END,
                    'ord-' || i,
                    CASE WHEN i % 500 = 0 THEN 'order_cancelled'
                         ELSE (ARRAY['order_placed', 'order_paid', 'order_shipped'])[1 + i % 3] END,
                    i, 'USD', timestamptz '2026-01-01' + i * interval '1 second', gen_random_uuid()
               FROM generate_series(1, 200000) i;
             INSERT INTO stream_batches SELECT b, 'g', 't', now(), now(), 0, 0, 0, 0, 0, 0, 0, 0, 0
               FROM generate_series(1, 1000) b;
             ANALYZE;",
        )
        .await
        .expect("seed");
    let client = db.connect().await;
    let cases: [(Option<&str>, Option<&str>); 7] = [
        (None, None),
        (Some("tenant-3"), None),
        (Some("rare"), None),
        (None, Some("order_placed")),
        (None, Some("order_cancelled")),
        (Some("tenant-3"), Some("order_cancelled")),
        (Some("rare"), Some("order_placed")),
    ];
    for (tenant, status) in cases {
        let sql = spine_api::routes::orders::sql(tenant.is_some(), status.is_some());
        let name = unique_name("q");
        client
            .batch_execute(&format!("PREPARE {name} AS {sql}"))
            .await
            .expect("prepare");
        let mut args = vec![LIMIT.to_string()];
        args.extend(tenant.map(|t| format!("'{t}'")));
        args.extend(status.map(|s| format!("'{s}'")));
        // The API prepares its statements once per connection: Postgres may switch to a generic
        // plan after five runs, so both kinds must use the index.
        for mode in ["force_custom_plan", "force_generic_plan"] {
            client
                .batch_execute(&format!("SET plan_cache_mode = {mode}"))
                .await
                .expect("mode");
            let row = client
                .query_one(
                    &format!(
                        "EXPLAIN (ANALYZE, FORMAT JSON) EXECUTE {name}({})",
                        args.join(", ")
                    ),
                    &[],
                )
                .await
                .expect("explain");
            let plan: Value = row.get(0);
            let mut all = Vec::new();
            nodes(&plan[0]["Plan"], &mut all);
            let on_orders: Vec<&&Value> = all
                .iter()
                .filter(|n| n["Relation Name"] == "current_orders")
                .collect();
            let what = format!("tenant {tenant:?} status {status:?} ({mode}): {plan}");
            assert!(!on_orders.is_empty(), "{what}");
            // Never a scan of the table; every row of current_orders read is one answered, or
            // the one row each status's index range reads ahead of the merge: at most
            // `limit` + 4, however rare the filter. (For a tenant with fewer rows than the
            // limit Postgres may take them through a bitmap of the same index and sort those.)
            let mut read = 0.0;
            for n in &on_orders {
                let kind = n["Node Type"].as_str().unwrap_or("?");
                assert!(
                    kind.starts_with("Index") || kind.starts_with("Bitmap"),
                    "{kind}: {what}"
                );
                let f = |k: &str| n[k].as_f64().unwrap_or(0.0);
                read += f("Actual Rows") * f("Actual Loops")
                    + f("Rows Removed by Filter")
                    + f("Rows Removed by Index Recheck");
            }
            let look_ahead = if status.is_some() { 1.0 } else { 4.0 };
            assert!(
                read <= LIMIT as f64 + look_ahead,
                "read {read} rows of current_orders: {what}"
            );
            assert!(all.iter().all(|n| n["Node Type"] != "Seq Scan"), "{what}");
            // An index that does not lead with the tenant would walk every other tenant's
            // entries to find this one's (not counted in the rows above).
            if tenant.is_some() {
                for index in all.iter().filter_map(|n| n["Index Name"].as_str()) {
                    assert!(
                        index.starts_with("current_orders_tenant")
                            || index == "current_orders_pkey"
                            || !index.starts_with("current_orders"),
                        "{index}: {what}"
                    );
                }
            }
        }
    }
    // And the query answers within the statement timeout the API's sessions have.
    let state = AppState::connect(db.config()).expect("pools");
    let c = state.pool.get().await.expect("connection");
    tokio::time::timeout(
        Duration::from_secs(10),
        c.query(
            &spine_api::routes::orders::sql(false, true),
            &[&1000i64, &"order_cancelled"],
        ),
    )
    .await
    .expect("answers")
    .expect("query");
}

/// `GET path` through the router without a socket: (status, body).
trait OneshotGet {
    async fn oneshot_get(self, path: &str) -> (u16, String);
}

impl OneshotGet for axum::Router {
    async fn oneshot_get(self, path: &str) -> (u16, String) {
        use tower::ServiceExt;
        let response = self
            .oneshot(
                axum::http::Request::get(path)
                    .body(axum::body::Body::empty())
                    .expect("request"),
            )
            .await
            .expect("infallible");
        let status = response.status().as_u16();
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .expect("body");
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

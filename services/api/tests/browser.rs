//! The live page in a real browser (headless Chromium) with hostile values in the data: they
//! must show as text, and no element or script may come out of them.

use std::process::Command;

use spine_api::AppState;
use spine_testkit::postgres;
use tokio_util::sync::CancellationToken;

const HOSTILE: &str = "
INSERT INTO current_orders (tenant, order_id, status, amount_cents, currency, updated_at, last_event_id) VALUES
 ('<img src=x onerror=alert(1)>', 'ord-\"><script>alert(2)</script>', 'order_paid', 5000, 'USD', now(), gen_random_uuid()),
 ('acme', '</td><iframe src=javascript:alert(3)>', 'order_placed', 100, 'USD', now() - interval '1 second', gen_random_uuid());
INSERT INTO tenant_stats SELECT tenant, status, count(*), sum(amount_cents) FROM current_orders GROUP BY 1, 2;
INSERT INTO stream_batches VALUES (1, 'g', 'events', now(), now(), 2, 2, 0, 2, 0, 0, 1, 1, 2);
";

fn chromium() -> String {
    for candidate in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(candidate)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return candidate.to_owned();
        }
    }
    panic!("no headless browser found: run `scripts/setup.sh apt` (make test does), which installs Debian's chromium");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_render_as_text_in_a_real_browser() {
    let browser = chromium();
    let db = postgres().fresh_database().await;
    let mut client = db.connect().await;
    spine_core::schema::migrate(&mut client)
        .await
        .expect("migrate");
    client.batch_execute(HOSTILE).await.expect("seed");

    let state = AppState::connect(db.config()).expect("pools");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    let stop = CancellationToken::new();
    tokio::spawn(spine_api::serve(listener, state, stop.clone()));

    let profile = tempfile::tempdir().expect("profile dir");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                // Let the page run its first refreshes (fetches included) before dumping it.
                "--virtual-time-budget=4000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(&url)
            .output()
            .expect("run the browser")
    })
    .await
    .expect("join");
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("<table id=\"orders\">"),
        "the browser rendered the page:\n{dom}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The script ran and filled the tables from the API.
    assert!(dom.contains(">live<"), "the page says it is live:\n{dom}");
    // The hostile values are there, as text (escaped in the serialized DOM)...
    assert!(dom.contains("&lt;img src=x onerror=alert(1)&gt;"), "{dom}");
    assert!(
        dom.contains("ord-\"&gt;&lt;script&gt;alert(2)&lt;/script&gt;"),
        "{dom}"
    );
    assert!(
        dom.contains("&lt;/td&gt;&lt;iframe src=javascript:alert(3)&gt;"),
        "{dom}"
    );
    // ...and nothing became an element.
    for element in ["<img", "<iframe", "<script>alert"] {
        assert!(
            !dom.contains(element),
            "{element} must not be in the DOM:\n{dom}"
        );
    }
    stop.cancel();
}

//! The live page in a real browser (headless Chromium) with hostile values in the data: they
//! must show as text, and no element or script may come out of them. The badge says the
//! processor's state in a word, and `live` only while it is running.

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

    let dom = dump_dom(&browser, &url).await;
    assert!(
        dom.contains("<table id=\"orders\">"),
        "the browser rendered the page:\n{dom}"
    );

    // The script ran and filled the tables from the API. The badge says what the processor is
    // doing, in a word: a batch but no heartbeat at all is "down", with the batch's age, never
    // "live".
    assert!(
        dom.contains(r#"<span id="conn" class="pill down">down · last batch "#),
        "the badge says the processor's state:\n{dom}"
    );
    assert!(!dom.contains(">live<"), "{dom}");
    // The chart of the last minutes is drawn from the polls (numbers only).
    let points = |id: &str| {
        let start = dom
            .find(&format!(r#"id="{id}""#))
            .unwrap_or_else(|| panic!("{id} in the page:\n{dom}"));
        let rest = &dom[start..];
        let at = rest.find("points=\"").expect("points") + 8;
        rest[at..rest[at..].find('"').map_or(at, |e| at + e)].to_owned()
    };
    let done = points("done-line");
    assert!(
        !done.is_empty()
            && done
                .split([' ', ','])
                .all(|n| n.parse::<f64>().is_ok_and(f64::is_finite)),
        "processed rate drawn: {done:?}\n{dom}"
    );
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

    // A replica's heartbeat and a batch just committed: running, and only now "live".
    client
        .batch_execute(
            "UPDATE stream_batches SET finished_at = now();
             INSERT INTO processor_heartbeats VALUES
               ('host-1', 'g', 'events', '{0}', 1000, now(), now())",
        )
        .await
        .expect("a live replica");
    let dom = dump_dom(&browser, &url).await;
    assert!(
        dom.contains(r#"<span id="conn" class="pill ok">live</span>"#),
        "{dom}"
    );
    assert!(dom.contains(">running · last batch "), "{dom}");

    // Records waiting and no batch for a minute, whatever the heartbeat says: stalled.
    client
        .batch_execute(
            "UPDATE stream_batches SET finished_at = now() - interval '1 minute';
             INSERT INTO stream_offsets VALUES ('g', 'events', 0, 5, 10, now())",
        )
        .await
        .expect("a stalled processor");
    let dom = dump_dom(&browser, &url).await;
    assert!(
        dom.contains(r#"<span id="conn" class="pill down">stalled · last batch "#),
        "{dom}"
    );
    assert!(!dom.contains(">live<"), "{dom}");
    stop.cancel();
}

/// The page at `url` as the browser leaves it after its first refreshes.
async fn dump_dom(browser: &str, url: &str) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let (browser, url) = (browser.to_owned(), url.to_owned());
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
    String::from_utf8_lossy(&out.stdout).into_owned()
}

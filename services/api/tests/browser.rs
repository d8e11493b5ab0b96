//! The live page in a real browser (headless Chromium, driven over the DevTools protocol on a
//! pipe): hostile values in the data must show as text, and no element or script may come out
//! of them; the badge says the processor's state in a word, and `live` only while it is
//! running. The page rides on `GET /stream` (a committed batch shows at once, flashing, with no
//! polling of `/orders`) and polls when the stream is unavailable, saying which.

mod stream_support;

use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use spine_api::AppState;
use spine_testkit::postgres;
use stream_support::{migrated_db, Server};
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

    let mut page = Page::open(&browser, &url);
    let dom = page.wait_for("the tables filled and the badge set", |dom| {
        dom.contains("alert(1)")
            && dom.contains("last batch")
            && !dom.contains(r#"id="done-line" class="done" points="""#)
    });
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
    // The chart of the last minutes is drawn from the stream's status events (numbers only).
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
    let dom = page.wait_for("live", |dom| dom.contains(">live<"));
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
    let dom = page.wait_for("stalled", |dom| dom.contains(">stalled · "));
    assert!(
        dom.contains(r#"<span id="conn" class="pill down">stalled · last batch "#),
        "{dom}"
    );
    assert!(!dom.contains(">live<"), "{dom}");
    stop.cancel();
}

/// Where a stream-fed page and a polling one differ: the pill, and who asks for /orders.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_rides_on_the_stream_and_a_committed_batch_shows_at_once_without_polling() {
    let browser = chromium();
    let server = Server::start().await;
    server
        .commit(1, &[("acme", "ord-first", "order_placed")])
        .await;
    server.settle().await;
    let mut page = Page::open(&browser, &format!("{}/", server.base));
    let dom = page.wait_for("push, with the first batch's order", |dom| {
        dom.contains(r#"<span id="mode" class="pill mode push""#) && dom.contains("ord-first")
    });
    assert!(dom.contains(">push</span>"), "{dom}");
    assert!(dom.contains("Pushed by /stream"), "{dom}");
    assert_eq!(server.metric("spine_api_stream_subscribers ").await, 1.0);
    let orders_before = requests(&server, "/orders").await;

    // A batch commits: the order it changed shows, flashing, and the stats follow.
    server
        .commit(2, &[("acme", "ord-pushed", "order_paid")])
        .await;
    let committed = Instant::now();
    let dom = page.wait_for("the pushed order", |dom| dom.contains("ord-pushed"));
    eprintln!(
        "the pushed order showed {} ms after its commit returned",
        committed.elapsed().as_millis()
    );
    let row = row_of(&dom, "ord-pushed");
    assert!(row.starts_with(r#"<tr class="changed">"#), "flashes: {row}");
    assert!(row.contains("paid"), "{row}");
    assert!(
        !row_of(&dom, "ord-first").starts_with(r#"<tr class="changed">"#),
        "a row the batch did not change does not flash:\n{dom}"
    );
    assert!(dom.contains("as of batch 2"), "{dom}");

    // Seconds go by (status events keep coming): no /orders request from the page at all.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let dom = page.dom();
    assert!(dom.contains(">push<"), "{dom}");
    assert_eq!(
        requests(&server, "/orders").await,
        orders_before,
        "the page polled /orders while the stream was up"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_stream_the_page_polls_and_says_so() {
    let browser = chromium();
    // No room on the stream: every subscriber is refused (503), as when it is full.
    let server = Server::serve(migrated_db().await, |s| s.with_stream_limits(0, 16)).await;
    server
        .commit(1, &[("acme", "ord-first", "order_placed")])
        .await;
    server.settle().await;
    let mut page = Page::open(&browser, &format!("{}/", server.base));
    let dom = page.wait_for("polling, with the first batch's order", |dom| {
        dom.contains(r#"<span id="mode" class="pill mode polling""#) && dom.contains("ord-first")
    });
    assert!(dom.contains(">polling</span>"), "{dom}");
    assert!(dom.contains("Refreshed every second from"), "{dom}");
    server
        .commit(2, &[("acme", "ord-first", "order_paid")])
        .await;
    let dom = page.wait_for("the polled change", |dom| {
        row_of(dom, "ord-first").contains(">paid<")
    });
    assert!(
        row_of(&dom, "ord-first").starts_with(r#"<tr class="changed">"#),
        "a status change flashes when polled too:\n{dom}"
    );
    let before = requests(&server, "/orders").await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(
        requests(&server, "/orders").await >= before + 2.0,
        "polling asks /orders every second"
    );
}

/// `spine_api_requests_total` for `route`, every status summed.
async fn requests(server: &Server, route: &str) -> f64 {
    let text = server.get("/metrics").await.text().await.expect("metrics");
    let prefix = format!("spine_api_requests_total{{route=\"{route}\"");
    text.lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The `<tr>` of the orders table that holds `needle` ("" when none does).
fn row_of<'a>(dom: &'a str, needle: &str) -> &'a str {
    let Some(at) = dom.find(needle) else {
        return "";
    };
    let start = dom[..at].rfind("<tr").unwrap_or(at);
    let end = dom[at..].find("</tr>").map_or(dom.len(), |e| at + e + 5);
    &dom[start..end]
}

/// A page open in headless Chromium, driven over the DevTools protocol on a pipe
/// (`--remote-debugging-pipe`: JSON messages ended by NUL, in on fd 3, out on fd 4, here two
/// FIFOs the shell opens for it). A page on `--dump-dom` cannot be watched while it runs, and
/// under `--virtual-time-budget` an open event stream keeps it from ever finishing.
struct Page {
    browser: Child,
    to: File,
    from: BufReader<File>,
    session: String,
    next_id: u64,
    _dir: tempfile::TempDir,
}

impl Page {
    fn open(browser: &str, url: &str) -> Page {
        let dir = tempfile::tempdir().expect("dir");
        let (input, output) = (dir.path().join("in"), dir.path().join("out"));
        for fifo in [&input, &output] {
            let made = Command::new("mkfifo").arg(fifo).status().expect("mkfifo");
            assert!(made.success(), "mkfifo {}", fifo.display());
        }
        let child = Command::new("sh")
            .arg("-c")
            .arg(format!(
                "exec {browser} --headless --no-sandbox --disable-gpu --disable-quic \
                 --no-first-run --disable-background-networking --disable-component-update \
                 --disable-sync --remote-debugging-pipe --user-data-dir=\"$0/profile\" \
                 about:blank 3<\"$0/in\" 4>\"$0/out\""
            ))
            .arg(dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("run the browser");
        // The shell opens `in` first, then `out`: open them in that order.
        let (to, from) = tokio::task::block_in_place(|| {
            let to = File::options().write(true).open(&input).expect("open in");
            (to, BufReader::new(File::open(&output).expect("open out")))
        });
        let mut page = Page {
            browser: child,
            to,
            from,
            session: String::new(),
            next_id: 0,
            _dir: dir,
        };
        let target = page.call("Target.createTarget", json!({"url": url}));
        let target = target["targetId"].as_str().expect("targetId").to_owned();
        let attached = page.call(
            "Target.attachToTarget",
            json!({"targetId": target, "flatten": true}),
        );
        page.session = attached["sessionId"]
            .as_str()
            .expect("sessionId")
            .to_owned();
        page
    }

    /// Sends one command (to the page once attached) and returns its result.
    fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if !self.session.is_empty() {
            message["sessionId"] = json!(self.session);
        }
        let mut bytes = serde_json::to_vec(&message).expect("json");
        bytes.push(0);
        tokio::task::block_in_place(|| self.exchange(&bytes, id, method))
    }

    fn exchange(&mut self, bytes: &[u8], id: u64, method: &str) -> Value {
        self.to.write_all(bytes).expect("write to the browser");
        loop {
            let mut reply = Vec::new();
            let n = self.from.read_until(0, &mut reply).expect("read");
            assert!(n > 0, "the browser closed its pipe");
            reply.pop();
            let reply: Value = serde_json::from_slice(&reply).expect("a JSON message");
            if reply["id"] == json!(id) {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// The page's DOM as HTML now.
    fn dom(&mut self) -> String {
        let result = self.call(
            "Runtime.evaluate",
            json!({"expression": "document.documentElement.outerHTML", "returnByValue": true}),
        );
        result["result"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// The DOM once `ready` holds for it, checked every 50 ms; panics after 15 s with the
    /// last DOM seen.
    fn wait_for(&mut self, what: &str, ready: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let dom = self.dom();
            if ready(&dom) {
                return dom;
            }
            assert!(Instant::now() < deadline, "never {what}:\n{dom}");
            tokio::task::block_in_place(|| std::thread::sleep(Duration::from_millis(50)));
        }
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        let _ = self.browser.kill();
        let _ = self.browser.wait();
    }
}

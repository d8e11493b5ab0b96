//! The event loop: the one owner of [`App`]. It `select!`s over the keyboard, a frame tick and
//! the sources' channel, folds each into the state, and draws at most once per frame tick
//! (keys draw at once). However fast the topic runs, the sources send a few batches a second
//! and the keyboard is polled first, so input is never starved and the screen never redraws
//! per record.

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _};
use crossterm::event::{Event as TermEvent, EventStream};
use futures::{Stream, StreamExt};
use ratatui::backend::Backend;
use ratatui::Terminal;
use tokio::sync::{mpsc, watch};
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::app::{App, Connection, Effect, Msg};
use crate::config::TuiArgs;
pub use crate::sources::requests::Outbox;
use crate::sources::{api, requests, stream, topic};
use crate::text::SafeText;
use crate::{keys, ui};

/// The shortest time between two draws for data (10 frames a second).
pub const FRAME: Duration = Duration::from_millis(100);
/// Redraw at least this often, so rates decay and clocks move on a quiet screen.
const IDLE_REDRAW: Duration = Duration::from_secs(1);

/// Runs the UI until `q`, Esc, Ctrl-C or SIGTERM.
pub async fn run(args: TuiArgs) -> anyhow::Result<()> {
    #[cfg(feature = "test-hooks")]
    let faults = crate::faults::Faults::from_env()?;
    let conn = Connection {
        api: SafeText::new(&args.api),
        brokers: SafeText::new(&args.kafka.bootstrap),
        topic: SafeText::new(&args.kafka.topic),
    };
    let (tx, rx) = mpsc::channel(64);
    let (tenant_tx, tenant_rx) = watch::channel(None);
    let (requests_tx, requests_rx) = mpsc::unbounded_channel();
    let (seek_tx, seek_rx) = std::sync::mpsc::channel();
    let cancel = CancellationToken::new();
    let client = api::ApiClient::new(&args.api).context("creating the HTTP client")?;
    tokio::spawn(stream::run(
        client.clone(),
        tx.clone(),
        tenant_rx,
        cancel.clone(),
    ));
    tokio::spawn(requests::run(client, requests_rx, tx.clone(), seek_tx));
    // The thread ends by itself on `cancel` (within one poll); nothing waits for it.
    let _tail = topic::spawn_seekable(
        topic::TailConfig::new(&args.kafka.bootstrap, &args.kafka.topic)
            .with_properties(args.kafka.client_properties()),
        tx,
        cancel.clone(),
        seek_rx,
    );
    let outbox = Outbox {
        tenant: tenant_tx,
        requests: Some(requests_tx),
        clipboard: Some(Box::new(requests::osc52)),
    };

    log_panics();
    // Installs a panic hook that restores the terminal before anything is printed.
    let mut terminal = match ratatui::try_init() {
        Ok(t) => t,
        Err(e) => {
            ratatui::restore();
            return Err(anyhow!(
                "spine-tui needs a terminal ({e}); for a one-off look at the topic use `spine-tui peek --num 5`"
            ));
        }
    };
    info!(api = %args.api, bootstrap = %args.kafka.bootstrap, topic = %args.kafka.topic, "UI started");
    let ui = ui_loop(
        &mut terminal,
        App::new(conn, Instant::now()),
        rx,
        outbox,
        EventStream::new(),
        spine_core::shutdown::signal(),
    );
    #[cfg(feature = "test-hooks")]
    let ui = faults.around(ui);
    let result = ui.await;
    ratatui::restore();
    cancel.cancel();
    let stats = result?;
    info!(draws = stats.draws, messages = stats.messages, "UI stopped");
    Ok(())
}

/// A panic is logged to the file too (ratatui's hook, installed after this one, restores the
/// terminal first and then calls it).
fn log_panics() {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        tracing::error!(panic = %info, "spine-tui panicked");
        previous(info);
    }));
}

/// What one run of the loop did: for tests and the log.
#[derive(Debug, Default, Clone, Copy)]
pub struct LoopStats {
    pub draws: u64,
    pub messages: u64,
}

/// The loop itself, over any backend and input stream (tests give it a `TestBackend` and a
/// scripted stream).
pub async fn ui_loop<B, I>(
    terminal: &mut Terminal<B>,
    mut app: App,
    mut sources: mpsc::Receiver<Msg>,
    out: impl Into<Outbox>,
    input: I,
    shutdown: impl Future<Output = ()>,
) -> anyhow::Result<LoopStats>
where
    B: Backend,
    I: Stream<Item = std::io::Result<TermEvent>> + Unpin,
{
    let mut out = out.into();
    let mut input = input.fuse();
    let mut frame = tokio::time::interval(FRAME);
    frame.set_missed_tick_behavior(MissedTickBehavior::Skip);
    let mut stats = LoopStats::default();
    let mut dirty = true;
    let mut last_draw: Option<Instant> = None;
    tokio::pin!(shutdown);

    loop {
        // Biased: shutdown, then keys, then the frame tick, then data. Data comes last, so a
        // flood of it can delay neither a key nor a frame.
        tokio::select! {
            biased;
            () = &mut shutdown => break,
            event = input.next() => match event {
                Some(Ok(TermEvent::Key(key))) => {
                    let action = if app.edit.is_some() {
                        keys::edit_action(key)
                    } else {
                        keys::action(key)
                    };
                    if let Some(action) = action {
                        apply(&mut app, Msg::Action(action), &mut out);
                        if app.quit {
                            break;
                        }
                        draw(terminal, &app, &mut stats, &mut last_draw)?;
                        dirty = false;
                    }
                }
                Some(Ok(TermEvent::Resize(..))) => {
                    draw(terminal, &app, &mut stats, &mut last_draw)?;
                    dirty = false;
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e).context("reading the terminal"),
                None => break, // the terminal is gone
            },
            _ = frame.tick() => {
                app.update(Msg::Tick(Instant::now()));
                let idle = last_draw.is_none_or(|t| t.elapsed() >= IDLE_REDRAW);
                if dirty || idle {
                    draw(terminal, &app, &mut stats, &mut last_draw)?;
                    dirty = false;
                }
            }
            Some(msg) = sources.recv() => {
                stats.messages += 1;
                apply(&mut app, msg, &mut out);
                dirty = true;
            }
        }
    }
    Ok(stats)
}

fn draw<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &App,
    stats: &mut LoopStats,
    last_draw: &mut Option<Instant>,
) -> anyhow::Result<()> {
    terminal
        .draw(|f| ui::draw(f, app))
        .map_err(|e| anyhow!("drawing the screen: {e}"))?;
    stats.draws += 1;
    *last_draw = Some(Instant::now());
    Ok(())
}

fn apply(app: &mut App, msg: Msg, out: &mut Outbox) {
    match app.update(msg) {
        None => {}
        Some(Effect::TenantFilter(t)) => {
            out.tenant.send_replace(t);
        }
        // Between two draws, so the sequence never lands inside one.
        Some(Effect::Copy(text)) => {
            if let Some(copy) = out.clipboard.as_mut() {
                if let Err(e) = copy(&text) {
                    tracing::warn!(error = %e, "cannot copy to the clipboard");
                }
            }
        }
        Some(request) => {
            if let Some(requests) = &out.requests {
                let _ = requests.send(request);
            }
        }
    }
}

//! The header (what the UI is connected to, whether each source answers, and whether the API's
//! answers are pushed or polled), the footer
//! (the keys) and the help overlay.

use ratatui::prelude::*;
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use super::{clock, dim};
use crate::app::{App, Feed, Health};
use crate::keys::BINDINGS;
use crate::model::ProcessorState;

fn health(h: &Health) -> Span<'static> {
    match h {
        Health::Connecting => Span::styled("connecting…", Style::new().fg(Color::Yellow)),
        Health::Up { .. } => Span::styled(
            "ok",
            Style::new().fg(Color::Green).add_modifier(Modifier::BOLD),
        ),
        Health::Down { since, .. } => Span::styled(
            format!("DOWN since {}", clock(since)),
            Style::new()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD),
        ),
    }
}

/// How the API's answers come: " · push" (the stream) or " · polling" (its fallback).
fn feed(feed: Option<Feed>) -> Option<Span<'static>> {
    let style = match feed? {
        Feed::Push => Style::new().fg(Color::Green),
        Feed::Poll => Style::new().fg(Color::Yellow),
    };
    Some(Span::styled(format!(" · {}", feed?.as_str()), style))
}

fn sources(app: &App) -> [Line<'static>; 3] {
    let label = Style::new().add_modifier(Modifier::BOLD);
    let mut processor = vec![Span::styled("Processor ", label)];
    processor.extend(processor_state(app));
    let mut api = vec![
        Span::styled("API ", label),
        Span::raw(app.conn.api.to_string()),
        Span::raw(" "),
        health(&app.api),
    ];
    api.extend(feed(app.feed));
    [
        Line::from(api),
        Line::from(vec![
            Span::styled("Kafka ", label),
            Span::raw(format!("{} {}", app.conn.brokers, app.conn.topic)),
            Span::raw(" "),
            health(&app.broker),
        ]),
        Line::from(processor),
    ]
}

/// The processor's state in a word (coloured too), when it last committed a batch, how old the
/// newest event it wrote is, and the live lag. When the API does not answer, the state is
/// "unknown": the last one heard is not shown as if it were still true.
fn processor_state(app: &App) -> Vec<Span<'static>> {
    let p = match app.processor() {
        Ok(p) => p,
        Err(why) => {
            return vec![
                Span::styled(
                    "unknown",
                    Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
                ),
                Span::styled(format!(" ({why})"), dim()),
            ]
        }
    };
    let alarm = Style::new()
        .fg(Color::White)
        .bg(Color::Red)
        .add_modifier(Modifier::BOLD);
    let word = match p.state {
        ProcessorState::Running => Style::new().fg(Color::Green).add_modifier(Modifier::BOLD),
        ProcessorState::Idle => Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD),
        ProcessorState::Stalled | ProcessorState::Down => alarm,
        ProcessorState::Unknown => Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
    };
    let mut spans = vec![Span::styled(p.state.as_str(), word)];
    let last = match (&p.last_batch_at, p.last_batch_age_s) {
        (_, Some(age)) => format!(" · last batch {} ago", ago(age)),
        (None, None) => " · no batch yet".to_owned(),
        (Some(_), None) => String::new(),
    };
    spans.push(Span::raw(last));
    if let Some(fresh) = p.event_time_lag_s {
        spans.push(Span::raw(format!(" · fresh {}", seconds(fresh))));
    }
    match app.lag_total() {
        Ok(Some(n)) => spans.push(Span::raw(format!(" · lag {n}"))),
        Ok(None) => {}
        Err(_) => spans.push(Span::styled(
            " · lag error",
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        )),
    }
    spans
}

/// An age in whole units: "41s", "12m", "5h", "3d".
fn ago(secs: f64) -> String {
    let s = secs.max(0.0).round() as u64;
    match s {
        0..=99 => format!("{s}s"),
        100..=5999 => format!("{}m", s / 60),
        6000..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// A duration in seconds as people read it: "1.2 s", "45 s", "12 min", "5 h".
fn seconds(secs: f64) -> String {
    match secs {
        s if s < 10.0 => format!("{s:.1} s"),
        s if s < 120.0 => format!("{s:.0} s"),
        s if s < 7200.0 => format!("{:.0} min", s / 60.0),
        s => format!("{:.0} h", s / 3600.0),
    }
}

const SEPARATOR: &str = " │ ";

/// The header's lines: the three sources, as many on a line as fit.
fn packed(app: &App, width: u16) -> Vec<Line<'static>> {
    let mut lines: Vec<Line<'static>> = Vec::new();
    for source in sources(app) {
        match lines.last_mut() {
            Some(last) if last.width() + SEPARATOR.len() + source.width() <= width as usize => {
                last.spans.push(Span::styled(SEPARATOR, dim()));
                last.spans.extend(source.spans);
            }
            _ => lines.push(source),
        }
    }
    lines
}

pub fn header_height(app: &App, width: u16) -> u16 {
    packed(app, width).len() as u16
}

pub fn header(frame: &mut Frame<'_>, area: Rect, app: &App) {
    frame.render_widget(Paragraph::new(packed(app, area.width)), area);
}

pub fn footer(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let key = Style::new().fg(Color::Black).bg(Color::Cyan);
    if let Some(edit) = &app.edit {
        frame.render_widget(Paragraph::new(super::edit_line(edit)), area);
        return;
    }
    let mut spans = Vec::new();
    if let Some(needle) = &app.search {
        spans.push(Span::styled(
            format!(" filter /{needle} "),
            Style::new().fg(Color::Black).bg(Color::Yellow),
        ));
    }
    // The footer has room for the essential keys; the help lists them all.
    for (k, what, _) in BINDINGS.iter().filter(|(_, what, _)| !what.is_empty()) {
        let what = match *what {
            "pause" if app.tail.is_paused() => "resume",
            other => other,
        };
        spans.push(Span::styled(format!(" {k} "), key));
        spans.push(Span::raw(format!("{what} ")));
    }
    let counts = format!(
        "{} read, {} malformed ",
        app.tail.received, app.tail.malformed
    );
    let used: usize = spans.iter().map(Span::width).sum();
    if used + counts.len() < area.width as usize {
        let pad = area.width as usize - used - counts.len();
        spans.push(Span::raw(" ".repeat(pad)));
        spans.push(Span::styled(counts, dim()));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

pub fn help(frame: &mut Frame<'_>, app: &App) {
    let area = frame.area();
    let width = area.width.min(78);
    let height = area.height.min(24);
    let popup = Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    };
    let key = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
    let mut lines: Vec<Line<'_>> = BINDINGS
        .iter()
        .map(|(k, _, what)| {
            Line::from(vec![
                Span::styled(format!("{k:>12} "), key),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::raw(""));
    lines.extend(
        [
            "Tail: newest first, read without committing any offset; red = dead letters.",
            "Orders: yellow = status changed in the latest batch, green = new in the list.",
            "Processor: running, idle, stalled, down; unknown while the API is down.",
            "Lag = log end now - committed. Strip: 3 min of in/done rec/s, lag, batch ms.",
        ]
        .map(Line::raw),
    );
    lines.push(Line::styled(
        format!(
            "Connected to {} and {} ({}).",
            app.conn.api, app.conn.brokers, app.conn.topic
        ),
        dim(),
    ));
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines).wrap(Wrap { trim: false }).block(
            Block::bordered()
                .title(" Help: ? or Esc to close ")
                .border_style(Style::new().fg(Color::Cyan)),
        ),
        popup,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_and_durations_read_in_whole_units() {
        assert_eq!(ago(0.4), "0s");
        assert_eq!(ago(41.5), "42s");
        assert_eq!(ago(99.0), "99s");
        assert_eq!(ago(600.0), "10m");
        assert_eq!(ago(7200.0), "2h");
        assert_eq!(ago(3.0 * 86_400.0), "3d");
        assert_eq!(
            ago(-1.0),
            "0s",
            "a clock a little ahead is not a negative age"
        );
        assert_eq!(seconds(1.23), "1.2 s");
        assert_eq!(seconds(45.2), "45 s");
        assert_eq!(seconds(3601.0), "60 min");
        assert_eq!(seconds(36_000.0), "10 h");
    }
}

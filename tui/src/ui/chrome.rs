//! The header (what the UI is connected to, and whether each source answers), the footer
//! (the keys) and the help overlay.

use ratatui::prelude::*;
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};

use super::clock;
use crate::app::{App, Health};
use crate::keys::BINDINGS;

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

fn sources(app: &App) -> [Line<'static>; 2] {
    let label = Style::new().add_modifier(Modifier::BOLD);
    [
        Line::from(vec![
            Span::styled("API ", label),
            Span::raw(app.conn.api.to_string()),
            Span::raw(" "),
            health(&app.api),
        ]),
        Line::from(vec![
            Span::styled("Kafka ", label),
            Span::raw(format!("{} {}", app.conn.brokers, app.conn.topic)),
            Span::raw(" "),
            health(&app.broker),
        ]),
    ]
}

const SEPARATOR: &str = " │ ";

/// One line when both sources fit on it, else one line each.
pub fn header_height(app: &App, width: u16) -> u16 {
    let [api, kafka] = sources(app);
    if api.width() + SEPARATOR.len() + kafka.width() <= width as usize {
        1
    } else {
        2
    }
}

pub fn header(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let [api, kafka] = sources(app);
    let lines = if area.height >= 2 {
        vec![api, kafka]
    } else {
        let mut spans = api.spans;
        spans.push(Span::styled(SEPARATOR, Style::new().fg(Color::DarkGray)));
        spans.extend(kafka.spans);
        vec![Line::from(spans)]
    };
    frame.render_widget(Paragraph::new(lines), area);
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
        spans.push(Span::styled(counts, Style::new().fg(Color::DarkGray)));
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
            "Tail: newest record first, read without committing any offset (the processor's are never moved). Red rows are malformed records, kept with the reason they are dead letters.",
            "Orders: yellow = status changed in the latest batch, green = new in the list.",
            "Batches: lag = high watermark - committed offset, per partition.",
        ]
        .map(Line::raw),
    );
    lines.push(Line::styled(
        format!(
            "Connected to {} and {} ({}).",
            app.conn.api, app.conn.brokers, app.conn.topic
        ),
        Style::new().fg(Color::DarkGray),
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

//! The detail views (Enter, `d`): drawn over the panes' whole area, a title saying what it is
//! and the keys, then the lines of `crate::inspect`, scrolled with the arrows.

use ratatui::prelude::*;
use ratatui::widgets::{Block, Borders, Clear};

use super::{line, put};
use crate::app::{App, Detail, Loading, View};
use crate::inspect::{
    batch_lines, dead_letter_lines, order_lines, record_lines, DeadLetter, DetailLine,
};
use crate::text::SafeText;

const LABEL: usize = 12;

pub fn draw(frame: &mut Frame<'_>, area: Rect, app: &App, detail: &Detail) {
    let (title, content) = content(app, detail);
    let block = Block::new()
        .borders(Borders::TOP)
        .border_style(Style::new().fg(Color::Cyan))
        .title(Line::from(vec![
            Span::raw(" "),
            Span::styled(title, Style::new().add_modifier(Modifier::BOLD)),
            Span::styled(" · Esc close ", Style::new().fg(Color::DarkGray)),
        ]));
    let inner = block.inner(area);
    frame.render_widget(Clear, area);
    frame.render_widget(block, area);
    let buf = frame.buffer_mut();
    match content {
        Content::Lines(head, body) => lines(buf, inner, detail.scroll, &head, &body),
        Content::Note(text, style) => line(buf, inner, inner.y, &text, style),
        Content::List(rows) => list(buf, inner, detail.selected, &rows),
    }
}

enum Content {
    Lines(Vec<DetailLine>, Vec<SafeText>),
    Note(String, Style),
    List(Vec<DeadLetter>),
}

fn content(app: &App, detail: &Detail) -> (String, Content) {
    let waiting = |what: &str| {
        Content::Note(
            format!("waiting for {what}…"),
            Style::new().fg(Color::DarkGray),
        )
    };
    let failed = |what: &str, e: &SafeText| {
        Content::Note(format!("{what}: {e}"), Style::new().fg(Color::Red))
    };
    match &detail.view {
        View::Record(r) => {
            let (head, body) = record_lines(&app.conn.topic, r);
            (
                format!("Record {}@{} · y copy", r.partition, r.offset),
                Content::Lines(head, body),
            )
        }
        View::Order {
            tenant,
            order_id,
            history,
        } => {
            let route = format!("/orders/{tenant}/{order_id}");
            let title = format!("Order {tenant}/{order_id}");
            match history {
                Loading::Waiting => (title, waiting(&route)),
                Loading::Failed(e) => (title, failed(&route, e)),
                Loading::Ready(h) => {
                    let (head, body) = order_lines(&h.data);
                    (format!("{title} · y copy"), Content::Lines(head, body))
                }
            }
        }
        View::Batch { batch, dead } => {
            let title = format!("Batch #{}", batch.batch_id);
            match dead {
                Loading::Failed(e) => {
                    let (head, mut body) = batch_lines(batch, Some(&[]));
                    body.push(SafeText::new(&format!("/dead_letters: {e}")));
                    (title, Content::Lines(head, body))
                }
                Loading::Waiting => {
                    let (head, body) = batch_lines(batch, None);
                    (title, Content::Lines(head, body))
                }
                Loading::Ready(d) => {
                    let (head, body) = batch_lines(batch, Some(d));
                    (title, Content::Lines(head, body))
                }
            }
        }
        View::DeadLetters { list, open } => match (list, open) {
            (Loading::Waiting, _) => ("Dead letters".into(), waiting("/dead_letters")),
            (Loading::Failed(e), _) => ("Dead letters".into(), failed("/dead_letters", e)),
            (Loading::Ready(l), false) => (
                format!(
                    "Dead letters · {} newest first · Enter open",
                    l.data.dead_letters.len()
                ),
                if l.data.dead_letters.is_empty() {
                    Content::Note("no dead letters".into(), Style::new().fg(Color::Green))
                } else {
                    Content::List(l.data.dead_letters.clone())
                },
            ),
            (Loading::Ready(_), true) => match detail.selected_dead_letter() {
                Some((d, _)) => {
                    let (head, body) = dead_letter_lines(d);
                    (
                        format!("Dead letter {} · y copy", d.id),
                        Content::Lines(head, body),
                    )
                }
                None => (
                    "Dead letter".into(),
                    Content::Note(String::new(), Style::new()),
                ),
            },
        },
    }
}

/// Labelled lines, then the body, from `scroll` (clamped so the last line ends the view).
fn lines(buf: &mut Buffer, area: Rect, scroll: usize, head: &[DetailLine], body: &[SafeText]) {
    if area.height == 0 || area.width == 0 {
        return;
    }
    let label = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
    let mut all: Vec<(Option<&str>, &str)> =
        head.iter().map(|(l, t)| (Some(*l), t.as_str())).collect();
    all.push((None, ""));
    // Body lines wrap at the edge (a long JSON string stays whole).
    let wrapped: Vec<String> = body
        .iter()
        .flat_map(|t| {
            let chars: Vec<char> = t.as_str().chars().collect();
            if chars.is_empty() {
                return vec![String::new()];
            }
            chars
                .chunks(area.width as usize)
                .map(|c| c.iter().collect::<String>())
                .collect()
        })
        .collect();
    all.extend(wrapped.iter().map(|t| (None, t.as_str())));
    let height = area.height as usize;
    let first = scroll.min(all.len().saturating_sub(height));
    for (i, (l, text)) in all.iter().skip(first).take(height).enumerate() {
        let y = area.y + i as u16;
        match l {
            Some(l) => {
                put(buf, area.x, y, l, LABEL as u16, label);
                let x = area.x + LABEL as u16 + 1;
                put(
                    buf,
                    x,
                    y,
                    text,
                    area.width.saturating_sub(LABEL as u16 + 1),
                    Style::new(),
                );
            }
            None => line(buf, area, y, text, Style::new()),
        }
    }
    if first + height < all.len() {
        let more = format!(" ↓ {} more ", all.len() - first - height);
        let x = area.right().saturating_sub(super::width(&more));
        put(
            buf,
            x,
            area.bottom() - 1,
            &more,
            super::width(&more),
            Style::new().fg(Color::Black).bg(Color::Cyan),
        );
    }
}

/// The dead letters, one a row, the selected one reversed.
fn list(buf: &mut Buffer, area: Rect, selected: usize, rows: &[DeadLetter]) {
    if area.height < 2 {
        return;
    }
    let header = Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED);
    line(buf, area, area.y, "p@offset     received  reason", header);
    let height = (area.height - 1) as usize;
    let first = selected.saturating_sub(height - 1);
    for (i, d) in rows.iter().enumerate().skip(first).take(height) {
        let y = area.y + 1 + (i - first) as u16;
        let received = super::time_of_day(&d.received_at);
        let text = format!(
            "{:<12} {} {}",
            format!("{}@{}", d.partition, d.offset),
            received.get(..8).unwrap_or(&received),
            d.reason
        );
        let style = if i == selected {
            Style::new().add_modifier(Modifier::REVERSED)
        } else {
            Style::new()
        };
        buf.set_style(
            Rect {
                y,
                height: 1,
                ..area
            },
            style,
        );
        line(buf, area, y, &text, style);
    }
}

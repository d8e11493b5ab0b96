//! The processor's micro-batches (`/batches`): each partition's committed offset, high
//! watermark and lag, then the recent batches with the offset range each read per partition.

use ratatui::prelude::*;

use super::{draw_api_status, line, pane_block, time_of_day, title_extras, Grid};
use crate::app::{App, Pane};
use crate::model::Batch;

pub fn draw(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let data = app.batches.data.as_ref();
    let batches = data.map(|d| d.batches.as_slice()).unwrap_or_default();
    let mut partitions = data.map(|d| d.partitions.clone()).unwrap_or_default();
    partitions.sort_by_key(|p| p.partition);
    let narrow = area.width < 72;

    let name = if narrow { "Batches" } else { "Micro-batches" };
    let mut title = vec![Span::styled(
        name,
        Style::new().add_modifier(Modifier::BOLD),
    )];
    if !partitions.is_empty() {
        let lag: i64 = partitions.iter().filter_map(|p| p.lag).sum();
        title.push(Span::raw(format!(" · lag {lag}")));
    }
    if app.filter.is_some() {
        title.push(Span::styled(
            " · all tenants",
            Style::new().fg(Color::DarkGray),
        ));
    }
    title.extend(title_extras(app, Pane::Batches, batches.len()));
    let block = pane_block(app, Pane::Batches, title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let buf = frame.buffer_mut();
    let bottom = inner.bottom();
    let mut y = draw_api_status(buf, inner, inner.y, app, &app.batches, "/batches");
    if data.is_none() {
        return;
    }

    // Partitions: where the processor is, where the log ends.
    let cols = [
        (Constraint::Length(if narrow { 4 } else { 9 }), true),
        (Constraint::Length(if narrow { 10 } else { 16 }), true),
        (Constraint::Length(if narrow { 10 } else { 16 }), true),
        (Constraint::Length(if narrow { 7 } else { 10 }), true),
    ];
    let grid = Grid::new(inner, &cols);
    if y < bottom {
        let titles: &[&str] = if narrow {
            &["part", "committed", "high wm", "lag"]
        } else {
            &["partition", "committed offset", "high watermark", "lag"]
        };
        grid.header(buf, y, titles);
        y += 1;
    }
    for p in &partitions {
        if y >= bottom {
            return;
        }
        let dash = || "-".to_owned();
        grid.cell(buf, y, 0, &p.partition.to_string(), Style::new());
        grid.cell(buf, y, 1, &p.next_offset.to_string(), Style::new());
        grid.cell(
            buf,
            y,
            2,
            &p.high_watermark.map_or_else(dash, |h| h.to_string()),
            Style::new(),
        );
        let lag_style = match p.lag {
            Some(l) if l > 0 => Style::new().fg(Color::Yellow).add_modifier(Modifier::BOLD),
            _ => Style::new().fg(Color::Green),
        };
        grid.cell(
            buf,
            y,
            3,
            &p.lag.map_or_else(dash, |l| l.to_string()),
            lag_style,
        );
        y += 1;
    }

    if batches.is_empty() {
        if y < bottom {
            line(
                buf,
                inner,
                y,
                "no batches yet",
                Style::new().fg(Color::DarkGray),
            );
        }
        return;
    }
    let shown = batches.iter().skip(app.scroll(Pane::Batches));
    // The selected batch is the first shown.
    let selected_y = y + u16::from(!narrow);
    if app.focus == Pane::Batches && selected_y < bottom {
        buf.set_style(
            Rect {
                y: selected_y,
                height: 1,
                ..inner
            },
            Style::new().add_modifier(Modifier::REVERSED),
        );
    }
    if narrow {
        // Two lines a batch: what it did, then the offsets it read.
        for b in shown {
            if y + 2 > bottom {
                break;
            }
            let head = format!("#{} {} rows {:.1} ms", b.batch_id, b.input_rows, b.total_ms);
            buf.set_stringn(
                inner.x,
                y,
                &head,
                inner.width as usize,
                Style::new().fg(Color::Cyan),
            );
            let done = time_of_day(&b.finished_at);
            let done = done.get(..8).unwrap_or(&done);
            let x = inner.x + inner.width.saturating_sub(done.len() as u16);
            if head.len() + done.len() < inner.width as usize {
                buf.set_stringn(x, y, done, done.len(), Style::new().fg(Color::DarkGray));
            }
            line(buf, inner, y + 1, &format!("  {}", ranges(b)), Style::new());
            y += 2;
        }
    } else {
        let cols = [
            (Constraint::Length(7), true),
            (Constraint::Length(8), false),
            (Constraint::Length(7), true),
            (Constraint::Length(7), true),
            (Constraint::Length(5), true),
            (Constraint::Length(5), true),
            (Constraint::Length(8), true),
            (Constraint::Fill(1), false),
        ];
        let grid = Grid::new(inner, &cols);
        if y >= bottom {
            return;
        }
        grid.header(
            buf,
            y,
            &[
                "batch",
                "finished",
                "rows",
                "new",
                "dups",
                "dead",
                "ms",
                "offsets per partition",
            ],
        );
        y += 1;
        for b in shown {
            if y >= bottom {
                break;
            }
            let done = time_of_day(&b.finished_at);
            grid.cell(
                buf,
                y,
                0,
                &format!("#{}", b.batch_id),
                Style::new().fg(Color::Cyan),
            );
            grid.cell(
                buf,
                y,
                1,
                done.get(..8).unwrap_or(&done),
                Style::new().fg(Color::DarkGray),
            );
            grid.cell(buf, y, 2, &b.input_rows.to_string(), Style::new());
            grid.cell(buf, y, 3, &b.events_inserted.to_string(), Style::new());
            grid.cell(buf, y, 4, &b.duplicates.to_string(), Style::new());
            let dead = if b.dead_lettered > 0 {
                Style::new().fg(Color::Red)
            } else {
                Style::new()
            };
            grid.cell(buf, y, 5, &b.dead_lettered.to_string(), dead);
            grid.cell(buf, y, 6, &format!("{:.1}", b.total_ms), Style::new());
            grid.cell(buf, y, 7, &ranges(b), Style::new());
            y += 1;
        }
    }
}

/// `0:100..600 1:50..80`: what the batch read of each partition (end exclusive).
fn ranges(b: &Batch) -> String {
    let mut parts = b.partitions.clone();
    parts.sort_by_key(|p| p.partition);
    if parts.is_empty() {
        return "(no records)".into();
    }
    parts
        .iter()
        .map(|p| format!("{}:{}..{}", p.partition, p.start_offset, p.end_offset))
        .collect::<Vec<_>>()
        .join(" ")
}

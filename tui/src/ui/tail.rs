//! The topic tail: newest record first; malformed records in red with their reason.

use ratatui::prelude::*;
use spine_core::event::EventType;

use super::{money, pane_block, rate, remaining, share, title_extras, widest, wrapped, Grid};
use crate::app::{App, Health, Pane};
use crate::model::{TailBody, TailRecord};

pub fn draw(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let rows: Vec<&TailRecord> = app.visible_tail().collect();
    let narrow = area.width < 62;
    let mut title = vec![Span::styled(
        if narrow { "Tail" } else { "Topic tail" },
        Style::new().add_modifier(Modifier::BOLD),
    )];
    if let (Some(p), false) = (app.tail.partitions, narrow) {
        title.push(Span::raw(format!(" · {p} partitions")));
    }
    title.push(Span::raw(format!(
        " · {} ev/s · ",
        rate(app.rate(app.filter.as_ref()))
    )));
    title.push(if app.tail.is_paused() {
        Span::styled(
            "PAUSED",
            Style::new()
                .fg(Color::Black)
                .bg(Color::Yellow)
                .add_modifier(Modifier::BOLD),
        )
    } else {
        Span::styled("LIVE", Style::new().fg(Color::Green))
    });
    title.extend(title_extras(app, Pane::Tail, rows.len()));
    let block = pane_block(app, Pane::Tail, title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let buf = frame.buffer_mut();
    let mut y = inner.y;
    let bottom = inner.bottom();

    let status = match (&app.broker, &app.tail.note) {
        (Health::Down { since, error }, _) => Some((
            format!("broker down since {}: {error}", super::clock(since)),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        )),
        (_, Some(note)) => Some((note.to_string(), Style::new().fg(Color::Yellow))),
        _ if rows.is_empty() => Some(("waiting for records…".to_owned(), super::dim())),
        _ => None,
    };
    if let Some((text, style)) = status {
        y += wrapped(buf, inner, y, &text, style, 2);
    }
    if y >= bottom {
        return;
    }

    // Columns as wide as what they hold now: at 80 columns every one counts.
    let shown: Vec<&TailRecord> = rows
        .iter()
        .skip(app.scroll(Pane::Tail))
        .take((bottom - y) as usize)
        .copied()
        .collect();
    let events = || {
        shown.iter().filter_map(|r| match &r.body {
            TailBody::Event(e) => Some(e),
            TailBody::Malformed { .. } => None,
        })
    };
    let numbers =
        |f: &dyn Fn(&TailRecord) -> String| shown.iter().map(|r| f(r)).collect::<Vec<_>>();
    let partitions = numbers(&|r| r.partition.to_string());
    let offsets = numbers(&|r| r.offset.to_string());
    let amounts: Vec<String> = events().map(|e| money(e.amount_cents)).collect();
    let p_w = widest("p", partitions.iter().map(String::as_str), 5);
    let offset_w = widest("offset", offsets.iter().map(String::as_str), 20);
    let amount_w = widest("amount", amounts.iter().map(String::as_str), 16);
    let tenant_w = widest("tenant", events().map(|e| e.tenant.as_str()), 40);
    let order_w = widest("order", events().map(|e| e.order_id.as_str()), 40);

    let type_w = if narrow { 7 } else { 15 };
    let mut fixed = vec![p_w, offset_w, type_w, amount_w];
    if !narrow {
        fixed.extend([13, 3]); // event time, currency
    }
    let flexible = remaining(inner.width, &fixed, fixed.len() + 2);
    let (tenant_w, order_w) = share(flexible, tenant_w, order_w);
    let mut columns = vec![
        (Constraint::Length(p_w), true),
        (Constraint::Length(offset_w), true),
    ];
    let mut titles = vec!["p", "offset"];
    if !narrow {
        columns.push((Constraint::Length(13), false));
        titles.push("event time");
    }
    columns.extend([
        (Constraint::Length(tenant_w), false),
        (Constraint::Length(type_w), false),
        (Constraint::Length(order_w), false),
        (Constraint::Length(amount_w), true),
    ]);
    titles.extend(["tenant", "type", "order", "amount"]);
    if !narrow {
        columns.push((Constraint::Length(3), false));
        titles.push("cur");
    }
    let grid = Grid::new(inner, &columns);
    grid.header(buf, y, &titles);
    y += 1;

    let first_text = if narrow { 2 } else { 3 };
    for r in shown {
        if y >= bottom {
            break;
        }
        grid.cell(buf, y, 0, &r.partition.to_string(), Style::new());
        grid.cell(buf, y, 1, &r.offset.to_string(), Style::new());
        match &r.body {
            TailBody::Event(e) => {
                if !narrow {
                    let time = e.event_time.format("%H:%M:%S%.3fZ").to_string();
                    grid.cell(buf, y, 2, &time, super::dim());
                }
                grid.cell(buf, y, first_text, e.tenant.as_str(), Style::new());
                let ty = if narrow {
                    short_type(e.event_type)
                } else {
                    e.event_type.as_str()
                };
                grid.cell(buf, y, first_text + 1, ty, type_style(e.event_type));
                grid.cell(buf, y, first_text + 2, e.order_id.as_str(), Style::new());
                grid.cell(buf, y, first_text + 3, &money(e.amount_cents), Style::new());
                if !narrow {
                    grid.cell(buf, y, first_text + 4, e.currency.as_str(), super::dim());
                }
            }
            TailBody::Malformed { key, reason } => {
                let key = key
                    .as_ref()
                    .map(|k| format!(" (key {k})"))
                    .unwrap_or_default();
                let style = Style::new().fg(Color::Red).add_modifier(Modifier::BOLD);
                grid.rest(
                    buf,
                    y,
                    first_text,
                    &format!("malformed{key}: {reason}"),
                    style,
                );
            }
        }
        y += 1;
    }
}

fn short_type(t: EventType) -> &'static str {
    match t {
        EventType::OrderPlaced => "placed",
        EventType::OrderPaid => "paid",
        EventType::OrderShipped => "shipped",
        EventType::OrderCancelled => "cancel",
    }
}

pub fn type_style(t: EventType) -> Style {
    Style::new().fg(match t {
        EventType::OrderPlaced => Color::Blue,
        EventType::OrderPaid => Color::Green,
        EventType::OrderShipped => Color::Cyan,
        EventType::OrderCancelled => Color::Magenta,
    })
}

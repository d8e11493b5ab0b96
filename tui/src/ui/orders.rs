//! The live orders (`/orders`): rows whose status changed in the latest batch marked `*` on
//! yellow, orders new to the list marked `+` in green.

use std::str::FromStr;

use ratatui::prelude::*;
use spine_core::event::EventType;

use super::{
    draw_api_status, line, money, pane_block, remaining, share, tail::type_style, time_of_day,
    title_extras, widest, Grid,
};
use crate::app::{App, Change, Pane};

pub fn draw(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let rows: Vec<_> = app.visible_orders().collect();
    let narrow = area.width < 62;
    let mut title = vec![Span::styled(
        "Orders",
        Style::new().add_modifier(Modifier::BOLD),
    )];
    if let Some(batch) = app.orders.polled.data.as_ref().and_then(|d| d.as_of_batch) {
        title.push(Span::raw(if narrow {
            format!(" #{batch}")
        } else {
            format!(" · batch {batch}")
        }));
    }
    let changed = rows
        .iter()
        .filter(|(_, c)| matches!(c, Change::StatusChanged { .. }))
        .count();
    let new = rows.iter().filter(|(_, c)| **c == Change::New).count();
    // Narrow, the counts go by the rows' own markers.
    let (changed_label, new_label) = if narrow {
        ("*", "+")
    } else {
        ("changed ", "new ")
    };
    if changed > 0 {
        title.push(Span::styled(
            format!(" · {changed_label}{changed}"),
            Style::new().fg(Color::Yellow),
        ));
    }
    if new > 0 {
        title.push(Span::styled(
            format!(" · {new_label}{new}"),
            Style::new().fg(Color::Green),
        ));
    }
    title.extend(title_extras(app, Pane::Orders, rows.len()));
    let block = pane_block(app, Pane::Orders, title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let buf = frame.buffer_mut();
    let bottom = inner.bottom();
    let mut y = draw_api_status(buf, inner, inner.y, app, &app.orders.polled, "/orders");
    if app.orders.polled.data.is_some() && rows.is_empty() && y < bottom {
        line(buf, inner, y, "no orders yet", super::dim());
        y += 1;
    }
    if rows.is_empty() || y >= bottom {
        return;
    }

    let shown: Vec<_> = rows
        .iter()
        .skip(app.scroll(Pane::Orders))
        .take((bottom - y) as usize)
        .collect();
    let amounts: Vec<String> = shown.iter().map(|(o, _)| money(o.amount_cents)).collect();
    let tenant_w = widest("tenant", shown.iter().map(|(o, _)| o.tenant.as_str()), 40);
    let order_w = widest("order", shown.iter().map(|(o, _)| o.order_id.as_str()), 40);
    let amount_w = widest("amount", amounts.iter().map(String::as_str), 16);
    let status_w = if narrow { 7 } else { 15 };
    let mut fixed = vec![1, status_w, amount_w];
    if !narrow {
        fixed.extend([3, 13, 14]); // currency, updated, change
    }
    let flexible = remaining(inner.width, &fixed, fixed.len() + 2);
    let (tenant_w, order_w) = share(flexible, tenant_w, order_w);
    let mut columns = vec![
        (Constraint::Length(1), false),
        (Constraint::Length(tenant_w), false),
        (Constraint::Length(order_w), false),
        (Constraint::Length(status_w), false),
        (Constraint::Length(amount_w), true),
    ];
    let mut titles = vec!["", "tenant", "order", "status", "amount"];
    if !narrow {
        columns.extend([
            (Constraint::Length(3), false),
            (Constraint::Length(13), false),
            (Constraint::Length(14), false),
        ]);
        titles.extend(["cur", "updated", "change"]);
    }
    let grid = Grid::new(inner, &columns);
    grid.header(buf, y, &titles);
    y += 1;

    for (order, change) in shown {
        if y >= bottom {
            break;
        }
        let (marker, row_style) = match change {
            Change::Same => (" ", Style::new()),
            Change::New => (
                "+",
                Style::new().fg(Color::Green).add_modifier(Modifier::BOLD),
            ),
            Change::StatusChanged { .. } => ("*", Style::new().fg(Color::Black).bg(Color::Yellow)),
        };
        buf.set_style(
            Rect {
                y,
                height: 1,
                ..inner
            },
            row_style,
        );
        grid.cell(buf, y, 0, marker, row_style);
        grid.cell(buf, y, 1, order.tenant.as_str(), row_style);
        grid.cell(buf, y, 2, order.order_id.as_str(), row_style);
        let status = order.status.as_str();
        let status_style = match (change, EventType::from_str(status)) {
            (Change::Same, Ok(t)) => type_style(t),
            _ => row_style,
        };
        grid.cell(
            buf,
            y,
            3,
            if narrow { short_status(status) } else { status },
            status_style,
        );
        grid.cell(buf, y, 4, &money(order.amount_cents), row_style);
        if !narrow {
            grid.cell(buf, y, 5, order.currency.as_str(), row_style);
            grid.cell(buf, y, 6, &time_of_day(&order.updated_at), row_style);
            if let Change::StatusChanged { from } = change {
                grid.cell(
                    buf,
                    y,
                    7,
                    &format!("was {}", short_status(from.as_str())),
                    row_style,
                );
            }
        }
        y += 1;
    }
}

/// `order_paid` → `paid`; anything unexpected as it came.
fn short_status(status: &str) -> &str {
    match status {
        "order_cancelled" => "cancel",
        s => s.strip_prefix("order_").unwrap_or(s),
    }
}

//! Per-tenant stats (`/stats`) with the events/s rate seen on the topic.

use ratatui::prelude::*;
use spine_core::event::EventType;

use super::{compact, draw_api_status, line, money, pane_block, rate, title_extras, Grid};
use crate::app::{App, Pane};

pub fn draw(frame: &mut Frame<'_>, area: Rect, app: &App) {
    let tenants = app.visible_stats();
    let narrow = area.width < 72;
    let mut title = vec![Span::styled(
        "Stats",
        Style::new().add_modifier(Modifier::BOLD),
    )];
    if let Some(batch) = app.stats.data.as_ref().and_then(|d| d.as_of_batch) {
        title.push(Span::raw(if narrow {
            format!(" #{batch}")
        } else {
            format!(" · batch {batch}")
        }));
    }
    title.extend(title_extras(app, Pane::Stats, tenants.len()));
    let block = pane_block(app, Pane::Stats, title);
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let buf = frame.buffer_mut();
    let bottom = inner.bottom();
    let mut y = draw_api_status(buf, inner, inner.y, app, &app.stats, "/stats");

    let (columns, titles): (Vec<(Constraint, bool)>, &[&str]) = if narrow {
        (
            vec![
                (Constraint::Fill(1), false),
                (Constraint::Length(8), true),
                (Constraint::Length(13), true),
                (Constraint::Length(7), true),
            ],
            &["tenant", "orders", "revenue", "ev/s"],
        )
    } else {
        (
            vec![
                (Constraint::Fill(1), false),
                (Constraint::Length(9), true),
                (Constraint::Length(15), true),
                (Constraint::Length(8), true),
                (Constraint::Length(8), true),
                (Constraint::Length(8), true),
                (Constraint::Length(9), true),
                (Constraint::Length(8), true),
            ],
            &[
                "tenant",
                "orders",
                "revenue",
                "placed",
                "paid",
                "shipped",
                "cancelled",
                "ev/s",
            ],
        )
    };
    if y >= bottom {
        return;
    }
    let grid = Grid::new(inner, &columns);
    grid.header(buf, y, titles);
    y += 1;
    // One row is kept for the total, so the topic's whole rate is always in view.
    let last = bottom.saturating_sub(1);

    let plain = Style::new();
    // Narrow, each tenant's count per status goes on a line under it, if every tenant shown
    // still fits; otherwise the tenants come first.
    let shown = tenants.len().saturating_sub(app.scroll(Pane::Stats));
    let with_counts = narrow && shown * 2 <= last.saturating_sub(y) as usize;
    for t in tenants.iter().skip(app.scroll(Pane::Stats)) {
        let lines = if with_counts { 2 } else { 1 };
        if y + lines > last {
            break;
        }
        grid.cell(
            buf,
            y,
            0,
            t.tenant.as_str(),
            Style::new().add_modifier(Modifier::BOLD),
        );
        grid.cell(buf, y, 1, &t.orders.to_string(), plain);
        grid.cell(buf, y, 2, &money(t.revenue_cents), plain);
        let ev = rate(app.rate(Some(&t.tenant)));
        if narrow {
            grid.cell(buf, y, 3, &ev, plain);
        }
        if with_counts {
            // The count per status under the row; in short numbers, then with short labels,
            // if whole ones do not fit.
            let counts = EventType::ALL.map(|ty| t.count(ty));
            let [placed, paid, shipped, cancelled] = counts.map(|n| n.to_string());
            let mut split =
                format!("  placed {placed}  paid {paid}  shipped {shipped}  cancel {cancelled}");
            let [placed, paid, shipped, cancelled] = counts.map(compact);
            if super::width(&split) > inner.width {
                split = format!("placed {placed} paid {paid} shipped {shipped} cancel {cancelled}");
            }
            if super::width(&split) > inner.width {
                split = format!("plc {placed} paid {paid} shp {shipped} cxl {cancelled}");
            }
            line(buf, inner, y + 1, &split, super::dim());
        } else if !narrow {
            for (i, ty) in EventType::ALL.into_iter().enumerate() {
                grid.cell(
                    buf,
                    y,
                    3 + i,
                    &t.count(ty).to_string(),
                    super::tail::type_style(ty),
                );
            }
            grid.cell(buf, y, 7, &ev, plain);
        }
        y += lines;
    }

    if y <= last {
        // Every tenant, whatever the filter: the topic's rate is the whole topic's.
        let last = y;
        let total = Style::new().fg(Color::Cyan).add_modifier(Modifier::BOLD);
        grid.cell(buf, last, 0, "all", total);
        if let Some(all) = &app.stats.data {
            grid.cell(
                buf,
                last,
                1,
                &all.tenants
                    .iter()
                    .map(|t| t.orders)
                    .sum::<i64>()
                    .to_string(),
                total,
            );
            grid.cell(
                buf,
                last,
                2,
                &money(all.tenants.iter().map(|t| t.revenue_cents).sum()),
                total,
            );
        }
        grid.cell(
            buf,
            last,
            if narrow { 3 } else { 7 },
            &rate(app.rate(None)),
            total,
        );
    }
}

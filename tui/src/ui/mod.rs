//! Drawing: a pure function of [`App`] onto a frame, one file per pane.
//!
//! The layout is a 2×2 grid between a one-line header and a one-line footer: the topic tail
//! and the orders on top, the stats and the micro-batches below. On a narrow terminal (80×24)
//! the left column takes a little more width and the panes use compact formats; wider, every
//! pane adds columns (times, currencies, batch details), and taller, more rows.

mod batches;
mod chrome;
mod detail;
mod orders;
mod stats;
mod tail;

use ratatui::prelude::*;
use ratatui::widgets::{Block, BorderType, Borders};

use crate::app::{App, Health, Pane, WallTime};
use crate::text::SafeText;

/// Below this width the left column gets 58% of it (its panes have more columns), above it
/// the columns share equally.
const WIDE_SCREEN: u16 = 120;

pub fn draw(frame: &mut Frame<'_>, app: &App) {
    let area = frame.area();
    let header_lines = chrome::header_height(app, area.width);
    let [header, body, footer] = Layout::vertical([
        Constraint::Length(header_lines),
        Constraint::Min(0),
        Constraint::Length(1),
    ])
    .areas(area);
    chrome::header(frame, header, app);
    chrome::footer(frame, footer, app);

    if let Some(d) = &app.detail {
        detail::draw(frame, body, app, d);
    } else if app.zoom {
        draw_pane(frame, body, app, app.focus);
    } else {
        grid(frame, body, app);
    }
    if app.help {
        chrome::help(frame, app);
    }
}

fn draw_pane(frame: &mut Frame<'_>, area: Rect, app: &App, pane: Pane) {
    match pane {
        Pane::Tail => tail::draw(frame, area, app),
        Pane::Orders => orders::draw(frame, area, app),
        Pane::Stats => stats::draw(frame, area, app),
        Pane::Batches => batches::draw(frame, area, app),
    }
    let buf = frame.buffer_mut();
    // The selected row is the first one a pane lists, under its title and column headers.
    // (The batches mark theirs: their first table is the partitions'.)
    let first_row = match pane {
        Pane::Batches => None,
        _ => data_rows(buf, area),
    };
    if let (Some(needle), true) = (&app.search, matches!(pane, Pane::Tail | Pane::Orders)) {
        if let Some(rows) = first_row {
            highlight_matches(buf, rows, needle);
        }
    }
    if app.focus == pane {
        if let Some(rows) = first_row {
            let row = Rect { height: 1, ..rows };
            buf.set_style(row, Style::new().add_modifier(Modifier::REVERSED));
        }
    }
}

/// The rows of a pane under its column headers (the first underlined line), if any has text.
fn data_rows(buf: &Buffer, area: Rect) -> Option<Rect> {
    let header = (area.y + 1..area.bottom()).find(|&y| {
        (area.x..area.right()).any(|x| {
            buf[(x, y)]
                .style()
                .add_modifier
                .contains(Modifier::UNDERLINED)
        })
    })?;
    if header + 1 >= area.bottom() {
        return None;
    }
    let rows = Rect {
        y: header + 1,
        height: area.bottom() - header - 1,
        ..area
    };
    let has_text = (rows.x..rows.right()).any(|x| buf[(x, rows.y)].symbol() != " ");
    has_text.then_some(rows)
}

/// Marks every case-insensitive occurrence of `needle` in the rows (the `/` filter's matches).
fn highlight_matches(buf: &mut Buffer, rows: Rect, needle: &str) {
    let needle: Vec<String> = needle.chars().map(|c| c.to_lowercase().collect()).collect();
    if needle.is_empty() {
        return;
    }
    let style = Style::new()
        .fg(Color::Black)
        .bg(Color::Yellow)
        .add_modifier(Modifier::BOLD);
    for y in rows.y..rows.bottom() {
        let cells: Vec<(u16, String)> = (rows.x..rows.right())
            .map(|x| (x, buf[(x, y)].symbol().to_lowercase()))
            .filter(|(_, s)| !s.is_empty())
            .collect();
        for start in 0..cells.len() {
            let hit = needle.len() <= cells.len() - start
                && needle.iter().zip(&cells[start..]).all(|(n, (_, c))| n == c);
            if hit {
                for (x, _) in &cells[start..start + needle.len()] {
                    buf[(*x, y)].set_style(style);
                }
            }
        }
    }
}

fn grid(frame: &mut Frame<'_>, body: Rect, app: &App) {
    let left = if body.width < WIDE_SCREEN { 55 } else { 50 };
    let columns = [
        Constraint::Percentage(left),
        Constraint::Percentage(100 - left),
    ];
    let [top, bottom] =
        Layout::vertical([Constraint::Percentage(55), Constraint::Percentage(45)]).areas(body);
    let [tail_area, orders_area] = Layout::horizontal(columns).areas(top);
    let [stats_area, batches_area] = Layout::horizontal(columns).areas(bottom);
    draw_pane(frame, tail_area, app, Pane::Tail);
    draw_pane(frame, orders_area, app, Pane::Orders);
    draw_pane(frame, stats_area, app, Pane::Stats);
    draw_pane(frame, batches_area, app, Pane::Batches);
}

/// The frame of a pane: a title line on top (thick and cyan when focused) and, for the left
/// column, a rule on its right. No other borders: at 80×24 every column counts.
fn pane_block<'a>(app: &App, pane: Pane, title: Vec<Span<'a>>) -> Block<'a> {
    let focused = app.focus == pane;
    let mut spans = vec![Span::raw(" ")];
    spans.extend(title);
    spans.push(Span::raw(" "));
    let borders = match pane {
        Pane::Tail | Pane::Stats => Borders::TOP | Borders::RIGHT,
        Pane::Orders | Pane::Batches => Borders::TOP,
    };
    let block = Block::new().borders(borders).title(Line::from(spans));
    if focused {
        block
            .border_type(BorderType::Thick)
            .border_style(Style::new().fg(Color::Cyan))
            .title_style(Style::new().add_modifier(Modifier::BOLD))
    } else {
        block.border_style(Style::new().fg(Color::DarkGray))
    }
}

/// Title spans shared by the panes: the tenant filter and the scroll position.
fn title_extras(app: &App, pane: Pane, rows: usize) -> Vec<Span<'static>> {
    let mut spans = Vec::new();
    // The batches are the whole topic's: the filter does not narrow them.
    if let (Some(tenant), false) = (&app.filter, pane == Pane::Batches) {
        spans.push(Span::raw(" · "));
        spans.push(Span::styled(
            format!("tenant {tenant}"),
            Style::new().fg(Color::Magenta),
        ));
    }
    if let (Some(needle), true) = (&app.search, matches!(pane, Pane::Tail | Pane::Orders)) {
        spans.push(Span::raw(" · "));
        spans.push(Span::styled(
            format!("/{needle}"),
            Style::new().fg(Color::Black).bg(Color::Yellow),
        ));
    }
    if let (Some((p, o)), Pane::Tail) = (app.tail.seek, pane) {
        spans.push(Span::styled(
            format!(" · from {p}@{o}"),
            Style::new().fg(Color::Magenta),
        ));
    }
    if app.zoom && app.focus == pane {
        spans.push(Span::styled(" · zoom", Style::new().fg(Color::Cyan)));
    }
    let scroll = app.scroll(pane);
    if scroll > 0 {
        spans.push(Span::styled(
            format!(" · {}/{}", scroll + 1, rows),
            Style::new().fg(Color::DarkGray),
        ));
    }
    spans
}

/// The footer while a line is edited: what it is for, the text and a cursor, and why the
/// text was refused if it was.
fn edit_line(edit: &crate::app::LineEdit) -> Line<'static> {
    let prompt = match edit.purpose {
        crate::app::Purpose::Filter => "/",
        crate::app::Purpose::Seek => "seek partition:offset ",
    };
    let mut spans = vec![
        Span::styled(prompt, Style::new().fg(Color::Black).bg(Color::Yellow)),
        Span::raw(SafeText::new(&edit.text).to_string()),
        Span::styled("▏", Style::new().fg(Color::Yellow)),
    ];
    match edit.error {
        Some(e) => spans.push(Span::styled(format!("  {e}"), Style::new().fg(Color::Red))),
        None => spans.push(Span::styled(
            "  Enter keep · Esc cancel",
            Style::new().fg(Color::DarkGray),
        )),
    }
    Line::from(spans)
}

/// Columns laid out once per pane; rows are drawn cell by cell into the buffer, cut to their
/// column's width.
struct Grid {
    cells: Vec<(Rect, bool)>,
    right_edge: u16,
}

impl Grid {
    /// `columns`: each width and whether it is right-aligned (numbers).
    fn new(area: Rect, columns: &[(Constraint, bool)]) -> Grid {
        let row = Rect { height: 1, ..area };
        let rects = Layout::horizontal(columns.iter().map(|(c, _)| *c))
            .spacing(1)
            .split(row);
        Grid {
            cells: rects
                .iter()
                .zip(columns)
                .map(|(r, (_, right))| (*r, *right))
                .collect(),
            right_edge: area.right(),
        }
    }

    fn cell(&self, buf: &mut Buffer, y: u16, column: usize, text: &str, style: Style) {
        let Some(&(rect, right)) = self.cells.get(column) else {
            return;
        };
        let w = width(text);
        let x = if right && w < rect.width {
            rect.x + rect.width - w
        } else {
            rect.x
        };
        put(buf, x, y, text, rect.width, style);
    }

    /// Text from `column` to the end of the row (a malformed record's reason).
    fn rest(&self, buf: &mut Buffer, y: u16, column: usize, text: &str, style: Style) {
        let Some(&(rect, _)) = self.cells.get(column) else {
            return;
        };
        put(
            buf,
            rect.x,
            y,
            text,
            self.right_edge.saturating_sub(rect.x),
            style,
        );
    }

    fn header(&self, buf: &mut Buffer, y: u16, titles: &[&str]) {
        let style = Style::new().add_modifier(Modifier::BOLD | Modifier::UNDERLINED);
        for (i, t) in titles.iter().enumerate() {
            self.cell(buf, y, i, t, style);
        }
    }
}

/// Text in at most `max` columns; cut text ends in `…`, so it never passes for whole.
fn put(buf: &mut Buffer, x: u16, y: u16, text: &str, max: u16, style: Style) {
    if width(text) <= max || max < 2 {
        buf.set_stringn(x, y, text, max as usize, style);
    } else {
        let (end, _) = buf.set_stringn(x, y, text, (max - 1) as usize, style);
        buf.set_stringn(end, y, "…", 1, style);
    }
}

/// A line of text across a whole row, cut at its end.
fn line(buf: &mut Buffer, area: Rect, y: u16, text: &str, style: Style) {
    put(buf, area.x, y, text, area.width, style);
}

/// Text word-wrapped over at most `max_lines` rows from `y`; returns the rows used.
fn wrapped(buf: &mut Buffer, area: Rect, y: u16, text: &str, style: Style, max_lines: u16) -> u16 {
    let width = area.width as usize;
    if width == 0 {
        return 0;
    }
    let mut rows: Vec<String> = vec![String::new()];
    for word in text.split(' ') {
        let current = rows.last().map_or(0, |r| Span::raw(r.as_str()).width());
        let w = Span::raw(word).width();
        if current > 0 && current + 1 + w > width {
            rows.push(String::new());
        }
        if let Some(r) = rows.last_mut() {
            if !r.is_empty() {
                r.push(' ');
            }
            r.push_str(word);
        }
    }
    let mut used = 0;
    for row in rows.iter().take(max_lines as usize) {
        if y + used >= area.bottom() {
            break;
        }
        line(buf, area, y + used, row, style);
        used += 1;
    }
    used
}

/// Why an API-fed pane may be stale, or that it waits for data.
fn api_status<T>(
    app: &App,
    polled: &crate::app::Polled<T>,
    route: &str,
) -> Option<(String, Style)> {
    let stale = polled
        .fetched_at
        .map(|t| format!("data of {}; ", clock(&t)))
        .unwrap_or_default();
    match (&app.api, &polled.error) {
        (Health::Down { since, error }, _) => Some((
            format!("{stale}API down since {}: {error}", clock(since)),
            Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        )),
        (_, Some(error)) => Some((
            format!("{stale}{route}: {error}"),
            Style::new().fg(Color::Red),
        )),
        _ if polled.data.is_none() => Some((
            format!("waiting for {route}…"),
            Style::new().fg(Color::DarkGray),
        )),
        _ => None,
    }
}

/// Draws the status of an API-fed pane (two rows at most); returns the next free row.
fn draw_api_status<T>(
    buf: &mut Buffer,
    area: Rect,
    y: u16,
    app: &App,
    polled: &crate::app::Polled<T>,
    route: &str,
) -> u16 {
    match api_status(app, polled, route) {
        Some((text, style)) => y + wrapped(buf, area, y, &text, style, 2),
        None => y,
    }
}

/// Splits `avail` columns between two text columns that need `a` and `b` (a name, then an
/// id): each gets what it needs and half of what is left if both fit; otherwise the id is kept
/// whole as long as the name keeps a few columns, and past that they share.
fn share(avail: u16, a: u16, b: u16) -> (u16, u16) {
    const NAME_AT_LEAST: u16 = 5;
    if a + b <= avail {
        let spare = avail - a - b;
        return (a + spare / 2, b + spare - spare / 2);
    }
    let keep = a.min(NAME_AT_LEAST);
    if avail >= keep + b {
        (avail - b, b)
    } else {
        let first = a.min(avail / 2);
        (first, avail - first)
    }
}

/// Columns left for the flexible ones once the fixed ones and the gaps are taken.
fn remaining(total: u16, fixed: &[u16], columns: usize) -> u16 {
    total.saturating_sub(fixed.iter().sum::<u16>() + columns.saturating_sub(1) as u16)
}

/// Display width of a string, in columns.
fn width(s: &str) -> u16 {
    Span::raw(s).width().min(u16::MAX as usize) as u16
}

/// The width of the widest of `values` (and of the column's title), at most `max`.
fn widest<'a>(title: &str, values: impl Iterator<Item = &'a str>, max: u16) -> u16 {
    values
        .map(width)
        .chain([width(title)])
        .max()
        .unwrap_or(0)
        .min(max)
}

pub fn clock(t: &WallTime) -> String {
    t.format("%H:%M:%S").to_string()
}

/// Cents as units with two decimals: 12999 → "129.99".
pub fn money(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

/// A count in at most five characters: 21533 → "21.5k".
pub fn compact(n: i64) -> String {
    let a = n.unsigned_abs() as f64;
    let sign = if n < 0 { "-" } else { "" };
    match a {
        a if a < 10_000.0 => n.to_string(),
        a if a < 999_500.0 => format!("{sign}{:.1}k", a / 1e3).replace(".0k", "k"),
        a if a < 999_500_000.0 => format!("{sign}{:.1}M", a / 1e6).replace(".0M", "M"),
        a => format!("{sign}{:.1}G", a / 1e9).replace(".0G", "G"),
    }
}

/// A rate short enough for a narrow column.
pub fn rate(per_sec: f64) -> String {
    if per_sec >= 100.0 {
        format!("{per_sec:.0}")
    } else {
        format!("{per_sec:.1}")
    }
}

/// The time of day of an RFC 3339 UTC timestamp from the API, to the millisecond, or the text
/// itself if it is not one.
pub fn time_of_day(text: &SafeText) -> String {
    match chrono::DateTime::parse_from_rfc3339(text.as_str()) {
        Ok(t) => t
            .with_timezone(&chrono::Utc)
            .format("%H:%M:%S%.3fZ")
            .to_string(),
        Err(_) => text.as_str().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_columns_share_the_room() {
        assert_eq!(share(20, 7, 9), (9, 11), "both fit: they share the rest");
        assert_eq!(
            share(20, 28, 7),
            (13, 7),
            "the wide one gives way to what the other needs"
        );
        assert_eq!(share(20, 28, 30), (10, 10));
        assert_eq!(share(20, 4, 30), (4, 16));
        assert_eq!(remaining(40, &[1, 6, 7, 6], 6), 15);
    }

    #[test]
    fn formats() {
        assert_eq!(money(12999), "129.99");
        assert_eq!(money(5), "0.05");
        assert_eq!(money(-150), "-1.50");
        assert_eq!(rate(4999.6), "5000");
        assert_eq!(compact(9999), "9999");
        assert_eq!(compact(21533), "21.5k");
        assert_eq!(compact(40_000), "40k");
        assert_eq!(compact(1_250_000), "1.2M");
        assert_eq!(rate(12.34), "12.3");
        assert_eq!(
            time_of_day(&"2026-11-25T12:00:00.123456Z".into()),
            "12:00:00.123Z"
        );
        assert_eq!(time_of_day(&"soon".into()), "soon");
    }
}

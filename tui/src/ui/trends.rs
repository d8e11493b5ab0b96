//! The strip under the header: the last [`SPAN_SECS`] as sparklines, oldest on the left.
//! Left, one above the other on one scale: records/s arriving on the topic (`in`) and records/s
//! the processor committed (`done`); right: the live lag and the duration of the batches.
//! A `·` is a moment nothing was known (the API or the broker did not answer).

use ratatui::prelude::*;
use ratatui::widgets::Sparkline;

use super::{compact, dim, rate, width};
use crate::app::{App, Sample};

/// The time the strip covers, in samples (one a poll, about a second).
pub const SPAN_SECS: usize = 180;

/// Rows of the strip: none on a very short terminal, sparklines of one row each on a small one,
/// of two on a tall one.
pub fn height(area: Rect) -> u16 {
    match area.height {
        0..=15 => 0,
        16..=39 => 2,
        _ => 4,
    }
}

pub fn draw(frame: &mut Frame<'_>, area: Rect, app: &App) {
    if area.height < 2 {
        return;
    }
    let [left, rule, right] = Layout::horizontal([
        Constraint::Fill(1),
        Constraint::Length(3),
        Constraint::Fill(1),
    ])
    .areas(area);
    let rows = |r: Rect| Layout::vertical([Constraint::Fill(1), Constraint::Fill(1)]).areas(r);
    let [input_area, done_area] = rows(left);
    let [lag_area, batch_area] = rows(right);
    for y in area.top()..area.bottom() {
        frame.buffer_mut().set_string(rule.x + 1, y, "│", dim());
    }

    let t = &app.trends;
    let input_value = format!("{}/s", rate(app.rate(None)));
    let done_value = t
        .recent(5, |s| s.processed)
        .map_or("?".to_owned(), |r| format!("{}/s", rate(r)));
    let lag_value = match app.lag_total() {
        Ok(Some(n)) => compact(n),
        Ok(None) => "?".to_owned(),
        Err(_) => "error".to_owned(),
    };
    let batch_value = app
        .batches
        .data
        .as_ref()
        .and_then(|b| b.batches.iter().max_by_key(|b| b.batch_id))
        .map_or("-".to_owned(), |b| format!("{:.0}ms", b.total_ms));

    // In and done share a scale: the gap between them is the processor falling behind.
    let left_labels = [("in", input_value), ("done", done_value)];
    let right_labels = [("lag", lag_value), ("batch", batch_value)];
    // Each column's labels take the width of its wider one; the sparklines the rest.
    let label_width = |labels: &[(&str, String); 2]| {
        labels
            .iter()
            .map(|(l, v)| width(l) + 1 + width(v))
            .max()
            .unwrap_or(0)
    };
    let (left_label, right_label) = (label_width(&left_labels), label_width(&right_labels));
    let left_cells = left.width.saturating_sub(left_label + 1) as usize;
    let right_cells = right.width.saturating_sub(right_label + 1) as usize;

    // Rates and durations are drawn in tenths, so that a slow trickle still shows.
    let rate10 = |v: Option<f64>| v.map(|r| (r.max(0.0) * 10.0).round() as u64);
    let input = series(app, left_cells, false, |s| s.input);
    let done = series(app, left_cells, false, |s| s.processed);
    let shared = input
        .iter()
        .chain(&done)
        .filter_map(|v| rate10(*v))
        .max()
        .unwrap_or(1)
        .max(1);
    let to_u64 = |v: &[Option<f64>], scale: f64| -> Vec<Option<u64>> {
        v.iter()
            .map(|v| v.map(|x| (x.max(0.0) * scale).round() as u64))
            .collect()
    };
    let lag = series(app, right_cells, false, |s| s.lag.map(|l| l as f64));
    let batch = series(app, right_cells, true, |s| s.batch_ms);
    let sparks = [
        Spark {
            area: input_area,
            label: "in",
            value: &left_labels[0].1,
            label_width: left_label,
            data: to_u64(&input, 10.0),
            max: Some(shared),
            color: Color::Cyan,
        },
        Spark {
            area: done_area,
            label: "done",
            value: &left_labels[1].1,
            label_width: left_label,
            data: to_u64(&done, 10.0),
            max: Some(shared),
            color: Color::Green,
        },
        Spark {
            area: lag_area,
            label: "lag",
            value: &right_labels[0].1,
            label_width: right_label,
            data: to_u64(&lag, 1.0),
            max: None,
            color: Color::Yellow,
        },
        Spark {
            area: batch_area,
            label: "batch",
            value: &right_labels[1].1,
            label_width: right_label,
            data: to_u64(&batch, 10.0),
            max: None,
            color: Color::Magenta,
        },
    ];
    for spark in sparks {
        spark.draw(frame);
    }
}

/// One labelled sparkline: the label and its current value on the bottom row, the bars after.
struct Spark<'a> {
    area: Rect,
    label: &'a str,
    value: &'a str,
    /// The width the labels of this column take (the value is right-aligned in it).
    label_width: u16,
    data: Vec<Option<u64>>,
    /// The top of the scale (`None`: the largest value shown).
    max: Option<u64>,
    color: Color,
}

impl Spark<'_> {
    fn draw(self, frame: &mut Frame<'_>) {
        let a = self.area;
        let buf = frame.buffer_mut();
        let text_y = a.top() + a.height.saturating_sub(1);
        buf.set_stringn(
            a.x,
            text_y,
            self.label,
            a.width as usize,
            Style::new().add_modifier(Modifier::BOLD),
        );
        let value_x = a.x + self.label_width.saturating_sub(width(self.value));
        buf.set_stringn(
            value_x,
            text_y,
            self.value,
            a.right().saturating_sub(value_x) as usize,
            Style::new(),
        );
        let cells = a.width.saturating_sub(self.label_width + 1);
        if cells == 0 || self.data.is_empty() {
            return;
        }
        let n = (self.data.len() as u16).min(cells);
        let area = Rect {
            x: a.right() - n,
            width: n,
            ..a
        };
        let mut widget = Sparkline::default()
            .data(self.data)
            .style(Style::new().fg(self.color))
            .absent_value_symbol("·")
            .absent_value_style(dim());
        if let Some(m) = self.max {
            widget = widget.max(m);
        }
        frame.render_widget(widget, area);
    }
}

/// A series folded to `cells` cells covering [`SPAN_SECS`]: means of each cell's samples, or
/// with `max` the largest (a batch's duration is not averaged away by the polls between batches).
fn series(
    app: &App,
    cells: usize,
    max: bool,
    value: impl Fn(&Sample) -> Option<f64>,
) -> Vec<Option<f64>> {
    if cells == 0 {
        return Vec::new();
    }
    app.trends
        .series(cells, SPAN_SECS.div_ceil(cells), max, value)
}

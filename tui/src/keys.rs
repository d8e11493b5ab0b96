//! Keys to actions: the only place that knows the key bindings (the footer and the help list
//! them from [`BINDINGS`]).

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::app::Action;

/// What each key does: the key, its word in the footer (empty: help only), its help line.
pub const BINDINGS: [(&str, &str, &str); 8] = [
    ("q/Esc", "quit", "quit (Esc closes this help first)"),
    (
        "Tab",
        "focus",
        "focus the next pane (Shift-Tab: the previous)",
    ),
    (
        "↑↓ PgUp/PgDn",
        "scroll",
        "scroll the focused pane (also j/k, Space)",
    ),
    ("Home/End", "", "first / last row of the focused pane"),
    (
        "p",
        "pause",
        "pause the tail, keeping what it shows; again to resume",
    ),
    (
        "t",
        "tenant",
        "next tenant filter, for every pane; after the last, all",
    ),
    ("?", "help", "this help"),
    ("Ctrl-C", "", "quit"),
];

pub fn action(key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    Some(match key.code {
        KeyCode::Char('c') if ctrl => Action::Quit,
        KeyCode::Char('q') => Action::Quit,
        KeyCode::Esc => Action::Back,
        KeyCode::Tab => Action::FocusNext,
        KeyCode::BackTab => Action::FocusPrev,
        KeyCode::Up | KeyCode::Char('k') => Action::ScrollUp,
        KeyCode::Down | KeyCode::Char('j') => Action::ScrollDown,
        KeyCode::PageUp => Action::PageUp,
        KeyCode::PageDown | KeyCode::Char(' ') => Action::PageDown,
        KeyCode::Home | KeyCode::Char('g') => Action::Top,
        KeyCode::End | KeyCode::Char('G') => Action::Bottom,
        KeyCode::Char('p') => Action::TogglePause,
        KeyCode::Char('t') => Action::CycleTenant,
        KeyCode::Char('?') | KeyCode::F(1) => Action::ToggleHelp,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    #[test]
    fn the_documented_keys() {
        assert_eq!(action(key(KeyCode::Char('q'))), Some(Action::Quit));
        assert_eq!(action(key(KeyCode::Esc)), Some(Action::Back));
        assert_eq!(
            action(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
        assert_eq!(action(key(KeyCode::Tab)), Some(Action::FocusNext));
        assert_eq!(action(key(KeyCode::Up)), Some(Action::ScrollUp));
        assert_eq!(action(key(KeyCode::Down)), Some(Action::ScrollDown));
        assert_eq!(action(key(KeyCode::PageUp)), Some(Action::PageUp));
        assert_eq!(action(key(KeyCode::PageDown)), Some(Action::PageDown));
        assert_eq!(action(key(KeyCode::Char('p'))), Some(Action::TogglePause));
        assert_eq!(action(key(KeyCode::Char('t'))), Some(Action::CycleTenant));
        assert_eq!(action(key(KeyCode::Char('?'))), Some(Action::ToggleHelp));
        assert_eq!(action(key(KeyCode::Char('x'))), None);
        let mut release = key(KeyCode::Char('q'));
        release.kind = KeyEventKind::Release;
        assert_eq!(action(release), None);
    }
}

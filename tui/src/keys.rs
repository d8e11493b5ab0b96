//! Keys to actions: the only place that knows the key bindings (the footer and the help list
//! them from [`BINDINGS`]).

use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};

use crate::app::Action;

/// What each key does: the key, its word in the footer (empty: help only), its help line.
pub const BINDINGS: [(&str, &str, &str); 14] = [
    (
        "q/Esc",
        "quit",
        "quit; Esc first closes or clears what is open, one at a time",
    ),
    (
        "Tab",
        "focus",
        "focus the next pane (Shift-Tab: the previous)",
    ),
    (
        "↑↓ PgUp/PgDn",
        "scroll",
        "select a row of the focused pane (also j/k, Space)",
    ),
    (
        "Home/End",
        "",
        "first / last row of the focused pane (also g/G)",
    ),
    (
        "Enter",
        "",
        "open the selected record, order, batch or tenant",
    ),
    (
        "/",
        "",
        "filter tail and orders; Enter keeps it, Esc clears it",
    ),
    ("z", "", "the focused pane fills the screen, and back"),
    (
        "d",
        "",
        "the dead letters and their reasons; Enter shows one whole",
    ),
    (
        "o",
        "",
        "seek the tail to partition:offset (batches: the batch's)",
    ),
    (
        "y",
        "",
        "copy the open record, order or dead letter (OSC 52)",
    ),
    (
        "p",
        "pause",
        "pause the tail so the selection holds; again to resume",
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
        KeyCode::Enter => Action::Open,
        KeyCode::Char('y') => Action::Copy,
        KeyCode::Char('z') => Action::Zoom,
        KeyCode::Char('/') => Action::Filter,
        KeyCode::Char('d') => Action::DeadLetters,
        KeyCode::Char('o') => Action::Seek,
        _ => return None,
    })
}

/// Keys while a line is being edited (`/`, `o`): characters are text, not commands.
pub fn edit_action(key: KeyEvent) -> Option<Action> {
    if key.kind == KeyEventKind::Release {
        return None;
    }
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    Some(match key.code {
        KeyCode::Char('c') if ctrl => Action::Quit,
        KeyCode::Char(c) if !ctrl => Action::Type(c),
        KeyCode::Backspace => Action::Erase,
        KeyCode::Enter => Action::Open,
        KeyCode::Esc => Action::Back,
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
        assert_eq!(action(key(KeyCode::Enter)), Some(Action::Open));
        assert_eq!(action(key(KeyCode::Char('y'))), Some(Action::Copy));
        assert_eq!(action(key(KeyCode::Char('z'))), Some(Action::Zoom));
        assert_eq!(action(key(KeyCode::Char('/'))), Some(Action::Filter));
        assert_eq!(action(key(KeyCode::Char('d'))), Some(Action::DeadLetters));
        assert_eq!(action(key(KeyCode::Char('o'))), Some(Action::Seek));
        assert_eq!(action(key(KeyCode::Char('x'))), None);
        // Editing a line: letters are text (`q` does not quit), Ctrl-C still quits.
        assert_eq!(
            edit_action(key(KeyCode::Char('q'))),
            Some(Action::Type('q'))
        );
        assert_eq!(edit_action(key(KeyCode::Backspace)), Some(Action::Erase));
        assert_eq!(edit_action(key(KeyCode::Enter)), Some(Action::Open));
        assert_eq!(edit_action(key(KeyCode::Esc)), Some(Action::Back));
        assert_eq!(
            edit_action(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Action::Quit)
        );
        let mut release = key(KeyCode::Char('q'));
        release.kind = KeyEventKind::Release;
        assert_eq!(action(release), None);
    }
}

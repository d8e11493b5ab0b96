//! Text that is safe to draw on a terminal.
//!
//! Every string that reaches the screen comes from the network (tenant names, order ids, API
//! error bodies, malformed records), so none may carry terminal escape sequences or other
//! control characters: `"\x1b[2J"` must show as harmless text, not clear the screen. [`SafeText`]
//! can only be built through [`SafeText::new`] (its `Deserialize` goes through it too), so a
//! string of that type has been cleaned, whatever path it took.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// The most characters kept of one value; the rest becomes `…`. Bounds memory and drawing time
/// whatever the sources send.
pub const MAX_CHARS: usize = 200;

/// A cleaned string: C0/C1 control characters, DEL, bidirectional overrides and invisible
/// formatting characters replaced by visible stand-ins, at most [`MAX_CHARS`] characters.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SafeText(String);

impl SafeText {
    pub fn new(raw: &str) -> SafeText {
        let mut out = String::with_capacity(raw.len().min(MAX_CHARS * 4));
        for (i, c) in raw.chars().enumerate() {
            if i == MAX_CHARS {
                out.push('…');
                break;
            }
            out.push(visible(c));
        }
        SafeText(out)
    }

    /// Bytes that may not be UTF-8 (a record key): invalid sequences become `�`.
    pub fn from_bytes(raw: &[u8]) -> SafeText {
        SafeText::new(&String::from_utf8_lossy(raw))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The character drawn for `c`.
fn visible(c: char) -> char {
    match c {
        // C0 controls (ESC, BEL, newline, tab...) as Unicode's "control pictures": ␛ ␇ ␊ ␉.
        '\u{0}'..='\u{1f}' => char::from_u32(0x2400 + c as u32).unwrap_or('\u{fffd}'),
        '\u{7f}' => '\u{2421}', // ␡
        // C1 controls (0x9b is a one-byte CSI on some terminals), bidirectional overrides and
        // isolates (they reorder what follows), zero-width and line/paragraph separators.
        '\u{80}'..='\u{9f}'
        | '\u{200b}'..='\u{200f}'
        | '\u{2028}'..='\u{202e}'
        | '\u{2060}'..='\u{206f}'
        | '\u{feff}'
        | '\u{fff9}'..='\u{fffb}' => '\u{fffd}',
        c => c,
    }
}

impl fmt::Display for SafeText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&str> for SafeText {
    fn from(raw: &str) -> Self {
        SafeText::new(raw)
    }
}

impl AsRef<str> for SafeText {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for SafeText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Ok(SafeText::new(&raw))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_sequences_become_visible_text() {
        assert_eq!(SafeText::new("\x1b[2J").as_str(), "␛[2J");
        assert_eq!(SafeText::new("a\nb\tc\rd\x07\x7f").as_str(), "a␊b␉c␍d␇␡");
        assert_eq!(SafeText::new("\u{9b}31m").as_str(), "\u{fffd}31m");
        assert_eq!(SafeText::new("abc\u{202e}def").as_str(), "abc\u{fffd}def");
        assert!(!SafeText::new("\u{0}\u{1b}\u{9b}\u{7f}")
            .as_str()
            .chars()
            .any(char::is_control));
    }

    #[test]
    fn html_and_ordinary_unicode_are_kept_as_text() {
        let hostile = "<img src=x onerror=alert(1)>";
        assert_eq!(SafeText::new(hostile).as_str(), hostile);
        assert_eq!(
            SafeText::new("Müller & Söhne 東京").as_str(),
            "Müller & Söhne 東京"
        );
    }

    #[test]
    fn long_values_are_cut() {
        let t = SafeText::new(&"x".repeat(10_000));
        assert_eq!(t.as_str().chars().count(), MAX_CHARS + 1);
        assert!(t.as_str().ends_with('…'));
    }

    #[test]
    fn deserializing_cleans() {
        let t: SafeText = serde_json::from_str(r#""\u001b]0;pwned\u0007""#).expect("json string");
        assert_eq!(t.as_str(), "␛]0;pwned␇");
        assert_eq!(SafeText::from_bytes(b"ok\xff").as_str(), "ok\u{fffd}");
    }
}

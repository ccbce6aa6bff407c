//! Text from outside that this service keeps: stores in PostgreSQL, echoes on the bus,
//! writes to its logs. PostgreSQL cannot store a NUL at all (`text` and `jsonb` refuse it
//! with SQLSTATE 22P05, on every retry), and control characters and bidirectional
//! overrides make what a reader sees differ from what was sent. One rule for every field:
//! an identifier is kept exactly as sent or refused; free text is kept cleaned and capped.

use std::fmt;

use serde::Serialize;

/// Whether a character is never kept as sent: a control character (C0 with NUL, DEL,
/// C1) or a bidirectional embedding, override or isolate (U+202A-U+202E, U+2066-U+2069).
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// An identifier (an event id, a payment id, an entity tag) as sent, if it is one: 1 to
/// `max_len` bytes and no unsafe character. Changed, it would name something else.
pub fn identifier(raw: &str, max_len: usize) -> Option<&str> {
    (!raw.is_empty() && raw.len() <= max_len && !raw.chars().any(is_unsafe)).then_some(raw)
}

/// Free text from outside (a cancellation's reason, a quote of bad input), safe to store,
/// echo and log: at most the length it was cleaned to, no unsafe character.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct FreeText(String);

impl FreeText {
    /// Keeps the first `max_chars` characters, each unsafe one replaced: a line break or
    /// tab by a space, so the words stay apart; anything else by U+FFFD, so it shows.
    pub fn clean(raw: &str, max_chars: usize) -> Self {
        let replace = |c: char| match c {
            c if !is_unsafe(c) => c,
            c if c.is_whitespace() => ' ',
            _ => char::REPLACEMENT_CHARACTER,
        };
        Self(raw.chars().take(max_chars).map(replace).collect())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FreeText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<FreeText> for String {
    fn from(text: FreeText) -> Self {
        text.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What the tests send: NUL, the other C0 and C1 controls, DEL, and the bidi overrides.
    const UNSAFE: &[char] = &[
        '\u{0}', '\u{7}', '\u{1b}', '\u{7f}', '\u{85}', '\u{9f}', '\u{202a}', '\u{202e}',
        '\u{2066}', '\u{2069}',
    ];

    #[test]
    fn controls_and_bidi_overrides_are_unsafe_and_printable_text_is_not() {
        for c in UNSAFE.iter().chain(&['\t', '\n', '\r']) {
            assert!(is_unsafe(*c), "{c:?} should be unsafe");
        }
        for c in ['a', ' ', 'é', 'ß', '漢', '😀', '\u{200f}', '\u{fffd}', 'א'] {
            assert!(!is_unsafe(c), "{c:?} should be kept");
        }
    }

    #[test]
    fn an_identifier_is_kept_exactly_or_refused() {
        assert_eq!(identifier("pay_7Hq2xKf9", 128), Some("pay_7Hq2xKf9"));
        assert_eq!(
            identifier("W/\"2f1c-0\", \"a\"", 128),
            Some("W/\"2f1c-0\", \"a\"")
        );
        assert_eq!(identifier(&"p".repeat(128), 128).map(str::len), Some(128));
        for refused in ["", "pay\u{0}1", "pay\r\n1", "\u{202e}1yap", "pay\u{7}"] {
            assert_eq!(identifier(refused, 128), None, "{refused:?}");
        }
        assert_eq!(identifier(&"p".repeat(129), 128), None);
    }

    #[test]
    fn free_text_keeps_its_words_and_shows_what_was_replaced() {
        let cleaned = FreeText::clean("crew\r\nunavailable\tat LHR\u{0}\u{202e}!", 200);

        assert_eq!(
            cleaned.as_str(),
            "crew  unavailable at LHR\u{fffd}\u{fffd}!"
        );
    }

    #[test]
    fn free_text_never_carries_an_unsafe_character() {
        for c in UNSAFE {
            let cleaned = FreeText::clean(&format!("a{c}b"), 200);
            assert!(!cleaned.as_str().chars().any(is_unsafe), "{c:?}");
            assert_eq!(cleaned.as_str().chars().count(), 3, "{c:?}");
        }
    }

    #[test]
    fn free_text_is_capped_in_characters_not_bytes() {
        let long = FreeText::clean(&"é".repeat(100_000), 200);
        let short = FreeText::clean("weather", 200);

        assert_eq!(long.as_str().chars().count(), 200);
        assert_eq!(short.as_str(), "weather");
    }

    #[test]
    fn free_text_is_a_plain_string_on_the_wire() {
        let reason = FreeText::clean("weather\u{0}", 200);

        assert_eq!(
            serde_json::to_value(&reason).ok(),
            Some(serde_json::json!("weather\u{fffd}"))
        );
    }
}

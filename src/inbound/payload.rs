//! The invocation's raw JSON text, read into a `Value` for [`super::parse`].
//!
//! JSON can escape half a UTF-16 surrogate pair (`"\ud800"`), which no Rust string can
//! hold: serde_json refuses the whole document, so one such character anywhere, even in a
//! field nobody reads, would leave an order unanswered. Each lone surrogate is read as
//! U+FFFD instead, and the field it sits in is then judged like any other bad text.

use serde_json::Value;

/// Reads the payload; a lone surrogate escape becomes U+FFFD, anything else that is not
/// JSON is an error.
pub fn read_payload(raw: &str) -> Result<Value, serde_json::Error> {
    serde_json::from_str(raw).or_else(|error| match replace_lone_surrogates(raw) {
        Some(repaired) => serde_json::from_str(&repaired),
        None => Err(error),
    })
}

/// The text with every `\uD800`-`\uDFFF` escape that is not half of a pair replaced by
/// `\uFFFD`, or `None` if it has none. Backslashes only occur in JSON inside strings, so
/// escapes can be read without tracking where strings start and end.
fn replace_lone_surrogates(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut copied = 0;
    let mut i = 0;
    let mut replaced = false;
    while i < bytes.len() {
        if bytes[i] != b'\\' {
            i += 1;
            continue;
        }
        match unicode_escape(bytes, i) {
            Some(0xD800..=0xDBFF)
                if matches!(unicode_escape(bytes, i + 6), Some(0xDC00..=0xDFFF)) =>
            {
                i += 12;
            }
            Some(0xD800..=0xDFFF) => {
                out.push_str(&raw[copied..i]);
                out.push_str("\\ufffd");
                i += 6;
                copied = i;
                replaced = true;
            }
            // Any other escape, `\\` among them: skip both bytes, so an escaped backslash
            // is never read as the start of an escape.
            _ => i += 2,
        }
    }
    replaced.then(|| {
        out.push_str(&raw[copied..]);
        out
    })
}

/// The code unit of a `\uXXXX` escape starting at `at`, if there is one.
fn unicode_escape(bytes: &[u8], at: usize) -> Option<u16> {
    let escape = bytes.get(at..at + 6)?;
    if escape[..2] != *b"\\u" {
        return None;
    }
    let hex = std::str::from_utf8(&escape[2..]).ok()?;
    u16::from_str_radix(hex, 16).ok()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_lone_surrogate_is_read_as_a_replacement_character() {
        for (raw, read) in [
            (r#"{"reason": "a\ud800b"}"#, "a\u{fffd}b"),
            (r#"{"reason": "\udc00"}"#, "\u{fffd}"),
            (r#"{"reason": "\uDBFF\u0041"}"#, "\u{fffd}A"),
            (r#"{"reason": "\ud800\ud800\udc00"}"#, "\u{fffd}\u{10000}"),
            (r#"{"reason": "x\ud800"}"#, "x\u{fffd}"),
        ] {
            assert_eq!(
                read_payload(raw).ok(),
                Some(json!({"reason": read})),
                "{raw}"
            );
        }
    }

    #[test]
    fn pairs_and_escaped_backslashes_are_read_as_they_are() {
        for (raw, read) in [
            (r#"{"a": "\ud83d\ude00"}"#, "😀"),
            (r#"{"a": "\\ud800"}"#, "\\ud800"),
            (r#"{"a": "\\\ud800"}"#, "\\\u{fffd}"),
        ] {
            assert_eq!(read_payload(raw).ok(), Some(json!({"a": read})), "{raw}");
        }
    }

    #[test]
    fn text_that_is_not_json_is_still_an_error() {
        for raw in [
            "",
            "{",
            r#"{"a": "\ud800"#,
            r#"{"a": "\uZZZZ"}"#,
            "nul\u{0}",
        ] {
            assert!(read_payload(raw).is_err(), "{raw:?}");
        }
    }
}

//! The text of a call: `SELECT function(E'<json>'::jsonb)::text`. Sent with the simple
//! query protocol, it is one round trip, and nothing is prepared on the session.
//!
//! The argument is one JSON document, written into an escape string literal. Inside
//! `E'…'` a backslash and a quote are the only characters with a meaning, and both are
//! doubled, so the literal always ends where it was meant to, whatever the JSON holds. The
//! JSON itself never holds a NUL byte: serde_json writes control characters as `\u00XX`.

use serde::Serialize;

/// A function of `database/migrations` that takes one `jsonb` and returns `json`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Function(&'static str);

impl Function {
    /// `name` must be a function of the migrations: it is written into the SQL as it is.
    pub const fn named(name: &'static str) -> Self {
        Self(name)
    }

    pub fn name(&self) -> &'static str {
        self.0
    }
}

/// The SQL that calls `function` with `args`.
pub fn statement(function: Function, args: &impl Serialize) -> Result<String, serde_json::Error> {
    let json = serde_json::to_string(args)?;
    Ok(render(function, &json))
}

fn render(function: Function, json: &str) -> String {
    const BEFORE: &str = "SELECT ";
    const OPEN: &str = "(E'";
    const CLOSE: &str = "'::jsonb)::text";
    let mut sql =
        String::with_capacity(BEFORE.len() + function.0.len() + OPEN.len() + json.len() + 16);
    sql.push_str(BEFORE);
    sql.push_str(function.0);
    sql.push_str(OPEN);
    for c in json.chars() {
        match c {
            '\\' => sql.push_str("\\\\"),
            '\'' => sql.push_str("''"),
            c => sql.push(c),
        }
    }
    sql.push_str(CLOSE);
    sql
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    const ECHO: Function = Function::named("echo");

    #[test]
    fn a_call_passes_its_arguments_as_one_jsonb_literal() {
        let sql = statement(ECHO, &json!({"orderId": "b6f7c1d2", "seats": ["12A"]}));

        assert_eq!(
            sql.ok().as_deref(),
            Some(r#"SELECT echo(E'{"orderId":"b6f7c1d2","seats":["12A"]}'::jsonb)::text"#)
        );
    }

    #[test]
    fn quotes_and_backslashes_cannot_end_the_literal() {
        let sql = statement(ECHO, &json!({"m": "it's \\'; DROP TABLE flights; --"}));

        assert_eq!(
            sql.ok().as_deref(),
            Some(r#"SELECT echo(E'{"m":"it''s \\\\''; DROP TABLE flights; --"}'::jsonb)::text"#)
        );
    }

    #[test]
    fn control_characters_and_non_ascii_stay_inside_the_json() {
        let sql = statement(ECHO, &json!({"m": "a\u{0}b\nc ✈ é"})).unwrap_or_default();

        assert!(!sql.contains('\0'), "{sql:?}");
        assert!(sql.contains(r#""a\\u0000b\\nc ✈ é""#), "{sql}");
    }
}

//! The TOML parser's type errors, said in words: which field of which table,
//! what it must be, and what was found ("`port` of service "a" must be an
//! integer from 1 to 65535, found the string "eighty""); unknown fields and
//! values get the nearest valid name instead of the whole list.

use std::ops::Range;

use super::suggest;

/// A better message for the parser's `message` about `span` of `text`, when
/// it is one this module knows how to say.
pub fn explain(text: &str, span: Range<usize>, message: &str) -> Option<String> {
    let start = span.start.min(text.len());
    if !text.is_char_boundary(start) {
        return None;
    }
    let place = Place::at(text, start);
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (wrong, expected) = rest.split_once('`')?;
        let mut place = place;
        place.table.extend(place.field.take());
        let hint = match suggest(wrong, ticked(expected).into_iter()) {
            Some(near) => format!("; did you mean `{near}`?"),
            None => format!("; valid fields: {}", ticked(expected).join(", ")),
        };
        return Some(format!(
            "unknown field `{wrong}` in {}{hint}",
            place.whose()
        ));
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (wrong, expected) = rest.split_once('`')?;
        let valid = ticked(expected);
        let hint = suggest(wrong, valid.iter().copied())
            .map(|near| format!("; did you mean \"{near}\"?"))
            .unwrap_or_default();
        let field = place.field.as_deref().unwrap_or("the value");
        return Some(format!(
            "`{field}` of {} must be one of \"{}\", found \"{wrong}\"{hint}",
            place.whose(),
            valid.join("\", \"")
        ));
    }
    let expected = if let Some(rest) = message.strip_prefix("invalid type: ") {
        rest.split_once(", expected ")?.1
    } else {
        message.strip_prefix("expected ")?
    };
    let field = place.field.as_deref()?;
    let end = span.end.clamp(start, text.len());
    let found = text
        .get(start..end)
        .map(found)
        .unwrap_or("something else".into());
    Some(format!(
        "`{field}` of {} must be {}, found {found}",
        place.whose(),
        expected_words(field, expected)
    ))
}

/// The names in a serde list like "`a`, `b`, `c`".
fn ticked(list: &str) -> Vec<&str> {
    list.split('`').skip(1).step_by(2).collect()
}

/// Where a value sits: the table header above it and its key.
struct Place {
    /// Header keys (`services`, `web`, `health`), plus inline-table keys.
    table: Vec<String>,
    field: Option<String>,
}

impl Place {
    fn at(text: &str, offset: usize) -> Place {
        let before = &text[..offset];
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let mut table = before[..line_start]
            .lines()
            .rev()
            .find_map(header)
            .unwrap_or_default();
        // Keys on this line: `health = { http = ` gives health, then http.
        let line = &before[line_start..];
        let mut keys: Vec<String> = Vec::new();
        for part in line.split_inclusive(['=', '{', ',']) {
            if let Some(k) = part.strip_suffix('=') {
                let k = k.trim().trim_start_matches(['{', ',']).trim();
                keys.push(unquote(k));
            }
        }
        let mut field = keys.pop();
        table.extend(keys);
        // `env.NODE_ENV` of service "web", rather than a table of its own.
        if table.len() > 2 && table[0] == "services" && table[2] != "health" {
            let inner = table.split_off(2).join(".");
            field = Some(match field {
                Some(f) => format!("{inner}.{f}"),
                None => inner,
            });
        }
        Place { table, field }
    }

    /// "service \"web\"", "the health check of service \"web\"", "[project]"…
    fn whose(&self) -> String {
        let t: Vec<&str> = self.table.iter().map(String::as_str).collect();
        match t.as_slice() {
            ["services", name] => format!("service \"{name}\""),
            ["services", name, "health", ..] => format!("the health check of service \"{name}\""),
            ["services", name, sub, ..] => format!("`{sub}` of service \"{name}\""),
            ["project", ..] => "[project]".into(),
            ["tier", ..] => "a [[tier]]".into(),
            [] => "the top level".into(),
            other => format!("[{}]", other.join(".")),
        }
    }
}

/// The keys of a `[a.b]` or `[[a]]` header line.
fn header(line: &str) -> Option<Vec<String>> {
    let line = line.trim();
    let inner = line.strip_prefix('[')?;
    let inner = inner.strip_prefix('[').unwrap_or(inner);
    let inner = inner.split(']').next()?;
    Some(inner.split('.').map(|k| unquote(k.trim())).collect())
}

fn unquote(k: &str) -> String {
    k.trim_matches(|c| c == '"' || c == '\'').to_string()
}

/// What the parser expected, for a person.
fn expected_words(field: &str, expected: &str) -> String {
    let specific = match field {
        "port" => "an integer from 1 to 65535 or \"auto\"",
        "max_restarts" | "retries" | "log_keep" | "expect_status" => "a whole number",
        "shell" | "oneshot" | "disabled" | "insecure" => "true or false",
        "depends_on" => "an array of service names (strings)",
        "success_exit_codes" => "an array of exit codes (whole numbers 0-255)",
        "profiles" => "an array of profile names (strings)",
        "env" => "a table of NAME = value",
        "health" => "a table like { http = \"/health\" }",
        "services" => "tables like [services.NAME]",
        "tier" => "tables like [[tier]] with a name",
        "project" => "a table",
        _ => "",
    };
    if !specific.is_empty() {
        return specific.into();
    }
    match expected {
        "i64" | "u64" | "i32" | "u32" | "an integer" => "an integer".into(),
        "a boolean" | "bool" => "true or false".into(),
        "a sequence" => "an array".into(),
        "a map" | "struct" => "a table".into(),
        other => other
            .strip_prefix("struct ")
            .map(|_| "a table".to_string())
            .unwrap_or_else(|| other.to_string()),
    }
}

/// The value as written, named by its kind: `the string "eighty"`.
fn found(value: &str) -> String {
    let v = value.trim();
    let short: String = if v.chars().count() > 40 {
        v.chars().take(37).chain("...".chars()).collect()
    } else {
        v.to_string()
    };
    match v.chars().next() {
        Some('"' | '\'') => format!("the string {short}"),
        Some('[') => format!("the array {short}"),
        Some('{') => "a table".into(),
        _ if v == "true" || v == "false" => format!("the boolean {v}"),
        Some(c) if c.is_ascii_digit() || c == '-' || c == '+' => {
            if v.contains(['.', 'e', 'E']) && !v.starts_with("0x") {
                format!("the number {short}")
            } else {
                format!("the integer {short}")
            }
        }
        _ if v.is_empty() => "a table".into(),
        _ => format!("`{short}`"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn explained(text: &str, needle: &str, message: &str) -> String {
        let at = text.find(needle).unwrap();
        explain(text, at..at + needle.len(), message).unwrap()
    }

    #[test]
    fn type_error_names_field_and_kind() {
        let text = "[services.a]\ncommand = \"x\"\nport = \"eighty\"\n";
        assert_eq!(
            explained(text, "\"eighty\"", "invalid type: string \"eighty\", expected i64"),
            "`port` of service \"a\" must be an integer from 1 to 65535 or \"auto\", found the string \"eighty\""
        );
    }

    #[test]
    fn inline_table_field() {
        let text = "[services.a]\nhealth = { http = \"/\", retries = \"3\" }\n";
        assert_eq!(
            explained(text, "\"3\"", "invalid type: string \"3\", expected i64"),
            "`retries` of the health check of service \"a\" must be a whole number, found the string \"3\""
        );
    }

    #[test]
    fn unknown_field_suggests_the_nearest() {
        let text = "[services.a]\nprot = 1\n";
        let m = explained(
            text,
            "prot",
            "unknown field `prot`, expected one of `command`, `shell`, `port`",
        );
        assert_eq!(
            m,
            "unknown field `prot` in service \"a\"; did you mean `port`?"
        );
    }
}

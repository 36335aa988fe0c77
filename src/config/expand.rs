//! `${VAR}` expansion, as in docker compose: `${VAR}`, `${VAR:-default}`,
//! and `$$` for a literal `$`. A `$` not followed by `{` or `$` is kept as is,
//! so shell snippets like `--save ''` or `$HOME` in `sh -c` pass through.
//!
//! A value may use the env entries above it, which may use others: each
//! level can multiply the size (`B = "${A}${A}"`, `C = "${B}${B}"`, …), so a
//! few hundred bytes could grow to gigabytes. Expansion stops at
//! [`MAX_EXPANDED`] per value and [`MAX_DEPTH`] levels.

/// The most one value may grow to by expansion: far more than a command
/// line or an environment variable can hold (the kernel takes 128 KiB).
pub const MAX_EXPANDED: usize = 1 << 20;
/// How deep a value may refer to variables defined by other values.
pub const MAX_DEPTH: usize = 16;

/// Why a string could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    /// `${NAME}` without a default, and NAME is not set.
    Unset(String),
    /// Not well formed: the message says how.
    Malformed(String),
    /// It would grow past [`MAX_EXPANDED`].
    TooLarge,
}

impl std::fmt::Display for ExpandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpandError::Unset(name) => write!(
                f,
                "variable \"{name}\" is not set (write ${{{name}:-default}} to allow that)"
            ),
            ExpandError::Malformed(m) => f.write_str(m),
            ExpandError::TooLarge => write!(
                f,
                "this value expands to over {} MiB (variables that repeat other variables grow \
                 with every level); no value may",
                MAX_EXPANDED >> 20
            ),
        }
    }
}

/// The names `input` refers to with `${NAME}` or `${NAME:-default}`.
pub fn references(input: &str) -> Vec<&str> {
    let mut names = Vec::new();
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else { break };
            let inner = &body[..end];
            names.push(inner.split_once(":-").map_or(inner, |(n, _)| n));
            rest = &body[end + 1..];
        } else {
            rest = after;
        }
    }
    names
}

/// Expand every `${...}` in `input` using `lookup`. An unset variable without
/// a default is an error naming it (a typo must not silently become "").
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(input.len().min(MAX_EXPANDED));
    let mut rest = input;
    // Every piece goes through here: nothing grows past the limit.
    let push = |out: &mut String, piece: &str| {
        if out.len() + piece.len() > MAX_EXPANDED {
            return Err(ExpandError::TooLarge);
        }
        out.push_str(piece);
        Ok(())
    };
    while let Some(pos) = rest.find('$') {
        push(&mut out, &rest[..pos])?;
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| ExpandError::Malformed(format!("unclosed \"${{\" in {input:?}")))?;
            let inner = &body[..end];
            let (name, default) = match inner.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (inner, None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(ExpandError::Malformed(format!(
                    "invalid variable name {name:?} in {input:?}"
                )));
            }
            match lookup(name).filter(|v| default.is_none() || !v.is_empty()) {
                Some(v) => push(&mut out, &v)?,
                None => match default {
                    Some(d) => push(&mut out, d)?,
                    None => return Err(ExpandError::Unset(name.to_string())),
                },
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    push(&mut out, rest)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "PORT" => Some("8080".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn expands_set_and_default() {
        assert_eq!(expand("p=${PORT}", &env).unwrap(), "p=8080");
        assert_eq!(expand("${NOPE:-x}", &env).unwrap(), "x");
        assert_eq!(expand("${EMPTY:-d}", &env).unwrap(), "d");
        assert_eq!(expand("${EMPTY}", &env).unwrap(), "");
        assert_eq!(expand("$$PORT $HOME ''", &env).unwrap(), "$PORT $HOME ''");
    }

    #[test]
    fn unset_and_malformed_are_errors() {
        assert_eq!(
            expand("${NOPE}", &env).unwrap_err(),
            ExpandError::Unset("NOPE".into())
        );
        assert!(expand("${PORT", &env).is_err());
        assert!(expand("${A-B}", &env).is_err());
    }

    #[test]
    fn no_value_grows_past_the_limit() {
        let big = |name: &str| (name == "BIG").then(|| "x".repeat(MAX_EXPANDED / 2));
        assert_eq!(expand("${BIG}", &big).unwrap().len(), MAX_EXPANDED / 2);
        assert_eq!(expand("${BIG}${BIG}", &big).unwrap().len(), MAX_EXPANDED);
        assert_eq!(expand("${BIG}${BIG}x", &big), Err(ExpandError::TooLarge));
        assert_eq!(
            expand("${BIG}${BIG}${BIG}", &big),
            Err(ExpandError::TooLarge)
        );
        let literal = "y".repeat(MAX_EXPANDED + 1);
        assert_eq!(expand(&literal, &big), Err(ExpandError::TooLarge));
    }

    #[test]
    fn references_are_the_names_used() {
        assert_eq!(references("a ${A} $${B} ${C:-${D} $E"), ["A", "C"]);
        assert_eq!(references("${X:-d}${Y}"), ["X", "Y"]);
        assert!(references("$$ $HOME ${").is_empty());
    }
}

//! `${VAR}` expansion, as in docker compose: `${VAR}`, `${VAR:-default}`,
//! and `$$` for a literal `$`. A `$` not followed by `{` or `$` is kept as is,
//! so shell snippets like `--save ''` or `$HOME` in `sh -c` pass through.

/// Why a string could not be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExpandError {
    /// `${NAME}` without a default, and NAME is not set.
    Unset(String),
    /// Not well formed: the message says how.
    Malformed(String),
}

impl std::fmt::Display for ExpandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExpandError::Unset(name) => write!(
                f,
                "variable \"{name}\" is not set (write ${{{name}:-default}} to allow that)"
            ),
            ExpandError::Malformed(m) => f.write_str(m),
        }
    }
}

/// Expand every `${...}` in `input` using `lookup`. An unset variable without
/// a default is an error naming it (a typo must not silently become "").
pub fn expand(input: &str, lookup: &dyn Fn(&str) -> Option<String>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
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
                Some(v) => out.push_str(&v),
                None => match default {
                    Some(d) => out.push_str(d),
                    None => return Err(ExpandError::Unset(name.to_string())),
                },
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
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
}

//! Variables in imported files. Most values keep their `${VAR}` references,
//! rewritten into fpctl's syntax, so that fpctl expands them when it loads
//! the file (the importing user's secrets never land in services.toml).
//! Values that must parse now (durations, numbers, ports) are expanded here,
//! from the environment and the `.env` beside the input, as docker compose
//! and process-compose do.

use std::path::Path;

/// Where the input's variables come from: the environment first, then the
/// `.env` beside the input (compose: "your shell's variables win").
#[derive(Debug, Default)]
pub struct Env {
    dotenv: Vec<(String, String)>,
}

impl Env {
    /// The `.env` in `dir`, if there is one (unreadable lines are skipped
    /// with the whole file: the caller warns).
    pub fn beside(dir: &Path) -> Result<Env, crate::config::DotenvError> {
        let path = dir.join(".env");
        if !path.is_file() {
            return Ok(Env::default());
        }
        let dotenv = crate::config::read_env_file(&path)?;
        Ok(Env { dotenv })
    }

    pub fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().or_else(|| {
            self.dotenv
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        })
    }
}

/// A compose variable that fpctl's syntax cannot say.
#[derive(Debug, thiserror::Error)]
pub enum NoEquivalent {
    #[error("unclosed \"${{\" in {0:?}")]
    Unclosed(String),
    #[error("\"${{{0}}}\" has no equivalent in fpctl")]
    Form(String),
}

/// Compose's variable syntax in fpctl's: `${A}` and `$A` (unset means empty
/// in compose) become `${A:-}`, `${A-x}` becomes `${A:-x}`, `${A:?err}` (an
/// error when unset) becomes `${A}`, and `$$` stays a literal `$`.
///
/// With `shell` (the value runs in a shell), `$A` is left for the shell to
/// expand, and forms only a shell knows (`${A:=x}`, `${A:+x}`, `${#A}`…)
/// become literal text for it (`$${A:=x}`). Names in `set` (`PORT`, which
/// fpctl always sets) keep `${A}` as written.
pub fn convert(input: &str, shell: bool, set: &[&str]) -> Result<String, NoEquivalent> {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push_str("$$");
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| NoEquivalent::Unclosed(input.to_string()))?;
            let inner = &body[..end];
            let split = inner
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(inner.len());
            let (name, op) = inner.split_at(split);
            let converted = match op {
                _ if name.is_empty() && shell => format!("$${{{inner}}}"),
                "" if set.contains(&name) => format!("${{{name}}}"),
                "" => format!("${{{name}:-}}"),
                _ if op.starts_with(":-") => format!("${{{name}:-{}}}", &op[2..]),
                _ if op.starts_with('-') => format!("${{{name}:-{}}}", &op[1..]),
                _ if op.starts_with(":?") || op.starts_with('?') => format!("${{{name}}}"),
                _ if shell => format!("$${{{inner}}}"),
                _ => return Err(NoEquivalent::Form(inner.to_string())),
            };
            out.push_str(&converted);
            rest = &body[end + 1..];
        } else {
            let len = name_len(after);
            if len == 0 || shell {
                out.push('$');
                rest = after;
            } else {
                out.push_str(&format!("${{{}:-}}", &after[..len]));
                rest = &after[len..];
            }
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn name_len(s: &str) -> usize {
    s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len())
}

/// Why a value could not be expanded now.
#[derive(Debug, PartialEq, Eq)]
pub enum Unexpanded {
    /// These variables are set nowhere and have no default.
    Unset(Vec<String>),
    Malformed(String),
}

/// Expand every variable as compose does (`$A`, `${A}`, `${A:-x}`, `${A-x}`,
/// `${A:?err}`, `$$`). A variable set nowhere, without a default, is an
/// error here: its value cannot be guessed.
pub fn expand(input: &str, env: &Env) -> Result<String, Unexpanded> {
    let mut out = String::with_capacity(input.len());
    let mut unset = Vec::new();
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let (name, op, tail) = if let Some(body) = after.strip_prefix('{') {
            let end = body
                .find('}')
                .ok_or_else(|| Unexpanded::Malformed(format!("unclosed \"${{\" in {input:?}")))?;
            let inner = &body[..end];
            let split = name_len(inner);
            (&inner[..split], &inner[split..], &body[end + 1..])
        } else {
            let len = name_len(after);
            (&after[..len], "", &after[len..])
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
            continue;
        }
        let value = env.get(name);
        let (empty_counts, default) = match op {
            "" => (false, None),
            _ if op.starts_with(":-") => (true, Some(&op[2..])),
            _ if op.starts_with('-') => (false, Some(&op[1..])),
            _ if op.starts_with(":?") || op.starts_with('?') => (false, None),
            _ => {
                return Err(Unexpanded::Malformed(format!(
                    "\"${{{name}{op}}}\" cannot be expanded here"
                )))
            }
        };
        match (value, default) {
            (Some(v), Some(d)) if empty_counts && v.is_empty() => out.push_str(d),
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => unset.push(name.to_string()),
        }
        rest = tail;
    }
    out.push_str(rest);
    if unset.is_empty() {
        Ok(out)
    } else {
        Err(Unexpanded::Unset(unset))
    }
}

/// The names of the variables the text refers to, in order, once each.
pub fn names(input: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            rest = tail;
            continue;
        }
        let body = after.strip_prefix('{').unwrap_or(after);
        let name = &body[..name_len(body)];
        if !name.is_empty() && !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
        rest = after;
    }
    out
}

/// `$A` as `${A}`, which fpctl expands (it leaves a bare `$A` alone).
pub fn braced(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        let after = &rest[pos + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push_str("$$");
            rest = tail;
            continue;
        }
        let len = name_len(after);
        if len > 0 && !after.starts_with('{') {
            out.push_str(&format!("${{{}}}", &after[..len]));
            rest = &after[len..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Whether the text refers to a variable at all.
pub fn has_vars(input: &str) -> bool {
    input.replace("$$", "").contains('$')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compose_variables_become_fpctl_variables() {
        let c = |s| convert(s, false, &[]).unwrap();
        assert_eq!(c("${A}"), "${A:-}");
        assert_eq!(c("$A/x"), "${A:-}/x");
        assert_eq!(c("${A:-d}"), "${A:-d}");
        assert_eq!(c("${A-d}"), "${A:-d}");
        assert_eq!(c("${A:?set A}"), "${A}");
        assert_eq!(c("$$HOME and $ 1"), "$$HOME and $ 1");
        assert!(convert("${A:+x}", false, &[]).is_err());
        let sh = |s| convert(s, true, &["PORT"]).unwrap();
        assert_eq!(sh("$A ${B}"), "$A ${B:-}");
        assert_eq!(
            sh("-p ${PORT} -E ${RAILS_ENV:=\"dev\"}"),
            "-p ${PORT} -E $${RAILS_ENV:=\"dev\"}"
        );
        assert_eq!(sh("${#A} ${A:+x}"), "$${#A} $${A:+x}");
    }

    #[test]
    fn values_that_must_parse_expand_from_the_dotenv() {
        let env = Env {
            dotenv: vec![
                ("FPCTL_TEST_INTERVAL".into(), "30s".into()),
                ("FPCTL_TEST_EMPTY".into(), String::new()),
            ],
        };
        assert_eq!(expand("$FPCTL_TEST_INTERVAL", &env).unwrap(), "30s");
        assert_eq!(expand("${FPCTL_TEST_INTERVAL}", &env).unwrap(), "30s");
        assert_eq!(expand("${FPCTL_TEST_EMPTY:-5}", &env).unwrap(), "5");
        assert_eq!(expand("${FPCTL_TEST_EMPTY-5}", &env).unwrap(), "");
        assert_eq!(
            expand("${FPCTL_TEST_NOPE:-9000}:80", &env).unwrap(),
            "9000:80"
        );
        assert_eq!(
            expand("$FPCTL_TEST_NOPE:80", &env),
            Err(Unexpanded::Unset(vec!["FPCTL_TEST_NOPE".into()]))
        );
        assert_eq!(expand("a$$b", &env).unwrap(), "a$b");
        assert!(has_vars("${A}") && !has_vars("a$$b"));
        assert_eq!(names("${A}/x/$B/${A:-y}"), ["A", "B"]);
        assert_eq!(braced("$A/${B}/$$C"), "${A}/${B}/$$C");
    }
}

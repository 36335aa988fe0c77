//! `command`, `setup` and the `${VAR}` expansion inside them.

use std::ops::Range;
use std::sync::Arc;

use toml::Spanned;

use super::values::suggest;
use super::Validator;
use crate::config::raw::{RawService, StringOrList};
use crate::config::{expand, ExpandError, Setup};

/// The most `${VAR}` expansion may make in a whole file: one value is held
/// to 1 MiB, but the `[project] env` is expanded again for every service
/// and every replica.
pub(super) const MAX_EXPANDED_TOTAL: usize = 64 << 20;

impl Validator<'_> {
    pub(super) fn expand_at(
        &mut self,
        s: &str,
        span: Range<usize>,
        env: &[(String, String)],
        name: &str,
    ) -> String {
        let shared = Arc::clone(&self.port_vars);
        let by_name = Arc::clone(&self.port_var_index);
        let dotenv = self.dotenv;
        let lookup = |var: &str| -> Option<String> {
            env.iter()
                .rev()
                .find(|(k, _)| k == var)
                .map(|(_, v)| v.clone())
                .or_else(|| by_name.get(var).cloned())
                .or_else(|| std::env::var(var).ok())
                .or_else(|| {
                    dotenv
                        .iter()
                        .rev()
                        .find(|(k, _)| k == var)
                        .map(|(_, v)| v.clone())
                })
        };
        match expand(s, &lookup) {
            // A NUL cannot be passed to exec or put in the environment.
            Ok(v) if v.contains('\0') => {
                self.error(
                    span,
                    format!("in service \"{name}\": {s:?} contains a NUL character"),
                );
                String::new()
            }
            Ok(v) => {
                let before = self.expanded;
                self.expanded = before.saturating_add(v.len());
                if self.expanded <= MAX_EXPANDED_TOTAL {
                    v
                } else {
                    // Said once; what follows is not expanded at all.
                    if before <= MAX_EXPANDED_TOTAL {
                        self.error(
                            span,
                            format!(
                                "in service \"{name}\": with this value, `${{...}}` expansion makes over {} MiB in this file (the [project] env is expanded for every service and replica); no file may",
                                MAX_EXPANDED_TOTAL >> 20
                            ),
                        );
                    }
                    String::new()
                }
            }
            // Unknown because of an error reported already.
            Err(ExpandError::Unset(var))
                if self.unset_ok_all_here
                    || self.unset_ok_here.contains(&var)
                    || self.unset_ok.contains(&var) =>
            {
                String::new()
            }
            Err(ExpandError::Unset(var)) => {
                let env_names = std::env::vars_os().filter_map(|(k, _)| k.into_string().ok());
                let known: Vec<String> = env
                    .iter()
                    .chain(shared.iter())
                    .chain(dotenv)
                    .map(|(k, _)| k.clone())
                    .chain(env_names)
                    .collect();
                let message = match suggest(&var, known.iter().map(String::as_str)) {
                    Some(near) => format!(
                        "variable \"{var}\" is not set; did you mean \"{near}\"? (or write ${{{var}:-default}} to allow it unset)"
                    ),
                    None => ExpandError::Unset(var).to_string(),
                };
                self.error(span, format!("in service \"{name}\": {message}"));
                String::new()
            }
            Err(e) => {
                self.error(span, format!("in service \"{name}\": {e}"));
                String::new()
            }
        }
    }

    pub(super) fn command(
        &mut self,
        svc: &RawService,
        header: &Range<usize>,
        name: &str,
        env: &[(String, String)],
    ) -> Vec<String> {
        let Some(cmd) = &svc.command else {
            self.error(
                header.clone(),
                format!("service \"{name}\" has no command: give it a command, or a [services.{name}.container] table with image or build"),
            );
            return Vec::new();
        };
        let span = cmd.span();
        match cmd.get_ref() {
            StringOrList::One(s) if s.trim().is_empty() => {
                self.error(span, format!("command of service \"{name}\" is empty"));
                Vec::new()
            }
            StringOrList::One(s) if svc.shell => {
                let s = self.expand_at(s, span, env, name);
                vec!["sh".into(), "-c".into(), s]
            }
            StringOrList::One(s) => self.split(s, span, env, name, "command"),
            StringOrList::Many(v) if v.is_empty() || v[0].trim().is_empty() => {
                self.error(span, format!("command of service \"{name}\" is empty"));
                Vec::new()
            }
            StringOrList::Many(v) if svc.shell => {
                self.error(
                    span,
                    format!("service \"{name}\" has shell = true: write its command as one string"),
                );
                let _ = v;
                Vec::new()
            }
            StringOrList::Many(v) => v
                .iter()
                .map(|a| self.expand_at(a, span.clone(), env, name))
                .collect(),
        }
    }

    /// Split like a shell (no shell), then expand each word.
    pub(super) fn split(
        &mut self,
        s: &str,
        span: Range<usize>,
        env: &[(String, String)],
        name: &str,
        what: &str,
    ) -> Vec<String> {
        match shell_words::split(s) {
            Ok(words) if words.is_empty() => {
                self.error(span, format!("{what} of service \"{name}\" is empty"));
                Vec::new()
            }
            Ok(words) => words
                .iter()
                .map(|w| self.expand_at(w, span.clone(), env, name))
                .collect(),
            Err(e) => {
                self.error(
                    span,
                    format!("{what} of service \"{name}\" cannot be split into words: {e}"),
                );
                Vec::new()
            }
        }
    }

    pub(super) fn setup(&mut self, raw: Option<&Spanned<StringOrList>>, name: &str) -> Setup {
        let Some(raw) = raw else { return Setup::None };
        match raw.get_ref() {
            StringOrList::One(s) if s == "venv" => Setup::Venv,
            StringOrList::One(s) if s == "npm" => Setup::Npm,
            StringOrList::One(s) => {
                self.error(
                    raw.span(),
                    format!("setup {s:?} of service \"{name}\" is not known: use \"venv\", \"npm\" or a list of commands"),
                );
                Setup::None
            }
            StringOrList::Many(cmds) => {
                if cmds.iter().any(|c| c.trim().is_empty()) {
                    self.error(
                        raw.span(),
                        format!("setup of service \"{name}\" has an empty command"),
                    );
                }
                if cmds.is_empty() {
                    Setup::None
                } else {
                    Setup::Commands(cmds.clone())
                }
            }
        }
    }
}

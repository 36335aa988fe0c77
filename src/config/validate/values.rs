//! Values of any section: sizes, counts, signals, durations, names.

use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;
use toml::Spanned;

use super::Validator;
use crate::config::raw::Scalar;

impl Validator<'_> {
    /// A size like `512MB`, `1.5GiB`, `64k` or a number of bytes.
    pub(super) fn size(&mut self, v: &Spanned<Scalar>, what: &str, whose: &str) -> u64 {
        let parsed = match v.get_ref() {
            Scalar::Int(n) if *n > 0 => Some(*n as u64),
            Scalar::Str(s) => parse_size(s),
            _ => None,
        };
        match parsed {
            Some(n) if n > 0 => n,
            _ => {
                self.error(
                    v.span(),
                    format!(
                        "invalid {what} {} of {whose}: write a size like \"512MB\", \"1GiB\" or \"64KB\"",
                        v.get_ref().to_env_string()
                    ),
                );
                1
            }
        }
    }

    pub(super) fn count(&mut self, v: &Spanned<i64>, what: &str, whose: &str, min: i64) -> u32 {
        let n = *v.get_ref();
        if n < min || n > i64::from(u32::MAX) {
            self.error(
                v.span(),
                format!(
                    "{what} of {whose} must be a whole number from {min} to {}",
                    u32::MAX
                ),
            );
            return min as u32;
        }
        n as u32
    }

    pub(super) fn signal(&mut self, s: &Spanned<Scalar>, name: &str) -> Signal {
        let parsed = match s.get_ref() {
            Scalar::Str(text) => {
                let upper = text.trim().to_ascii_uppercase();
                let full = if upper.starts_with("SIG") {
                    upper
                } else {
                    format!("SIG{upper}")
                };
                Signal::from_str(&full).ok()
            }
            Scalar::Int(n) => i32::try_from(*n)
                .ok()
                .and_then(|n| Signal::try_from(n).ok()),
            _ => None,
        };
        parsed
            .filter(|s| !matches!(s, Signal::SIGKILL | Signal::SIGSTOP))
            .unwrap_or_else(|| {
                self.error(
                    s.span(),
                    format!(
                        "unknown stop_signal {} of service \"{name}\" (use a name like \"SIGTERM\", \"SIGINT\" or \"SIGQUIT\")",
                        s.get_ref().to_env_string()
                    ),
                );
                Signal::SIGTERM
            })
    }

    pub(super) fn duration(
        &mut self,
        v: Option<&Spanned<Scalar>>,
        what: &str,
        name: &str,
        default: Duration,
    ) -> Duration {
        let Some(v) = v else { return default };
        let parsed = match v.get_ref() {
            Scalar::Str(s) => humantime::parse_duration(s.trim()).map_err(|e| e.to_string()),
            Scalar::Int(n) if *n >= 0 => Ok(Duration::from_secs(*n as u64)),
            Scalar::Float(f) if *f >= 0.0 && f.is_finite() && *f < 1e9 => {
                Ok(Duration::from_secs_f64(*f))
            }
            _ => Err("expected a duration like \"500ms\", \"2s\" or \"1m\"".into()),
        };
        match parsed {
            Ok(d) if d.is_zero() && what != "stop_timeout" => {
                self.error(
                    v.span(),
                    format!("{what} of service \"{name}\" must be greater than zero"),
                );
                default
            }
            Ok(d) if d > Duration::from_secs(365 * 24 * 3600) => {
                self.error(
                    v.span(),
                    format!("{what} of service \"{name}\" is longer than a year"),
                );
                default
            }
            Ok(d) => d,
            Err(e) => {
                self.error(
                    v.span(),
                    format!("invalid {what} {} of service \"{name}\": {e} (write it like \"500ms\", \"2s\" or \"1m\")", v.get_ref().to_env_string()),
                );
                default
            }
        }
    }
}

pub(super) fn valid_env_name(k: &str) -> bool {
    !(k.is_empty() || k.contains('=') || k.contains('\0'))
}

/// A value as a person would name it in an error: `the string "eighty"`.
pub(super) fn describe(v: &Scalar) -> String {
    match v {
        Scalar::Str(s) => format!("the string {s:?}"),
        Scalar::Int(i) => format!("the integer {i}"),
        Scalar::Float(f) => format!("the number {f}"),
        Scalar::Bool(b) => format!("the boolean {b}"),
    }
}

/// `512MB`, `1.5GiB`, `64k`, `100`: decimal (KB, MB, GB) and binary (KiB,
/// MiB, GiB; K, M, G) units, case-insensitive.
pub fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let num: f64 = num.parse().ok()?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" => 1e3,
        "mb" => 1e6,
        "gb" => 1e9,
        "k" | "kib" => 1024.0,
        "m" | "mib" => 1024.0 * 1024.0,
        "g" | "gib" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    let bytes = num * mult;
    (bytes.is_finite() && (1.0..1e18).contains(&bytes)).then_some(bytes as u64)
}

/// The closest candidate to a misspelt name, if any is close enough.
pub fn suggest<'a>(wrong: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::damerau_levenshtein(wrong, c), c))
        .filter(|(d, c)| *d <= (c.len().max(wrong.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

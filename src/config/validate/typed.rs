//! Reading the document into the raw types so that every type error of
//! every table and field is reported in one run.
//!
//! serde stops at the first value of a wrong type. So on an error the entry
//! it is about (the field, or the table that misses a field) is taken out of
//! the parsed document and the rest is read again, until it reads. What was
//! taken out is remembered: the checks that follow treat it as reported, so
//! a `command = 42` is one error, not also "no command".

use std::collections::HashSet;
use std::ops::Range;

use serde::de::IntoDeserializer;
use serde::Deserialize;
use toml::de::{DeArray, DeTable, DeValue};
use toml::Spanned;

use crate::config::raw::RawFile;
use crate::config::Diagnostic;

/// Type errors collected at most (each costs one more read of the
/// document); the checks after them still run.
const MAX_TYPE_ERRORS: usize = 100;

/// The document as far as it has the right types.
pub(super) struct Typed {
    pub raw: RawFile,
    /// One per entry taken out.
    pub diags: Vec<Diagnostic>,
    pub dropped: Dropped,
}

/// The entries taken out, by key path: `["services", "web", "port"]`; an
/// element of `[[tier]]` is `["tier", "#"]`.
#[derive(Default)]
pub(super) struct Dropped(HashSet<Vec<String>>);

impl Dropped {
    pub fn contains(&self, path: &[&str]) -> bool {
        self.0
            .iter()
            .any(|p| p.len() == path.len() && p.iter().zip(path).all(|(a, b)| a == b))
    }

    /// Whether anything at or below `path` was taken out.
    pub fn under(&self, path: &[&str]) -> bool {
        self.0
            .iter()
            .any(|p| p.len() >= path.len() && p.iter().zip(path).all(|(a, b)| a == b))
    }

    /// The keys taken out right below `path` (`env` keys of a service).
    pub fn children(&self, path: &[&str]) -> Vec<String> {
        self.0
            .iter()
            .filter(|p| p.len() == path.len() + 1 && p.iter().zip(path).all(|(a, b)| a == b))
            .map(|p| p[path.len()].clone())
            .collect()
    }

    /// Whether `field` of the table at `table` was written but left out:
    /// with a wrong type, or misspelt (an unknown key near its name). A
    /// check that finds `field` missing then says nothing more.
    pub fn meant(&self, table: &[&str], field: &str) -> bool {
        self.children(table)
            .iter()
            .any(|k| k == field || super::values::suggest(k, std::iter::once(field)).is_some())
    }

    /// Whether a whole top-level entry (`services`, a misspelt table) was
    /// taken out.
    pub fn top_level(&self) -> bool {
        self.0.iter().any(|p| p.len() == 1)
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Step {
    Key(String),
    /// An array element, known by where it starts in the text (indices
    /// shift as elements are taken out; positions do not).
    Element(usize),
}

/// The diagnostic for one parser or type error, in words where
/// `words::explain` knows how.
pub(super) fn diagnostic(text: &str, e: &toml::de::Error) -> Diagnostic {
    let message = e.message().trim();
    Diagnostic {
        message: e
            .span()
            .and_then(|span| super::super::words::explain(text, span, message))
            .unwrap_or_else(|| message.to_string()),
        span: e.span(),
    }
}

/// Parse `text` and read it into [`RawFile`]. A syntax error (or an error
/// with no place to point at) ends the reading: `Err` holds what was found.
pub(super) fn read(text: &str) -> Result<Typed, Vec<Diagnostic>> {
    let parse = || DeTable::parse(text).map_err(|e| vec![diagnostic(text, &e)]);
    // The common case, a file without type errors, reads once.
    let first = match RawFile::deserialize(parse()?.into_deserializer()) {
        Ok(raw) => {
            return Ok(Typed {
                raw,
                diags: Vec::new(),
                dropped: Dropped::default(),
            })
        }
        Err(e) => e,
    };
    let doc = parse()?;
    let mut value = Spanned::new(doc.span(), DeValue::Table(doc.into_inner()));
    let mut diags = Vec::new();
    let mut dropped: Vec<Vec<Step>> = Vec::new();
    let mut error = first;
    loop {
        let Some(span) = error.span() else {
            diags.push(diagnostic(text, &error));
            return Err(diags);
        };
        let path = locate(&value, &span);
        // A field missing because its value was taken out was reported
        // with that value.
        let missing = error
            .message()
            .strip_prefix("missing field `")
            .and_then(|rest| rest.split('`').next());
        let follows = missing.is_some_and(|field| {
            let mut taken = path.clone();
            taken.push(Step::Key(field.to_string()));
            dropped.contains(&taken)
        });
        if !follows {
            diags.push(diagnostic(text, &error));
        }
        if path.is_empty() || diags.len() >= MAX_TYPE_ERRORS {
            return Err(diags);
        }
        remove(&mut value, &path);
        dropped.push(path);
        match RawFile::deserialize(value.clone().into_deserializer()) {
            Ok(raw) => {
                let dropped = dropped
                    .into_iter()
                    .map(|p| {
                        p.into_iter()
                            .map(|s| match s {
                                Step::Key(k) => k,
                                Step::Element(_) => "#".to_string(),
                            })
                            .collect()
                    })
                    .collect();
                return Ok(Typed {
                    raw,
                    diags,
                    dropped: Dropped(dropped),
                });
            }
            Err(e) => error = e,
        }
    }
}

fn covers(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

/// The deepest entry (a key of a table, or a table in an array) whose key
/// or value covers `span`.
fn locate(value: &Spanned<DeValue<'_>>, span: &Range<usize>) -> Vec<Step> {
    let mut path = Vec::new();
    let mut here = value;
    loop {
        let next = match here.get_ref() {
            DeValue::Table(t) => {
                let mut next = None;
                for (k, v) in t.iter() {
                    if covers(&k.span(), span) {
                        // The key itself (an unknown field): nothing deeper.
                        path.push(Step::Key(k.get_ref().to_string()));
                        return path;
                    }
                    if covers(&v.span(), span) || inside(v, span) {
                        next = Some((Step::Key(k.get_ref().to_string()), v));
                        break;
                    }
                }
                next
            }
            DeValue::Array(a) => a
                .iter()
                .filter(|v| matches!(v.get_ref(), DeValue::Table(_)))
                .find(|v| covers(&v.span(), span) || inside(v, span))
                .map(|v| (Step::Element(v.span().start), v)),
            _ => None,
        };
        match next {
            Some((step, v)) => {
                path.push(step);
                here = v;
            }
            None => return path,
        }
    }
}

/// Whether something below `value` covers `span` (a table's own span may
/// be its header only, not its body).
fn inside(value: &Spanned<DeValue<'_>>, span: &Range<usize>) -> bool {
    match value.get_ref() {
        DeValue::Table(t) => t
            .iter()
            .any(|(k, v)| covers(&k.span(), span) || covers(&v.span(), span) || inside(v, span)),
        DeValue::Array(a) => a.iter().any(|v| covers(&v.span(), span) || inside(v, span)),
        _ => false,
    }
}

/// Take the entry at `path` out of the document.
fn remove(value: &mut Spanned<DeValue<'_>>, path: &[Step]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut here = value;
    for step in parents {
        let next = match (here.get_mut(), step) {
            (DeValue::Table(t), Step::Key(k)) => t
                .iter_mut()
                .find(|(key, _)| key.get_ref() == k)
                .map(|(_, v)| v),
            (DeValue::Array(a), Step::Element(at)) => a.iter_mut().find(|v| v.span().start == *at),
            _ => None,
        };
        match next {
            Some(v) => here = v,
            None => return,
        }
    }
    match (here.get_mut(), last) {
        (DeValue::Table(t), Step::Key(k)) => {
            t.remove(k.as_str());
        }
        (DeValue::Array(a), Step::Element(at)) => {
            let mut kept = DeArray::new();
            for v in a.iter().filter(|v| v.span().start != *at) {
                kept.push(v.clone());
            }
            *a = kept;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        match read(text) {
            Ok(t) => t.diags.into_iter().map(|d| d.message).collect(),
            Err(d) => d.into_iter().map(|d| d.message).collect(),
        }
    }

    #[test]
    fn every_type_error_of_every_service_is_reported() {
        let text = "[services.a]\ncommand = 42\nrestart = \"sometimes\"\n\
                    [services.b]\ncommand = \"x\"\nhealth = { http = \"/\", retries = \"3\" }\nprot = 1\n";
        let got = errors(text);
        assert_eq!(got.len(), 4, "{got:#?}");
        assert!(got[0].contains("`command` of service \"a\""), "{got:#?}");
        assert!(got[1].contains("`restart` of service \"a\""), "{got:#?}");
        assert!(got[2].contains("`retries`"), "{got:#?}");
        assert!(got[3].contains("unknown field `prot`"), "{got:#?}");
        let typed = read(text).unwrap();
        assert!(typed.dropped.contains(&["services", "a", "command"]));
        assert!(typed
            .dropped
            .contains(&["services", "b", "health", "retries"]));
        assert!(typed.raw.services.len() == 2);
    }

    #[test]
    fn a_required_field_taken_out_for_its_type_is_not_also_missing() {
        let text = "[[tier]]\nname = 5\n[[tier]]\ntitle = 1\nname = \"b\"\n\
                    [services.a]\ncommand = \"x\"\n";
        let got = errors(text);
        assert_eq!(got.len(), 2, "{got:#?}");
        assert!(got.iter().all(|m| !m.contains("missing")), "{got:#?}");
        let typed = read(text).unwrap();
        assert_eq!(typed.raw.tier.len(), 1);
        assert!(typed.dropped.under(&["tier"]));
    }

    #[test]
    fn a_syntax_error_stops_at_once() {
        let got = errors("[services.a]\ncommand = \"x\nport = 1\n");
        assert_eq!(got.len(), 1, "{got:#?}");
    }
}

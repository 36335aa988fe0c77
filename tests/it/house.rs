//! The shape of the house, checked: the import graph between the files of
//! `src/` has no cycles, and the core never reaches for the words and
//! colours of `output`. Imports are read from the source text (`use`
//! statements, with their brace groups, and inline `crate::…` paths), so a
//! new cycle fails here before anyone draws a picture. docs/house.md
//! explains the rooms and why the arrows run the way they do.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under `src/` (but `main.rs`, the binary's root), by its
/// module path: `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`.
fn modules() -> BTreeMap<String, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("read src") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "main.rs"))
        .map(|p| {
            let rel = p.strip_prefix(&src).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if matches!(parts.last().map(String::as_str), Some("mod" | "lib")) {
                parts.pop();
            }
            (parts.join("::"), p)
        })
        .collect()
}

/// The source without comments and string literals (which may mention
/// paths without importing them).
fn code_of(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < bytes.len() {
        let rest = &text[i..];
        if rest.starts_with("//") {
            i += rest.find('\n').unwrap_or(rest.len());
        } else if rest.starts_with("/*") {
            i += rest.find("*/").map_or(rest.len(), |k| k + 2);
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") {
            let hashes = rest[1..].chars().take_while(|&c| c == '#').count();
            let close = format!("\"{}", "#".repeat(hashes));
            let body = 2 + hashes;
            i += body
                + rest[body..]
                    .find(&close)
                    .map_or(rest.len() - body, |k| k + close.len());
            out.push_str("\"\"");
        } else if bytes[i] == b'"' {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b'"' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            i = j + 1;
            out.push_str("\"\"");
        } else if bytes[i] == b'\''
            && rest.len() > 2
            && (bytes[i + 2] == b'\'' || bytes[i + 1] == b'\\')
        {
            // A char literal ('"', '\n'); a lifetime has no closing quote.
            let end = rest[1..].find('\'').map_or(1, |k| k + 2);
            i += end;
            out.push_str("' '");
        } else {
            let ch = rest.chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

/// `a::{b, c::{d, e}}` -> `a::b`, `a::c::d`, `a::c::e`.
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.split_whitespace().collect();
    let Some(open) = tree.find('{') else {
        return vec![tree];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut parts = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (k, ch) in inner.char_indices() {
        match ch {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                parts.push(&inner[start..k]);
                start = k + 1;
            }
            _ => {}
        }
    }
    parts.push(&inner[start..]);
    parts
        .into_iter()
        .filter(|p| !p.is_empty())
        .flat_map(|p| expand(p).into_iter().map(move |s| format!("{prefix}{s}")))
        .collect()
}

/// Every path the module `me` names: `use` trees and inline `crate::…`
/// paths, made absolute (`super::`, `self::`).
fn paths_named(me: &str, code: &str) -> Vec<Vec<String>> {
    let mut raw = Vec::new();
    let mut rest = code;
    while let Some(k) = rest.find("use ") {
        let before = rest[..k].chars().last();
        let at = &rest[k + 4..];
        let end = at.find(';').unwrap_or(at.len());
        if before.is_none_or(|c| !c.is_alphanumeric() && c != '_') {
            raw.extend(expand(&at[..end]));
        }
        rest = &at[end.min(at.len())..];
    }
    // Inline paths: `crate::a::b` and `super::a` outside `use`.
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(k) = code[from..].find(start) {
            let at = from + k;
            let before = code[..at].chars().last();
            let tail: String = code[at..]
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            if before.is_none_or(|c| !c.is_alphanumeric() && c != '_' && c != ':') {
                raw.push(tail.clone());
            }
            from = at + tail.len().max(1);
        }
    }
    let here: Vec<String> = if me.is_empty() {
        Vec::new()
    } else {
        me.split("::").map(str::to_string).collect()
    };
    // `super` of `a::b` (file a/b.rs or a/b/mod.rs) is `a`.
    raw.into_iter()
        .filter_map(|p| {
            let segs: Vec<&str> = p.split("::").filter(|s| !s.is_empty()).collect();
            let mut abs = match *segs.first()? {
                "crate" => Vec::new(),
                "self" => here.clone(),
                "super" => here[..here.len().saturating_sub(1)].to_vec(),
                _ => return None, // another crate, or a local name
            };
            let mut k = 1;
            while segs.get(k) == Some(&"super") {
                abs.pop();
                k += 1;
            }
            abs.extend(segs[k..].iter().map(|s| s.to_string()));
            Some(abs)
        })
        .collect()
}

/// Who imports whom, file by file (by module path). An import of one's own
/// ancestor or descendant is not an arrow: a child module using its
/// parent's items (`use super::*`) is encapsulation, not a tie between rooms.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (me, path) in &mods {
        let text = std::fs::read_to_string(path).expect("read module");
        // An inline test module (at the end, by convention) may reach
        // anywhere; a `#[cfg(test)] mod x;` declaration is not one.
        let inline_tests = text.match_indices("#[cfg(test)]").find(|(k, m)| {
            let after = text[k + m.len()..].trim_start();
            after.starts_with("mod ") && after.split('\n').next().is_some_and(|l| l.contains('{'))
        });
        let text = match inline_tests {
            Some((k, _)) => &text[..k],
            None => &text[..],
        };
        let mine = edges.entry(me.clone()).or_default();
        for path in paths_named(me, &code_of(text)) {
            // The longest prefix that is a module.
            let target = (1..=path.len())
                .rev()
                .map(|n| path[..n].join("::"))
                .find(|m| mods.contains_key(m));
            let Some(target) = target else { continue };
            let related =
                |a: &str, b: &str| a == b || a.starts_with(&format!("{b}::")) || b.is_empty();
            if target != *me && !related(&target, me) && !related(me, &target) {
                mine.insert(target);
            }
        }
    }
    edges
}

/// Strongly connected components of more than one module (Tarjan).
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        next: usize,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        t.index.insert(v, t.next);
        t.low.insert(v, t.next);
        t.next += 1;
        t.stack.push(v);
        t.on.insert(v);
        let edges = t.edges;
        for w in edges.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut scc = Vec::new();
            while let Some(w) = t.stack.pop() {
                t.on.remove(w);
                scc.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if scc.len() > 1 {
                scc.sort();
                t.out.push(scc);
            }
        }
    }
    let mut t = T {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in edges.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out.sort();
    t.out
}

#[test]
fn the_import_graph_has_no_cycle() {
    let found = cycles(&graph());
    assert!(
        found.is_empty(),
        "import cycles between modules (each line: modules that import each other in a loop):\n{}",
        found
            .iter()
            .map(|c| format!("  {}", c.join(" <-> ")))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn the_checker_sees_a_cycle_and_expands_brace_groups() {
    let paths = paths_named(
        "a::b",
        &code_of("use crate::{x::{Y, z::W}, q};\nuse super::c; // use crate::nope;\nfn f() { crate::r::s(); }"),
    );
    let joined: BTreeSet<String> = paths.iter().map(|p| p.join("::")).collect();
    for want in ["x::Y", "x::z::W", "q", "a::c", "r::s"] {
        assert!(joined.contains(want), "{want} missing from {joined:?}");
    }
    assert!(
        !joined.iter().any(|p| p.contains("nope")),
        "a comment is not an import"
    );
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("c".into());
    edges.entry("c".into()).or_default().insert("a".into());
    edges.entry("d".into()).or_default().insert("a".into());
    assert_eq!(
        cycles(&edges),
        vec![vec!["a".to_string(), "b".into(), "c".into()]]
    );
}

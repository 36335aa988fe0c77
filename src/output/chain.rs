//! The words of `fpctl analyze`: the critical chain of the last start, as
//! `systemd-analyze critical-chain` draws it, then every service it started.

use std::fmt::Write;
use std::time::{Duration, UNIX_EPOCH};

use crate::status::Analysis;

/// `1.234s`, or `250ms` under a second.
fn span(ms: u64) -> String {
    if ms < 1000 {
        format!("{ms}ms")
    } else {
        format!("{:.3}s", ms as f64 / 1000.0)
    }
}

fn at(ms: Option<u64>) -> String {
    ms.map(|m| format!("@{}", span(m)))
        .unwrap_or_else(|| "-".into())
}

fn took(ms: Option<u64>) -> String {
    ms.map(|m| format!("+{}", span(m)))
        .unwrap_or_else(|| "-".into())
}

pub fn analysis_text(a: &Analysis) -> String {
    let mut out = String::new();
    let began = UNIX_EPOCH + Duration::from_secs_f64(a.began.max(0.0));
    let began = humantime::format_rfc3339_seconds(began);
    match a.total_ms {
        Some(total) => {
            let _ = writeln!(
                out,
                "The last start began at {began}; its last service was ready {} later.",
                span(total)
            );
        }
        None => {
            let _ = writeln!(
                out,
                "The last start began at {began}; none of its services became ready."
            );
        }
    }
    if !a.critical_chain.is_empty() {
        out.push_str(
            "The time a service was ready (online or completed) after the start began is printed after \"@\",\n\
             the time it took from its spawn to ready after \"+\".\n\n",
        );
        for (depth, name) in a.critical_chain.iter().enumerate() {
            let Some(s) = a.services.iter().find(|s| &s.name == name) else {
                continue;
            };
            let lead = if depth == 0 {
                String::new()
            } else {
                format!("{}└─", "  ".repeat(depth - 1))
            };
            let _ = writeln!(
                out,
                "{lead}{name} {} {}",
                at(s.ready_ms),
                took(s.spawn_to_ready_ms)
            );
        }
    }
    out.push('\n');
    let rows: Vec<[String; 6]> = a
        .services
        .iter()
        .map(|s| {
            [
                s.name.clone(),
                s.state.as_str().to_string(),
                at(s.launched_ms),
                at(s.ready_ms),
                took(s.spawn_to_ready_ms),
                s.after.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    let head = [
        "SERVICE",
        "STATE",
        "LAUNCHED",
        "READY",
        "SPAWN TO READY",
        "WAITED FOR",
    ];
    let mut widths: Vec<usize> = head.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut l = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                l.push_str(c);
            } else {
                let _ = write!(l, "{c:<w$}  ");
            }
        }
        l.trim_end().to_string() + "\n"
    };
    out.push_str(&line(head.to_vec()));
    for r in &rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

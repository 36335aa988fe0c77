//! `fpctl ports`: the port registry of the stack, and who holds each port.

use std::path::Path;

use colored::Colorize;

use crate::ports::{self, Holder, Registry, Report};
use crate::{Outcome, Result};

pub fn ports(file: Option<&Path>, json: bool) -> Result<Outcome> {
    let config = super::load(file)?;
    let report = ports::report(&config, &Registry::open(&config.root));
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("the report serializes")
        );
    } else {
        print!("{}", table(&report));
    }
    Ok(if report.conflicts() == 0 {
        Outcome::Success
    } else {
        Outcome::NotOnline
    })
}

fn table(report: &Report) -> String {
    let mut rows = vec![[
        "PORT".to_string(),
        "SERVICE".into(),
        "TIER".into(),
        "RANGE".into(),
        "HELD BY".into(),
    ]];
    for p in &report.ports {
        let port = if p.auto {
            format!("{} (auto)", p.port)
        } else {
            p.port.to_string()
        };
        let held = match &p.holder {
            Holder::Free => "free".to_string(),
            Holder::Service { service, pid } => format!("{service} (pid {pid})"),
            Holder::Foreign { pid, command } => format!("pid {pid} ({command})"),
            Holder::Unknown => "unknown process".into(),
        };
        rows.push([
            port,
            p.service.clone(),
            p.tier.clone(),
            p.range.clone().unwrap_or_else(|| "-".into()),
            held,
        ]);
    }
    let widths: Vec<usize> = (0..5)
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for (i, row) in rows.iter().enumerate() {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, w)| format!("{cell:<w$}"))
            .collect();
        let line = line.join("  ").trim_end().to_string();
        out.push_str(&if i == 0 {
            line.bold().to_string()
        } else {
            line
        });
        out.push('\n');
    }
    for p in &report.ports {
        if let Some(why) = &p.conflict {
            let msg = format!("conflict: port {} of {}: {why}", p.port, p.service);
            out.push_str(&format!("{}\n", msg.red()));
        }
    }
    if !report.tiers.is_empty() {
        out.push('\n');
        for t in &report.tiers {
            let next = t
                .next_free
                .map(|p| format!(", next free {p}"))
                .unwrap_or_default();
            out.push_str(&format!(
                "tier {} {}: {} assigned, {} free{next}\n",
                t.tier, t.range, t.assigned, t.free
            ));
        }
    }
    out
}

//! The status table of `check` (and of `top`'s pipe mode): a snapshot of
//! the status model, grouped by tier, replicas under their service's line,
//! with a summary line.

use std::fmt::Write as _;

use colored::Colorize;

use super::{bytes_short, duration_short, pad, paint_state, terminal_width, truncate};
use crate::config::Config;
use crate::status::{ServiceState, ServiceStatus, Snapshot, Summary};

/// The status table, grouped by tier (in the order of `config`), with a
/// summary line.
pub fn status_table(config: &Config, snapshot: &Snapshot, wide: bool) -> String {
    let rows = &snapshot.services;
    let headers = headers(wide);
    let cells: Vec<Vec<String>> = rows.iter().map(|r| cells(r, wide)).collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for c in &cells {
        for (w, cell) in widths.iter_mut().zip(c.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    // The detail column gets what the terminal has left (at least 20).
    let mut cells = cells;
    if let Some(columns) = terminal_width() {
        let detail = headers.len() - 1;
        let used: usize = 2 + widths[..detail].iter().map(|w| w + 2).sum::<usize>();
        let room = columns.saturating_sub(used).max(20);
        for c in &mut cells {
            c[detail] = truncate(&c[detail], room);
        }
        widths[detail] = widths[detail].min(room);
    }
    let mut out = String::new();
    for tier in &config.tiers {
        let members: Vec<usize> = (0..rows.len())
            .filter(|&k| rows[k].tier == tier.name)
            .collect();
        if members.is_empty() {
            continue;
        }
        let heading = match &tier.title {
            Some(title) => format!("{title} ({})", tier.name),
            None => tier.name.clone(),
        };
        let _ = writeln!(out, "{}", heading.bold());
        let header: Vec<String> = headers
            .iter()
            .zip(&widths)
            .map(|(h, &w)| pad(h, h.len(), w))
            .collect();
        let _ = writeln!(out, "  {}", header.join("  ").trim_end().dimmed());
        let mut group_shown: Option<&str> = None;
        for k in members {
            if let Some(group) = &rows[k].group {
                if group_shown != Some(group.as_str()) {
                    group_shown = Some(group.as_str());
                    let _ = writeln!(out, "  {}", group_line(rows, group));
                }
            }
            let c = &cells[k];
            let mut line = Vec::with_capacity(c.len());
            for (col, cell) in c.iter().enumerate() {
                let visible = cell.chars().count();
                let shown = if col == 2 {
                    paint_state(rows[k].state).to_string()
                } else {
                    cell.clone()
                };
                line.push(pad(&shown, visible, widths[col]));
            }
            let _ = writeln!(out, "  {}", line.join("  ").trim_end());
        }
    }
    let _ = writeln!(out, "{}", summary_line(&snapshot.summary));
    out
}

/// The table's column headings; `wide` adds memory, CPU and every restart.
pub fn headers(wide: bool) -> Vec<&'static str> {
    let mut headers = vec![
        "SERVICE", "PORT", "STATE", "PID", "UPTIME", "RESTARTS", "LATENCY",
    ];
    if wide {
        headers.extend(["RSS", "CPU", "RESTARTS_TOTAL"]);
    }
    headers.push("DETAIL");
    headers
}

/// One service's cells under [`headers`], uncoloured.
pub fn cells(r: &ServiceStatus, wide: bool) -> Vec<String> {
    let dash = || "-".to_string();
    let mut c = vec![
        // Instances sit under their service's line.
        match &r.group {
            Some(_) => format!("  {}", r.name),
            None => r.name.clone(),
        },
        r.port.map(|p| p.to_string()).unwrap_or_else(dash),
        r.state.as_str().to_string(),
        r.pid.map(|p| p.to_string()).unwrap_or_else(dash),
        r.uptime_s
            .map(|u| duration_short(std::time::Duration::from_secs_f64(u)))
            .unwrap_or_else(dash),
        if r.restarts_in_row > 0 && r.restarts_in_row != r.restarts {
            format!("{} ({} in a row)", r.restarts, r.restarts_in_row)
        } else {
            r.restarts.to_string()
        },
        r.latency_ms
            .map(|l| format!("{l:.1}ms"))
            .unwrap_or_else(dash),
    ];
    if wide {
        c.extend([
            r.rss_bytes.map(bytes_short).unwrap_or_else(dash),
            r.cpu_percent
                .map(|p| format!("{p:.1}%"))
                .unwrap_or_else(dash),
            r.restarts_total.to_string(),
        ]);
    }
    c.push(detail_cell(r));
    c
}

/// The detail column: the first line of the detail, then, for a container
/// service, its image and container (`image redis:7, container 0123456789ab`).
fn detail_cell(r: &ServiceStatus) -> String {
    let detail = r
        .detail
        .as_deref()
        .map(|d| d.lines().next().unwrap_or_default())
        .unwrap_or_default();
    match (&r.container, detail) {
        (Some(c), "") => c.to_string(),
        (Some(c), d) => format!("{d} ({c})"),
        (None, d) => d.to_string(),
    }
}

/// `5 online, 1 degraded, 0 offline` plus any other state that occurs.
pub fn summary_line(summary: &Summary) -> String {
    use ServiceState as S;
    ServiceState::ALL
        .iter()
        .map(|&s| (s, summary.count(s)))
        .filter(|(s, n)| *n > 0 || matches!(s, S::Online | S::Degraded | S::Offline))
        .map(|(s, n)| {
            let text = format!("{n} {}", s.as_str());
            if n > 0 && s != S::Stopped {
                text.color(paint_state(s).fgcolor.unwrap_or(colored::Color::White))
                    .to_string()
            } else {
                text
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The line above a replicated service's instances: its name, and how many
/// of the instances shown are in each state.
fn group_line(rows: &[ServiceStatus], group: &str) -> String {
    format!("{}  {}", group.bold(), group_summary(rows, group))
}

/// `3 replicas: 2 online, 1 starting`: the instances of `group` among
/// `rows`, by state.
pub fn group_summary(rows: &[ServiceStatus], group: &str) -> String {
    let states: Vec<ServiceState> = rows
        .iter()
        .filter(|r| r.group.as_deref() == Some(group))
        .map(|r| r.state)
        .collect();
    let mut counts: indexmap::IndexMap<&str, usize> = indexmap::IndexMap::new();
    for state in &states {
        *counts.entry(state.as_str()).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    format!("{} replicas: {}", states.len(), parts.join(", "))
}

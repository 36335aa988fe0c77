//! Everything fpctl prints for people: errors, summaries, the graph, the
//! status table. Colour is decided once, in `init_color`.

use std::fmt::Write as _;

use colored::Colorize;

use crate::config::Config;
use crate::graph::Plan;
use crate::Error;

/// Colour only on a terminal, and never with NO_COLOR or --no-color.
pub fn init_color(no_color: bool) {
    use std::io::IsTerminal;
    let on = !no_color && std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal();
    colored::control::set_override(on);
}

pub fn print_error(e: &Error) {
    match e {
        // Config errors carry their own `file:line:col: error:` prefixes.
        Error::Config(c @ crate::config::ConfigError::Invalid { .. }) => eprintln!("{c}"),
        _ => eprintln!("{} {e}", "error:".red().bold()),
    }
}

pub fn validate_summary(config: &Config) -> String {
    let enabled = config.services.iter().filter(|s| !s.disabled).count();
    let disabled = config.services.len() - enabled;
    let mut s = format!(
        "{}: ok: project \"{}\", {} service{} in {} tier{}",
        config.path.display(),
        config.project.name,
        config.services.len(),
        plural(config.services.len()),
        config.tiers.len(),
        plural(config.tiers.len()),
    );
    if disabled > 0 {
        let _ = write!(s, " ({disabled} disabled)");
    }
    s
}

fn plural(n: usize) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

pub fn graph_text(config: &Config, plan: &Plan) -> String {
    let mut out = String::new();
    for (n, tp) in plan.tiers.iter().enumerate() {
        let tier = &config.tiers[tp.tier];
        let _ = write!(out, "tier {} {}", n + 1, tier.name.bold());
        if let Some(title) = &tier.title {
            let _ = write!(out, ": {title}");
        }
        out.push('\n');
        for (l, level) in tp.levels.iter().enumerate() {
            let _ = writeln!(out, "  level {}", l + 1);
            for &i in level {
                let s = &config.services[i];
                let _ = write!(out, "    {}", s.name);
                if let Some(p) = s.port {
                    let _ = write!(out, " :{p}");
                }
                if !s.depends_on.is_empty() {
                    let deps: Vec<&str> = s
                        .depends_on
                        .iter()
                        .map(|&d| config.services[d].name.as_str())
                        .collect();
                    let _ = write!(out, "  <- {}", deps.join(", "));
                }
                if s.disabled {
                    out.push_str("  (disabled)");
                }
                if !s.profiles.is_empty() {
                    let _ = write!(out, "  [profiles: {}]", s.profiles.join(", "));
                }
                out.push('\n');
            }
        }
    }
    out
}

pub fn graph_dot(config: &Config, plan: &Plan) -> String {
    let mut out = String::from("digraph fpctl {\n  rankdir=LR;\n  node [shape=box];\n");
    for tp in &plan.tiers {
        let tier = &config.tiers[tp.tier];
        let label = tier.title.as_deref().unwrap_or(&tier.name);
        let _ = writeln!(
            out,
            "  subgraph \"cluster_{}\" {{\n    label={:?};",
            tier.name, label
        );
        for &i in tp.levels.iter().flatten() {
            let _ = writeln!(out, "    {:?};", config.services[i].name);
        }
        out.push_str("  }\n");
    }
    for s in &config.services {
        for &d in &s.depends_on {
            let _ = writeln!(out, "  {:?} -> {:?};", s.name, config.services[d].name);
        }
    }
    out.push_str("}\n");
    out
}

//! Everything fpctl prints for people: errors, summaries, the graph, the
//! status table. Colour is decided once, in `init_color`.

use std::fmt::Write as _;

use colored::Colorize;

use crate::config::Config;
use crate::graph::Plan;
use crate::Error;

/// Colour: `--color always|never` (or `--no-color`) decide; otherwise
/// CLICOLOR_FORCE or FORCE_COLOR turn it on (for CI logs), NO_COLOR turns it
/// off, and else it is on only on a terminal.
pub fn init_color(no_color: bool, choice: crate::cli::ColorChoice) {
    use crate::cli::ColorChoice;
    use std::io::IsTerminal;
    let set =
        |name: &str| std::env::var(name).is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    let on = match choice {
        _ if no_color => false,
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto if set("CLICOLOR_FORCE") || set("FORCE_COLOR") => true,
        ColorChoice::Auto => {
            std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
                && std::io::stdout().is_terminal()
        }
    };
    colored::control::set_override(on);
}

/// Columns of the terminal on stdout, else `COLUMNS`; None when neither
/// (output to a file or a pipe is not cut).
pub fn terminal_width() -> Option<usize> {
    // SAFETY: TIOCGWINSZ fills a winsize struct we own.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    if ok && size.ws_col > 0 {
        return Some(usize::from(size.ws_col));
    }
    std::env::var("COLUMNS").ok()?.trim().parse().ok()
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

/// `850ms`, `2.5s`, `3m10s`, `2h05m`.
pub fn duration_short(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 10_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else if ms < 60_000 {
        format!("{}s", d.as_secs())
    } else if ms < 3_600_000 {
        format!("{}m{:02}s", d.as_secs() / 60, d.as_secs() % 60)
    } else {
        format!("{}h{:02}m", d.as_secs() / 3600, (d.as_secs() % 3600) / 60)
    }
}

/// One service's line in `check`.
#[derive(Debug, Clone)]
pub struct Row {
    /// Index into `Config::services`.
    pub index: usize,
    pub state: crate::control::ServiceState,
    pub pid: Option<i32>,
    /// The port the process was started with.
    pub port: Option<u16>,
    pub restarts: u32,
    pub restarts_in_row: u32,
    pub uptime_s: Option<f64>,
    /// Why it is failed or blocked, as data (when a supervisor knows).
    pub reason: Option<crate::control::Reason>,
    pub detail: Option<String>,
    pub latency_ms: Option<f64>,
    pub external: bool,
    pub rss_bytes: Option<u64>,
    pub cpu_percent: Option<f64>,
    pub restarts_total: u32,
}

impl Row {
    /// A row exactly as the supervisor reports the service.
    pub fn from_status(index: usize, st: &crate::control::ServiceStatus) -> Row {
        Row {
            index,
            state: st.state,
            pid: st.pid,
            port: st.port,
            restarts: st.restarts,
            restarts_in_row: st.restarts_in_row,
            uptime_s: st.uptime_s,
            reason: st.reason.clone(),
            detail: st.detail.clone(),
            latency_ms: st.latency_ms,
            external: st.external,
            rss_bytes: st.rss_bytes,
            cpu_percent: st.cpu_percent,
            restarts_total: st.restarts_total,
        }
    }
}

pub fn paint_state(state: crate::control::ServiceState) -> colored::ColoredString {
    use crate::control::ServiceState as S;
    let s = state.as_str();
    match state {
        S::Online | S::Completed => s.green().bold(),
        S::Degraded | S::Starting => s.yellow().bold(),
        S::Offline | S::Failed => s.red().bold(),
        S::Blocked => s.magenta().bold(),
        S::Stopped => s.dimmed(),
    }
}

/// Pad a possibly coloured cell to `width` visible characters.
fn pad(cell: &str, visible: usize, width: usize) -> String {
    format!("{cell}{}", " ".repeat(width.saturating_sub(visible)))
}

/// The status table, grouped by tier, with a summary line.
pub fn status_table(config: &Config, rows: &[Row], wide: bool) -> String {
    let mut headers = vec![
        "SERVICE", "PORT", "STATE", "PID", "UPTIME", "RESTARTS", "LATENCY",
    ];
    if wide {
        headers.extend(["RSS", "CPU", "RESTARTS_TOTAL"]);
    }
    headers.push("DETAIL");
    let dash = || "-".to_string();
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let svc = &config.services[r.index];
            let mut c = vec![
                // Instances sit under their service's line.
                match &svc.group {
                    Some(_) => format!("  {}", svc.name),
                    None => svc.name.clone(),
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
            c.push(
                r.detail
                    .as_deref()
                    .map(|d| d.lines().next().unwrap_or_default().to_string())
                    .unwrap_or_default(),
            );
            c
        })
        .collect();
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
    for (t, tier) in config.tiers.iter().enumerate() {
        let members: Vec<usize> = (0..rows.len())
            .filter(|&k| config.services[rows[k].index].tier == t)
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
            if let Some((group, _)) = &config.services[rows[k].index].group {
                if group_shown != Some(group.as_str()) {
                    group_shown = Some(group.as_str());
                    let _ = writeln!(out, "  {}", group_line(config, rows, group));
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
    let _ = writeln!(out, "{}", summary_line(rows));
    out
}

pub fn truncate(s: &str, max: usize) -> String {
    let one_line = s.lines().next().unwrap_or_default();
    if one_line.chars().count() <= max {
        one_line.to_string()
    } else {
        format!("{}…", one_line.chars().take(max - 1).collect::<String>())
    }
}

fn counts(rows: &[Row]) -> Vec<(crate::control::ServiceState, usize)> {
    crate::control::ServiceState::ALL
        .iter()
        .map(|&s| (s, rows.iter().filter(|r| r.state == s).count()))
        .collect()
}

/// `5 online, 1 degraded, 0 offline` plus any other state that occurs.
pub fn summary_line(rows: &[Row]) -> String {
    use crate::control::ServiceState as S;
    counts(rows)
        .into_iter()
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

/// `check --json`, as SPEC.md describes.
/// The line above a replicated service's instances: its name, and how many
/// of the instances shown are in each state.
fn group_line(config: &Config, rows: &[Row], group: &str) -> String {
    let states: Vec<crate::control::ServiceState> = rows
        .iter()
        .filter(|r| {
            config.services[r.index]
                .group
                .as_ref()
                .is_some_and(|(g, _)| g == group)
        })
        .map(|r| r.state)
        .collect();
    let mut counts: indexmap::IndexMap<&str, usize> = indexmap::IndexMap::new();
    for state in &states {
        *counts.entry(state.as_str()).or_default() += 1;
    }
    let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
    format!(
        "{}  {} replicas: {}",
        group.bold(),
        states.len(),
        parts.join(", ")
    )
}

pub fn status_json(config: &Config, rows: &[Row]) -> String {
    status_value(config, rows).to_string()
}

/// The status model shared by `check --json` and the HTTP API.
pub fn status_value(config: &Config, rows: &[Row]) -> serde_json::Value {
    let round = |x: f64| (x * 10.0).round() / 10.0;
    let services: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let svc = &config.services[r.index];
            serde_json::json!({
                "name": svc.name,
                "tier": config.tiers[svc.tier].name,
                "state": r.state.as_str(),
                "pid": r.pid,
                "port": r.port,
                "restarts": r.restarts,
                "restarts_in_row": r.restarts_in_row,
                "uptime_s": r.uptime_s.map(round),
                "detail": r.detail,
                "reason": r.reason,
                "latency_ms": r.latency_ms.map(round),
                "external": r.external,
                "group": svc.group.as_ref().map(|(g, _)| g),
                "replica": svc.group.as_ref().map(|(_, i)| i),
                "rss_bytes": r.rss_bytes,
                "cpu_percent": r.cpu_percent.map(round),
                "restarts_total": r.restarts_total,
            })
        })
        .collect();
    let summary: serde_json::Map<String, serde_json::Value> = counts(rows)
        .into_iter()
        .map(|(s, n)| (s.as_str().to_string(), n.into()))
        .collect();
    serde_json::json!({ "services": services, "summary": summary })
}

/// One progress line of `start`, `restart` or `stop`, in columns: the
/// time, the service (padded to `width`), its state, what it is doing. A
/// service that is going down reads `stopping`, not `stopped  stopping`.
pub fn print_progress(p: &crate::control::Progress, width: usize) {
    use crate::control::ServiceState as S;
    let secs = p.elapsed_ms as f64 / 1000.0;
    let going_down = p.state == S::Stopped && p.detail.as_deref() == Some("stopping");
    let (state, shown) = if going_down {
        (
            "stopping".to_string(),
            "stopping".yellow().bold().to_string(),
        )
    } else {
        (
            p.state.as_str().to_string(),
            paint_state(p.state).to_string(),
        )
    };
    let detail = p
        .detail
        .as_deref()
        .filter(|_| !going_down)
        .map(|d| format!("  {}", truncate(d, 80)))
        .unwrap_or_default();
    // The widest state word: `completed`.
    let state_width = S::ALL.iter().map(|s| s.as_str().len()).max().unwrap_or(9);
    let line = format!(
        "{} {}  {}{}",
        format!("[{secs:>6.2}s]").dimmed(),
        pad(&p.service, p.service.chars().count(), width.max(12)),
        pad(&shown, state.chars().count(), state_width),
        detail.dimmed()
    );
    println!("{}", line.trim_end());
}

pub fn print_done(goal: &str, took: std::time::Duration) {
    println!(
        "{} everything {goal} in {}",
        "ok:".green().bold(),
        duration_short(took)
    );
}

/// A warning: the file is valid, but probably not what was meant.
pub fn print_warning(text: &str) {
    eprintln!("{} {text}", "warning:".yellow().bold());
}

/// A start that was cut short: why, once, and what it left unstarted.
pub fn print_interrupted(reason: &str, services: &[&str]) {
    eprintln!(
        "{} the start was interrupted: {reason} (not started: {})",
        "error:".red().bold(),
        services.join(", ")
    );
}

/// A failed service: why, its log's last lines and where the log is.
pub fn print_failure(f: &crate::control::Failure, tail: &str) {
    eprintln!(
        "{} {} is {}: {}",
        "error:".red().bold(),
        f.service.bold(),
        paint_state(f.state),
        f.reason
    );
    if f.state == crate::control::ServiceState::Failed && !tail.trim().is_empty() {
        eprintln!("  last lines of {}:", f.log.display());
        for line in tail.lines() {
            eprintln!("  | {line}");
        }
    } else {
        eprintln!("  log: {}", f.log.display());
    }
}

/// Several services' logs printed as one: each line behind a coloured
/// `name |` prefix (unless it is a single service's), without its recorded
/// time or, with `times`, with it in a column of its own. First a merged
/// history in time order, then (`run`) every line as it is written.
pub struct LogTailer {
    logs: Vec<TailedLog>,
    width: usize,
    named: bool,
    times: bool,
}

struct TailedLog {
    name: String,
    path: std::path::PathBuf,
    /// Where the next read begins.
    offset: u64,
    /// Whether the service records times (`log_timestamps`).
    timed: bool,
}

impl LogTailer {
    /// Start at each log's current end: only what is written from now on
    /// (unless `print_history` shows what came before).
    pub fn new(config: &Config, names: &[String]) -> Self {
        let logs = names
            .iter()
            .map(|n| {
                let path = config.log_path(n);
                let offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                let timed = config.service(n).is_some_and(|(_, s)| s.log_timestamps);
                TailedLog {
                    name: n.clone(),
                    path,
                    offset,
                    timed,
                }
            })
            .collect();
        let width = names.iter().map(|n| n.len()).max().unwrap_or(0);
        LogTailer {
            logs,
            width,
            named: true,
            times: false,
        }
    }

    /// Print lines as the log holds them, without a `name |` prefix.
    pub fn unnamed(mut self) -> Self {
        self.named = false;
        self
    }

    /// Show each line's recorded time, or a blank column of its width.
    pub fn with_times(mut self, times: bool) -> Self {
        self.times = times;
        self
    }

    /// `name |` in the service's colour.
    fn prefix(&self, k: usize) -> String {
        const COLORS: [colored::Color; 6] = [
            colored::Color::Cyan,
            colored::Color::Magenta,
            colored::Color::Blue,
            colored::Color::Yellow,
            colored::Color::Green,
            colored::Color::BrightRed,
        ];
        if !self.named {
            return String::new();
        }
        let name = format!("{:<w$} |", self.logs[k].name, w = self.width);
        format!("{} ", name.color(COLORS[k % COLORS.len()]))
    }

    /// One line: the prefix, the time column when asked for, the text.
    fn write_line(
        &self,
        out: &mut impl std::io::Write,
        prefix: &str,
        time: Option<std::time::SystemTime>,
        text: &[u8],
    ) -> std::io::Result<()> {
        out.write_all(prefix.as_bytes())?;
        if self.times {
            let column = match time {
                Some(t) => humantime::format_rfc3339_millis(t).to_string(),
                None => " ".repeat(crate::service_log::TIME_WIDTH),
            };
            write!(out, "{} ", column.dimmed())?;
        }
        out.write_all(text)?;
        out.write_all(b"\n")
    }

    /// The last `n` lines of each log (all with `None`), of those recorded
    /// at or after `since`, merged in time order; following goes on after
    /// them. Returns the services whose lines were left out because they
    /// carry no time to compare with `since`.
    pub fn print_history(
        &mut self,
        n: Option<usize>,
        since: Option<std::time::SystemTime>,
    ) -> Vec<String> {
        use crate::service_log::{history_of, merge};
        use std::io::Write;
        let mut untimed = Vec::new();
        let mut logs = Vec::new();
        for log in &mut self.logs {
            let read = if since.is_some() && !log.timed {
                // Nothing to compare: do not read a long log for nothing.
                None
            } else {
                history_of(&log.path, log.offset, n, since).ok()
            };
            match read {
                Some(h) => {
                    log.offset = h.end;
                    if h.untimed {
                        untimed.push(log.name.clone());
                    }
                    logs.push(h.lines);
                }
                None => {
                    if since.is_some() && !log.timed {
                        untimed.push(log.name.clone());
                    }
                    logs.push(Vec::new());
                }
            }
        }
        let prefixes: Vec<String> = (0..self.logs.len()).map(|k| self.prefix(k)).collect();
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for (k, line) in merge(logs) {
            if self
                .write_line(&mut out, &prefixes[k], line.time, &line.text)
                .is_err()
            {
                mark_stdout_closed();
                break;
            }
        }
        if out.flush().is_err() {
            mark_stdout_closed();
        }
        untimed
    }

    /// Print every line written from here on, polling the files; the
    /// history before it is not read again. Returns when stdout is closed.
    pub fn run(self) {
        self.run_until(&std::sync::atomic::AtomicBool::new(false))
    }

    /// [`run`](Self::run) until `done` is set: then once more, so that
    /// what was written before it was set is printed, and return.
    pub fn run_until(mut self, done: &std::sync::atomic::AtomicBool) {
        use std::io::{Read, Seek, SeekFrom, Write};
        let prefixes: Vec<String> = (0..self.logs.len()).map(|k| self.prefix(k)).collect();
        let mut partial: Vec<Vec<u8>> = vec![Vec::new(); self.logs.len()];
        loop {
            if stdout_closed() {
                return;
            }
            let last = done.load(std::sync::atomic::Ordering::SeqCst);
            let mut out = std::io::stdout().lock();
            for k in 0..self.logs.len() {
                let log = &mut self.logs[k];
                let Ok(mut f) = std::fs::File::open(&log.path) else {
                    continue;
                };
                let len = f.metadata().map(|m| m.len()).unwrap_or(0);
                if len < log.offset {
                    // Truncated or rotated: start over from the new beginning.
                    log.offset = 0;
                }
                if len == log.offset || f.seek(SeekFrom::Start(log.offset)).is_err() {
                    continue;
                }
                let mut buf = Vec::new();
                if let Ok(n) = f.take(len - log.offset).read_to_end(&mut buf) {
                    log.offset += n as u64;
                }
                partial[k].extend_from_slice(&buf);
                let Some(last) = memchr::memrchr(b'\n', &partial[k]) else {
                    continue;
                };
                let lines: Vec<u8> = partial[k].drain(..=last).collect();
                for line in lines[..last].split(|&b| b == b'\n') {
                    let (time, text) = crate::service_log::split_time_bytes(line);
                    if self.write_line(&mut out, &prefixes[k], time, text).is_err() {
                        mark_stdout_closed();
                        return;
                    }
                }
            }
            if out.flush().is_err() {
                mark_stdout_closed();
                return;
            }
            if last {
                return;
            }
            drop(out);
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
}

/// `512.0 MB`, `3.2 GB`, `900 B` (decimal units, as `max_memory` is usually written).
pub fn bytes_short(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.1} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} KB", n / 1e3)
    } else {
        format!("{n} B")
    }
}

impl std::fmt::Display for crate::control::FailReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::config::RestartPolicy;
        use crate::control::FailReason as R;
        match self {
            R::Prepare { message } | R::Recorded { message } => f.write_str(message),
            R::StartTimeout {
                after_ms,
                last_probe,
                elsewhere,
            } => {
                write!(
                    f,
                    "not healthy after {} (start_timeout); last probe: {last_probe}",
                    duration_short(std::time::Duration::from_millis(*after_ms))
                )?;
                match elsewhere {
                    Some(hint) => write!(f, "; {hint}"),
                    None => Ok(()),
                }
            }
            R::NotRestarted { why, policy } => {
                let policy = match policy {
                    RestartPolicy::No => "restart = \"no\"",
                    _ => "restart = \"on-failure\" does not restart a clean exit",
                };
                write!(f, "{why} ({policy})")
            }
            R::GaveUp { why, max_restarts } => write!(
                f,
                "{why}; gave up after {max_restarts} restart{} (max_restarts)",
                if *max_restarts == 1 { "" } else { "s" }
            ),
            R::Oneshot { exit } => write!(f, "{exit}"),
        }
    }
}

impl std::fmt::Display for crate::control::BlockReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::control::BlockReason as R;
        match self {
            R::Dependency { service, state } => {
                write!(f, "dependency \"{service}\" is {}", state.as_str())
            }
            R::EarlierTier { service, state } => {
                write!(f, "\"{service}\" in an earlier tier is {}", state.as_str())
            }
        }
    }
}

impl std::fmt::Display for crate::control::Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            crate::control::Reason::Failed(r) => r.fmt(f),
            crate::control::Reason::Blocked(r) => r.fmt(f),
        }
    }
}

static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static STDERR_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether a write to stdout failed (its reader went away, as after
/// `| head`): what follows output, like `events -f`, can end.
pub fn stdout_closed() -> bool {
    STDOUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Note that stdout is gone (a writer of its own found it closed).
pub fn mark_stdout_closed() {
    STDOUT_CLOSED.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// What `print!` and `println!` do in this crate: write to stdout, and
/// once that fails, write nothing more, quietly (never a panic).
pub fn write_out(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    if stdout_closed() {
        return;
    }
    let mut out = std::io::stdout().lock();
    if out.write_fmt(args).is_err() {
        mark_stdout_closed();
    }
}

/// [`write_out`] for stderr (`eprint!`, `eprintln!`).
pub fn write_err(args: std::fmt::Arguments<'_>) {
    use std::io::Write;
    use std::sync::atomic::Ordering;
    if STDERR_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    if std::io::stderr().lock().write_fmt(args).is_err() {
        STDERR_CLOSED.store(true, Ordering::Relaxed);
    }
}

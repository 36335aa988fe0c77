//! Everything fpctl prints for people: errors, summaries, the graph, the
//! status table, progress, followed logs, and (in `words`) the words for
//! every reason, activity and event of the status model. The only room
//! with words and colour; colour is decided once, in `init_color`.

mod chain;
mod table;
mod words;

pub use chain::analysis_text;
pub use table::{cells, group_summary, headers, status_table, summary_line};

pub use crate::human::{bytes_short, duration_short};

use std::fmt::Write as _;

use colored::Colorize;

use crate::config::Config;
use crate::graph::Plan;
use crate::stdio::{mark_stdout_closed, stdout_closed};
use crate::Error;

/// Colour: `--color always|never` (or `--no-color`) decide (`forced`);
/// otherwise CLICOLOR_FORCE or FORCE_COLOR turn it on (for CI logs),
/// NO_COLOR turns it off, and else it is on only on a terminal.
pub fn init_color(forced: Option<bool>) {
    use std::io::IsTerminal;
    let set =
        |name: &str| std::env::var(name).is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    let on = match forced {
        Some(on) => on,
        None if set("CLICOLOR_FORCE") || set("FORCE_COLOR") => true,
        None => {
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

pub fn paint_state(state: crate::status::ServiceState) -> colored::ColoredString {
    use crate::status::ServiceState as S;
    let s = state.as_str();
    match state {
        S::Online | S::Completed => s.green().bold(),
        S::Degraded | S::Starting => s.yellow().bold(),
        S::Offline | S::Failed => s.red().bold(),
        S::Blocked => s.magenta().bold(),
        S::Scheduled | S::Running => s.cyan().bold(),
        S::Stopped => s.dimmed(),
    }
}

/// Pad a possibly coloured cell to `width` visible characters.
pub(crate) fn pad(cell: &str, visible: usize, width: usize) -> String {
    format!("{cell}{}", " ".repeat(width.saturating_sub(visible)))
}

pub fn truncate(s: &str, max: usize) -> String {
    let one_line = s.lines().next().unwrap_or_default();
    if one_line.chars().count() <= max {
        one_line.to_string()
    } else {
        format!("{}…", one_line.chars().take(max - 1).collect::<String>())
    }
}

/// One progress line of `start`, `restart` or `stop`, in columns: the
/// time, the service (padded to `width`), its state, what it is doing. A
/// service that is going down reads `stopping`, not `stopped  stopping`.
pub fn print_progress(p: &crate::status::Progress, width: usize) {
    use crate::status::{Activity, ServiceState as S};
    let secs = p.elapsed_ms as f64 / 1000.0;
    let going_down = p.activity == Some(Activity::Stopping);
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
pub fn print_failure(f: &crate::status::Failure, tail: &str) {
    eprintln!(
        "{} {} is {}: {}",
        "error:".red().bold(),
        f.service.bold(),
        paint_state(f.state),
        f.reason
    );
    if f.state == crate::status::ServiceState::Failed && !tail.trim().is_empty() {
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

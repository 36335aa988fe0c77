//! `fpctl logs [SVC…] [-f] [-n N] [-t] [--since WHEN]`: one service's log
//! as it wrote it, or several (default: all; a replicated service's name
//! means all its instances) merged in time order behind a coloured `name |`
//! prefix; recorded times shown with `-t`, filtered by `--since`.

use std::path::Path;
use std::time::SystemTime;

use crate::{graph, Outcome, Result};

/// How many lines of each log, when neither `-n` nor `--since` says.
const DEFAULT_LINES: usize = 100;

/// What `fpctl logs` was asked for.
pub struct Options {
    pub follow: bool,
    /// `-n`: lines from the end of each log.
    pub lines: Option<usize>,
    /// `-t`: show the recorded times.
    pub timestamps: bool,
    pub since: Option<SystemTime>,
}

pub fn logs(file: Option<&Path>, services: &[String], opts: Options) -> Result<Outcome> {
    let (config, _) = super::load_running(file)?;
    let names: Vec<String> = if services.is_empty() {
        config.services.iter().map(|s| s.name.clone()).collect()
    } else {
        // The same "no service named … (did you mean …)" as every command.
        graph::select(&config, services, &[])?;
        config.expand_names(services)
    };
    let timed = |n: &String| config.service(n).is_some_and(|(_, s)| s.log_timestamps);
    if opts.timestamps && !names.iter().any(timed) {
        eprintln!(
            "note: no time is recorded for {}; `log_timestamps = true` in services.toml ([project] or the service) records them",
            if names.len() == 1 { "this service" } else { "these services" }
        );
    }
    let mut tailer = crate::output::LogTailer::new(&config, &names).with_times(opts.timestamps);
    if let ([_], [service]) = (services, names.as_slice()) {
        tailer = tailer.unnamed();
        let path = config.log_path(service);
        if !opts.follow && !path.exists() {
            eprintln!("{service} has no log yet ({})", path.display());
            return Ok(Outcome::Success);
        }
    }
    // With --since, every line since then unless -n limits it.
    let n = match (opts.lines, opts.since) {
        (Some(n), _) => Some(n),
        (None, Some(_)) => None,
        (None, None) => Some(DEFAULT_LINES),
    };
    for name in tailer.print_history(n, opts.since) {
        eprintln!(
            "note: lines of {name} without a recorded time are left out: --since cannot place them (`log_timestamps = true` records times)"
        );
    }
    if opts.follow {
        tailer.run();
    }
    Ok(Outcome::Success)
}

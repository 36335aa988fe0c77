//! The event history: starts, exits, health transitions, restarts and their
//! reasons, with timestamps. The supervisor appends one JSON object per line
//! to `.fpctl/events.jsonl`; the file outlives supervisors and is trimmed to
//! the newest [`KEEP`] events whenever it grows past twice that. What an
//! event is, is the status model's ([`Event`]).

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use crate::config::Config;
pub use crate::status::{Event, EventData, EventKind};

pub const FILE: &str = "events.jsonl";
/// How many events are kept.
pub const KEEP: usize = 2000;

pub fn path(config: &Config) -> PathBuf {
    config.state_dir().join(FILE)
}

/// The supervisor's appender.
pub struct Log {
    path: PathBuf,
    file: Option<File>,
    lines: usize,
}

impl Log {
    pub fn open(config: &Config) -> Log {
        let path = path(config);
        let lines = read_all(&path).len();
        let mut log = Log {
            path,
            file: None,
            lines,
        };
        log.trim_if_needed();
        log.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log.path)
            .ok();
        log
    }

    pub fn append(&mut self, event: &Event) {
        let Some(f) = self.file.as_mut() else { return };
        let Ok(mut line) = serde_json::to_string(event) else {
            return;
        };
        line.push('\n');
        if f.write_all(line.as_bytes()).is_ok() {
            self.lines += 1;
        }
        if self.lines > 2 * KEEP {
            self.trim_if_needed();
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .ok();
        }
    }

    fn trim_if_needed(&mut self) {
        if self.lines <= 2 * KEEP {
            return;
        }
        let all = read_all(&self.path);
        let keep = &all[all.len().saturating_sub(KEEP)..];
        let mut text = String::new();
        for e in keep {
            if let Ok(s) = serde_json::to_string(e) {
                text.push_str(&s);
                text.push('\n');
            }
        }
        if crate::state::write_atomic(&self.path, text.as_bytes()).is_ok() {
            self.lines = keep.len();
        }
    }
}

/// Every readable event in the file, oldest first (bad lines are skipped).
pub fn read_all(path: &Path) -> Vec<Event> {
    let Ok(f) = File::open(path) else {
        return Vec::new();
    };
    BufReader::new(f)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect()
}

/// `2026-11-25 16:40:01.123` in UTC.
pub fn format_ts(ts: f64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs_f64(ts.max(0.0));
    let s = humantime::format_rfc3339_millis(t).to_string();
    s.trim_end_matches('Z').replace('T', " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_the_words_of_the_file_and_unknown_ones_still_load() {
        // As an earlier fpctl wrote them: words only, no data.
        let line = r#"{"ts": 1.0, "service": "web", "kind": "restart", "detail": "x"}"#;
        let e: Event = serde_json::from_str(line).unwrap();
        assert_eq!(e.kind, EventKind::Restart);
        assert!(serde_json::to_string(&e)
            .unwrap()
            .contains(r#""kind":"restart""#));
        let newer = r#"{"ts": 1.0, "service": "web", "kind": "teleported", "detail": ""}"#;
        let e: Event = serde_json::from_str(newer).unwrap();
        assert_eq!(e.kind, EventKind::Other);
    }
}

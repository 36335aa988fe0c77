//! The `log` probe: healthy once the service's log has a line matching a
//! pattern since the service's latest launch, for workers with no endpoint.
//!
//! A launch is where fpctl wrote its `[fpctl] starting: …` note into the log
//! (the supervisor does so right before every spawn), so the probe finds it
//! whether it runs in the supervisor or in a separate `fpctl check`; the
//! note of the run's end (`[fpctl] process N exited …`) forgets the match.
//! What was read is remembered per log file: each probe reads only the new
//! lines. The log alone cannot tell that the run's process still lives:
//! `check` and `probe` ask the supervisor (or its saved state) for that.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use regex::Regex;

use super::Verdict;

/// The prefix of the note fpctl writes at every launch (see `service_log::note`).
const LAUNCH_NOTE: &str = "[fpctl] starting: ";
/// The note fpctl writes when a run's process is gone (`process N exited …`):
/// what the run printed no longer proves anything.
const END_NOTE: &str = "[fpctl] process ";
/// fpctl's own lines never count as the service's output.
const OWN_NOTE: &str = "[fpctl] ";

#[derive(Default)]
struct Scan {
    /// Bytes of whole lines read so far.
    offset: u64,
    /// The first matching line since the latest launch.
    matched: Option<String>,
}

static SCANS: Mutex<Option<HashMap<PathBuf, Scan>>> = Mutex::new(None);

pub async fn probe(log: &Path, pattern: &Regex) -> (Verdict, String) {
    let (log, pattern) = (log.to_path_buf(), pattern.clone());
    tokio::task::spawn_blocking(move || scan(&log, &pattern))
        .await
        .unwrap_or_else(|e| (Verdict::Down, e.to_string()))
}

fn scan(log: &Path, pattern: &Regex) -> (Verdict, String) {
    let mut scans = SCANS.lock().unwrap_or_else(|e| e.into_inner());
    let state = scans
        .get_or_insert_with(HashMap::new)
        .entry(log.to_path_buf())
        .or_default();
    if let Err(e) = read_new_lines(log, pattern, state) {
        return (Verdict::Down, format!("cannot read {}: {e}", log.display()));
    }
    match &state.matched {
        Some(line) => (Verdict::Healthy, line.chars().take(80).collect()),
        None => (
            Verdict::Down,
            format!("no line matching /{}/ since launch", pattern.as_str()),
        ),
    }
}

fn read_new_lines(log: &Path, pattern: &Regex, state: &mut Scan) -> std::io::Result<()> {
    let mut file = std::fs::File::open(log)?;
    if file.metadata()?.len() < state.offset {
        // Rotated or truncated: the new file starts from its beginning.
        state.offset = 0;
    }
    file.seek(SeekFrom::Start(state.offset))?;
    let mut reader = BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 || line.last() != Some(&b'\n') {
            // End, or a line still being written: read it whole next time.
            return Ok(());
        }
        state.offset += n as u64;
        let text = String::from_utf8_lossy(&line);
        let text = crate::service_log::text_of(text.trim_end());
        if text.starts_with(LAUNCH_NOTE) || text.starts_with(END_NOTE) {
            state.matched = None;
        } else if state.matched.is_none() && !text.starts_with(OWN_NOTE) && pattern.is_match(text) {
            state.matched = Some(text.trim().to_string());
        }
    }
}

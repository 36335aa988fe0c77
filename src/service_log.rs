//! A service's log file, in one place: opening it for appending, fpctl's
//! own notes in it (`[fpctl] ...`), its last lines, the lines of the current
//! run only, and where a setup is at. The files stay plain text.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// The note that begins a run of the service's command.
const STARTING: &str = "[fpctl] starting:";
/// The note that begins a setup step.
const SETUP: &str = "[fpctl] setup:";
/// How far back a failure report looks for the beginning of the run.
const RUN_WINDOW: u64 = 256 * 1024;

/// Open a service's log for appending (created when missing).
pub fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// A line of fpctl's own in a service's log.
pub fn note(mut log: &File, line: &str) {
    // One line per note, whatever the text holds (a multi-line command).
    // One write(2) of the whole line: with O_APPEND it cannot interleave
    // with the service's own output (writeln! would write it in pieces).
    let line = format!("[fpctl] {}\n", line.replace('\n', "\\n"));
    let _ = log.write_all(line.as_bytes());
}

/// The last `n` lines of a file, reading backwards in blocks (logs can be
/// large); leaves the file positioned at its end.
pub fn tail_lines(f: &mut File, n: usize) -> std::io::Result<Vec<u8>> {
    let end = f.seek(SeekFrom::End(0))?;
    let mut pos = end;
    let mut chunk = Vec::new();
    let block = 64 * 1024u64;
    while pos > 0 {
        let start = pos.saturating_sub(block);
        let mut buf = vec![0u8; (pos - start) as usize];
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf)?;
        buf.extend_from_slice(&chunk);
        chunk = buf;
        pos = start;
        // n lines need n+1 newlines (the last line usually ends with one).
        if chunk.iter().filter(|&&b| b == b'\n').count() > n {
            break;
        }
    }
    f.seek(SeekFrom::Start(end))?;
    let body = chunk.strip_suffix(b"\n").unwrap_or(&chunk);
    let cut = body
        .iter()
        .enumerate()
        .rev()
        .filter(|(_, &b)| b == b'\n')
        .nth(n.saturating_sub(1))
        .map(|(i, _)| i + 1)
        .unwrap_or(0);
    let mut out = if n == 0 {
        Vec::new()
    } else {
        chunk[cut..].to_vec()
    };
    if !out.is_empty() && !out.ends_with(b"\n") {
        out.push(b'\n');
    }
    Ok(out)
}

/// The last `n` lines of a log file as text, for failure reports.
pub fn last_lines(path: &Path, n: usize) -> String {
    File::open(path)
        .and_then(|mut f| tail_lines(&mut f, n))
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The end of a log, up to `RUN_WINDOW` bytes, as text.
fn window(path: &Path) -> String {
    let Ok(mut f) = File::open(path) else {
        return String::new();
    };
    let end = f.seek(SeekFrom::End(0)).unwrap_or(0);
    let start = end.saturating_sub(RUN_WINDOW);
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(start)).is_err() || f.read_to_end(&mut buf).is_err() {
        return String::new();
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    match (start > 0, text.find('\n')) {
        // The first line of the window may be cut: drop it.
        (true, Some(nl)) => text[nl + 1..].to_string(),
        _ => text,
    }
}

/// The last `n` lines of the current run: from the last "starting" note on
/// (or from the setup that followed it, when that setup is what failed).
/// Lines of earlier runs never show in a failure report.
pub fn current_run(path: &Path, n: usize) -> String {
    let text = window(path);
    let lines: Vec<&str> = text.lines().collect();
    let mut begin = lines
        .iter()
        .rposition(|l| l.starts_with(STARTING))
        .unwrap_or(0);
    if let Some(setup) = lines[begin..].iter().position(|l| l.starts_with(SETUP)) {
        begin += setup;
    }
    let run = &lines[begin..];
    let from = run.len().saturating_sub(n);
    let mut out = run[from..].join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

/// Where a running setup is: its step and the last line it wrote.
pub fn setup_status(path: &Path) -> Option<(String, Option<String>)> {
    let text = window(path);
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().rposition(|l| l.starts_with(SETUP))?;
    let step = lines[at][SETUP.len()..].trim().to_string();
    let last = lines[at + 1..]
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string());
    Some((step, last))
}

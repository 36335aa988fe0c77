//! A service's log file, in one place: opening it for appending, fpctl's
//! own notes in it (`[fpctl] ...`), the recorded time in front of a line
//! (with `log_timestamps`), its last lines, the lines of the current run
//! only, and where a setup is at. The files stay plain text: a recorded
//! time is `2026-11-26T03:32:14.123Z ` (RFC 3339, UTC, milliseconds, a
//! space) at the start of the line. Everything that reads a log line goes
//! through [`split_time`], so a line reads the same with or without one.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The note that begins a run of the service's command.
const STARTING: &str = "[fpctl] starting:";
/// The note that begins a setup step.
const SETUP: &str = "[fpctl] setup:";
/// How far back a failure report looks for the beginning of the run.
const RUN_WINDOW: u64 = 256 * 1024;

/// Open a service's log for appending (created when missing, readable by
/// its owner only: logs hold what services print, secrets included).
pub fn open(path: &Path) -> std::io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// The width of a recorded time, without the space after it.
pub const TIME_WIDTH: usize = 24;

/// The recorded time of a line read at `t`, with its space.
pub fn stamp(t: SystemTime) -> String {
    format!("{} ", humantime::format_rfc3339_millis(t))
}

/// A line's recorded time, if it has one, and the line without it.
pub fn split_time(line: &str) -> (Option<SystemTime>, &str) {
    match recorded_time(line.as_bytes()) {
        // The time is ASCII: the cut is on a character boundary.
        Some(t) => (Some(t), &line[TIME_WIDTH + 1..]),
        None => (None, line),
    }
}

/// [`split_time`] for a line read as bytes (which need not be UTF-8).
pub fn split_time_bytes(line: &[u8]) -> (Option<SystemTime>, &[u8]) {
    match recorded_time(line) {
        Some(t) => (Some(t), &line[TIME_WIDTH + 1..]),
        None => (None, line),
    }
}

fn recorded_time(b: &[u8]) -> Option<SystemTime> {
    // `YYYY-MM-DDTHH:MM:SS.mmmZ `: a cheap look at the shape first, so
    // that ordinary lines cost no parse.
    let shaped = b.len() > TIME_WIDTH
        && b[TIME_WIDTH] == b' '
        && b[TIME_WIDTH - 1] == b'Z'
        && b[4] == b'-'
        && b[10] == b'T'
        && b[0].is_ascii_digit();
    if !shaped {
        return None;
    }
    let text = std::str::from_utf8(&b[..TIME_WIDTH]).ok()?;
    humantime::parse_rfc3339(text).ok()
}

/// A line without its recorded time.
pub fn text_of(line: &str) -> &str {
    split_time(line).1
}

/// A line of fpctl's own in a service's log; with `stamped` (the service's
/// `log_timestamps`), behind the time, as the service's own lines are.
pub fn note(mut log: &File, stamped: bool, line: &str) {
    // One line per note, whatever the text holds (a multi-line command).
    // One write(2) of the whole line: with O_APPEND it cannot interleave
    // with the service's own output (writeln! would write it in pieces).
    let time = if stamped {
        stamp(SystemTime::now())
    } else {
        String::new()
    };
    let line = format!("{time}[fpctl] {}\n", line.replace('\n', "\\n"));
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
/// Lines of earlier runs never show in a failure report. Shown as the
/// service wrote them, without recorded times.
pub fn current_run(path: &Path, n: usize) -> String {
    let text = window(path);
    let lines: Vec<&str> = text.lines().map(text_of).collect();
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
    let lines: Vec<&str> = text.lines().map(text_of).collect();
    let at = lines.iter().rposition(|l| l.starts_with(SETUP))?;
    let step = lines[at][SETUP.len()..].trim().to_string();
    let last = lines[at + 1..]
        .iter()
        .rev()
        .find(|l| !l.trim().is_empty())
        .map(|l| l.trim().to_string());
    Some((step, last))
}

/// A line of a log as read back: its recorded time, if it has one, and
/// its text without it, byte for byte as the service wrote it (which need
/// not be UTF-8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub time: Option<SystemTime>,
    pub text: Vec<u8>,
}

impl Line {
    pub fn parse(raw: &[u8]) -> Line {
        let (time, text) = split_time_bytes(raw);
        Line {
            time,
            text: text.to_vec(),
        }
    }
}

/// Lines read back from the end of a log.
#[derive(Debug, Default)]
pub struct History {
    /// In file order.
    pub lines: Vec<Line>,
    /// Where the last whole line read ends: following the log goes on from
    /// here.
    pub end: u64,
    /// Lines were left out because they have no time to compare with
    /// `since`.
    pub untimed: bool,
    /// The file was read back to its beginning without finding enough
    /// lines, or one older than `since`: older ones may be in the file
    /// before it.
    pub whole: bool,
}

/// The last lines of a log before `end`: at most `n` (all with `None`) of
/// those recorded at or after `since`. With `since`, a line without a
/// recorded time cannot be compared and is left out. Reads backwards in
/// blocks and stops at the first line recorded before `since`.
pub fn history(
    f: &mut File,
    end: u64,
    n: Option<usize>,
    since: Option<SystemTime>,
) -> std::io::Result<History> {
    const BLOCK: u64 = 64 * 1024;
    let mut out = History::default();
    // Only whole lines: a line still being written belongs to what follows.
    let mut pos = end;
    let mut carry: Vec<u8> = Vec::new();
    let mut first_block = true;
    let mut rev: Vec<Line> = Vec::new();
    // Whether the file was read to its beginning without stopping.
    out.whole = 'read: {
        while pos > 0 {
            let start = pos.saturating_sub(BLOCK);
            let mut buf = vec![0u8; (pos - start) as usize];
            f.seek(SeekFrom::Start(start))?;
            f.read_exact(&mut buf)?;
            buf.extend_from_slice(&carry);
            pos = start;
            if first_block {
                first_block = false;
                let whole = buf.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
                out.end = start + whole as u64;
                buf.truncate(whole);
            }
            // The first piece of a block may be the end of a line that began
            // in the block before it: keep it for the next round.
            let (head, body) = match (pos > 0, buf.iter().position(|&b| b == b'\n')) {
                (true, Some(i)) => buf.split_at(i + 1),
                (true, None) => {
                    carry = buf;
                    continue;
                }
                (false, _) => buf.split_at(0),
            };
            // Every piece read ends with a line end; none is an empty read.
            if let Some(body) = body.strip_suffix(b"\n") {
                for raw in body.rsplit(|&b| b == b'\n') {
                    if n.is_some_and(|n| rev.len() >= n) {
                        break 'read false;
                    }
                    let line = Line::parse(raw);
                    match (since, line.time) {
                        (Some(since), Some(t)) if t < since => break 'read false,
                        (Some(_), None) => out.untimed = true,
                        _ => rev.push(line),
                    }
                }
            }
            carry = head.to_vec();
        }
        true
    };
    rev.reverse();
    out.lines = rev;
    Ok(out)
}

/// [`history`] of the log at `path` before `end`, going on into its
/// rotated files (`NAME.log.1`, …) while they may hold what was asked for.
pub fn history_of(
    path: &Path,
    end: u64,
    n: Option<usize>,
    since: Option<SystemTime>,
) -> std::io::Result<History> {
    let mut h = history(&mut File::open(path)?, end, n, since)?;
    let mut k = 1;
    while h.whole {
        let left = n.map(|n| n.saturating_sub(h.lines.len()));
        let Ok(mut f) = File::open(rotated(path, k)) else {
            break;
        };
        if left == Some(0) {
            break;
        }
        let len = f.metadata()?.len();
        let older = history(&mut f, len, left, since)?;
        h.untimed |= older.untimed;
        h.whole = older.whole;
        let mut lines = older.lines;
        lines.append(&mut h.lines);
        h.lines = lines;
        k += 1;
    }
    Ok(h)
}

/// The key a line sorts by in a merged history: its recorded time, or for
/// a line without one, the time of the line before it in its file (so that
/// a run of lines stays together).
fn merge_keys(lines: &[Line]) -> Vec<Option<SystemTime>> {
    let mut last = None;
    lines
        .iter()
        .map(|l| {
            last = l.time.or(last);
            last
        })
        .collect()
}

/// Several logs' lines in one sequence, in time order: a stable k-way
/// merge that keeps each log's own order, and between logs puts the earlier
/// time first (the earlier log on a tie; lines with no time at all first).
/// Each item is (log index, line).
pub fn merge(logs: Vec<Vec<Line>>) -> Vec<(usize, Line)> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let keys: Vec<Vec<Option<SystemTime>>> = logs.iter().map(|l| merge_keys(l)).collect();
    let mut iters: Vec<_> = logs.into_iter().map(|l| l.into_iter()).collect();
    let mut heap = BinaryHeap::new();
    for (k, keys) in keys.iter().enumerate() {
        if let Some(key) = keys.first() {
            heap.push(Reverse((*key, k, 0usize)));
        }
    }
    let mut out = Vec::new();
    while let Some(Reverse((_, k, i))) = heap.pop() {
        out.extend(iters[k].next().map(|line| (k, line)));
        if let Some(key) = keys[k].get(i + 1) {
            heap.push(Reverse((*key, k, i + 1)));
        }
    }
    out
}

/// Lines as the service wrote them, and beside each its recorded time
/// (RFC 3339), if it has one: what the API serves.
pub fn texts_and_times<'a>(
    lines: impl IntoIterator<Item = &'a str>,
) -> (Vec<&'a str>, Vec<Option<String>>) {
    lines
        .into_iter()
        .map(|l| {
            let (time, text) = split_time(l);
            let time = time.map(|t| humantime::format_rfc3339_millis(t).to_string());
            (text, time)
        })
        .unzip()
}

/// `NAME.log.N` for the N-th older file.
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_795_000_000_000 + ms)
    }

    fn line(ms: Option<u64>, text: &str) -> Line {
        Line {
            time: ms.map(at),
            text: text.as_bytes().to_vec(),
        }
    }

    fn texts(h: &History) -> Vec<&str> {
        h.lines
            .iter()
            .map(|l| std::str::from_utf8(&l.text).unwrap())
            .collect()
    }

    #[test]
    fn a_recorded_time_is_split_off_and_read_back_to_the_millisecond() {
        let raw = format!("{}hello world", stamp(at(123)));
        assert_eq!(split_time(&raw), (Some(at(123)), "hello world"));
        assert_eq!(split_time("hello"), (None, "hello"));
        // Something that only looks like a time stays part of the line.
        let fake = "2026-99-26T03:32:14.123Z not a time";
        assert_eq!(split_time(fake), (None, fake));
        assert_eq!(split_time_bytes(raw.as_bytes()).1, b"hello world");
    }

    #[test]
    fn history_keeps_the_last_lines_since_a_time_and_notes_untimed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        // Several blocks of the backwards reader.
        let mut text = String::from("no time here\n");
        for ms in 0..5000u64 {
            text.push_str(&format!("{}line {ms}\n", stamp(at(ms * 100))));
        }
        text.push_str("a partial line");
        std::fs::write(&path, &text).unwrap();
        let mut f = File::open(&path).unwrap();
        let end = f.metadata().unwrap().len();
        let h = history(&mut f, end, Some(3), None).unwrap();
        assert_eq!(texts(&h), ["line 4997", "line 4998", "line 4999"]);
        assert_eq!(h.end, end - "a partial line".len() as u64);
        let h = history(&mut f, end, None, Some(at(499_750))).unwrap();
        assert_eq!(texts(&h), ["line 4998", "line 4999"]);
        assert!(!h.untimed);
        // Back to the first line, which has no time: left out, and said.
        let h = history(&mut f, end, None, Some(at(0))).unwrap();
        assert_eq!(h.lines.len(), 5000);
        assert_eq!(h.lines[0].text, b"line 0");
        assert!(h.untimed);
        let all = history(&mut f, end, None, None).unwrap();
        assert_eq!(all.lines.len(), 5001);
        // Only a read to the beginning may go on into an older file.
        assert!(all.whole);
        assert!(!history(&mut f, end, Some(3), None).unwrap().whole);
        assert_eq!(all.lines[0], line(None, "no time here"));
    }

    #[test]
    fn merge_is_in_time_order_and_keeps_untimed_lines_with_the_line_before() {
        let a = vec![
            line(Some(0), "a1"),
            line(None, "a1 continued"),
            line(Some(600), "a2"),
        ];
        let b = vec![line(Some(300), "b1"), line(Some(600), "b2")];
        let merged: Vec<String> = merge(vec![a, b])
            .into_iter()
            .map(|(k, l)| format!("{k}:{}", String::from_utf8_lossy(&l.text)))
            .collect();
        assert_eq!(
            merged,
            ["0:a1", "0:a1 continued", "1:b1", "0:a2", "1:b2"],
            "ties go to the earlier log"
        );
        // No times at all: one log after the other, as written.
        let merged: Vec<usize> = merge(vec![
            vec![line(None, "x"), line(None, "y")],
            vec![line(None, "z")],
        ])
        .into_iter()
        .map(|(k, _)| k)
        .collect();
        assert_eq!(merged, [0, 0, 1]);
    }

    #[test]
    fn current_run_and_setup_status_read_through_recorded_times() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let t = stamp(at(0));
        std::fs::write(
            &path,
            format!("{t}[fpctl] starting: old\n{t}old-run\n{t}[fpctl] starting: new\n{t}new-run\n{t}[fpctl] setup: pip install\n{t}Collecting numpy\n"),
        )
        .unwrap();
        let run = current_run(&path, 10);
        assert!(!run.contains("old-run"), "{run}");
        assert!(run.starts_with("[fpctl] setup: pip install\n"), "{run}");
        assert_eq!(
            setup_status(&path),
            Some(("pip install".into(), Some("Collecting numpy".into())))
        );
    }
}

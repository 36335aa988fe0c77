//! The log pane's lines: read from the services' log files (never from the
//! supervisor), kept in a bounded ring, followed by reading what was
//! appended since the last look. A log that shrank was rotated or cut: it
//! is read again from its start.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;
use std::time::SystemTime;

use crate::service_log;

/// The most lines the pane keeps (older ones fall out).
pub const RING: usize = 2000;
/// How many lines of each log are read back when the pane opens on it.
const BACK: usize = 500;
/// The most bytes read from one log in one look (a service that writes
/// faster than that is shown from its latest lines, never all of them).
const MAX_READ: u64 = 1024 * 1024;

/// One line of the pane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The service, when several logs are merged.
    pub service: Option<String>,
    pub time: Option<SystemTime>,
    /// As the service wrote it (lossy UTF-8), colour codes and all.
    pub text: String,
}

/// The ring of lines shown.
#[derive(Debug, Default)]
pub struct Ring {
    pub lines: VecDeque<LogLine>,
    /// Lines dropped off the front since the pane opened (so that a
    /// position in the ring stays put while it scrolls).
    pub dropped: u64,
}

impl Ring {
    pub fn push(&mut self, line: LogLine) {
        if self.lines.len() == RING {
            self.lines.pop_front();
            self.dropped += 1;
        }
        self.lines.push_back(line);
    }

    pub fn clear(&mut self) {
        self.lines.clear();
        self.dropped = 0;
    }
}

/// One log file being followed.
struct Followed {
    service: String,
    path: PathBuf,
    /// Where the next unread byte is.
    offset: u64,
    /// The start of a line not yet ended.
    partial: Vec<u8>,
}

/// The logs behind the pane: one service's, or several merged.
pub struct Tail {
    followed: Vec<Followed>,
    merged: bool,
}

impl Tail {
    /// Open `logs` (service, path) and fill `ring` with their last lines,
    /// merged in time order when there are several.
    pub fn open(logs: Vec<(String, PathBuf)>, ring: &mut Ring) -> Tail {
        ring.clear();
        let merged = logs.len() > 1;
        let per = if merged {
            (RING / logs.len()).clamp(20, BACK)
        } else {
            BACK
        };
        let mut histories = Vec::new();
        let mut followed = Vec::new();
        for (service, path) in logs {
            let (lines, end) = match File::open(&path).and_then(|mut f| {
                let len = f.metadata()?.len();
                service_log::history(&mut f, len, Some(per), None)
            }) {
                Ok(h) => (h.lines, h.end),
                Err(_) => (Vec::new(), 0),
            };
            histories.push(lines);
            followed.push(Followed {
                service,
                path,
                offset: end,
                partial: Vec::new(),
            });
        }
        for (k, line) in service_log::merge(histories) {
            ring.push(LogLine {
                service: merged.then(|| followed[k].service.clone()),
                time: line.time,
                text: String::from_utf8_lossy(&line.text).into_owned(),
            });
        }
        Tail { followed, merged }
    }

    /// Read what was appended since the last look; true when a line came.
    pub fn poll(&mut self, ring: &mut Ring) -> bool {
        let mut any = false;
        for f in &mut self.followed {
            let Ok(mut file) = File::open(&f.path) else {
                continue;
            };
            let Ok(len) = file.metadata().map(|m| m.len()) else {
                continue;
            };
            if len < f.offset {
                // Rotated or cut: the new file from its start.
                f.offset = 0;
                f.partial.clear();
            }
            if len == f.offset {
                continue;
            }
            let from = f.offset.max(len.saturating_sub(MAX_READ));
            if from > f.offset {
                f.partial.clear();
            }
            let mut buf = Vec::with_capacity((len - from) as usize);
            if file.seek(SeekFrom::Start(from)).is_err()
                || file.take(len - from).read_to_end(&mut buf).is_err()
            {
                continue;
            }
            f.offset = from + buf.len() as u64;
            f.partial.extend_from_slice(&buf);
            let Some(cut) = f.partial.iter().rposition(|&b| b == b'\n') else {
                continue;
            };
            let rest = f.partial.split_off(cut + 1);
            let whole = std::mem::replace(&mut f.partial, rest);
            for raw in whole[..whole.len() - 1].split(|&b| b == b'\n') {
                let line = service_log::Line::parse(raw);
                ring.push(LogLine {
                    service: self.merged.then(|| f.service.clone()),
                    time: line.time,
                    text: String::from_utf8_lossy(&line.text).into_owned(),
                });
                any = true;
            }
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_followed_log_gives_whole_lines_and_survives_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.log");
        std::fs::write(&path, "one\ntwo\n").unwrap();
        let mut ring = Ring::default();
        let mut tail = Tail::open(vec![("a".into(), path.clone())], &mut ring);
        let texts = |r: &Ring| r.lines.iter().map(|l| l.text.clone()).collect::<Vec<_>>();
        assert_eq!(texts(&ring), ["one", "two"]);
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"thr").unwrap();
        assert!(!tail.poll(&mut ring));
        f.write_all(b"ee\nfour\n").unwrap();
        assert!(tail.poll(&mut ring));
        assert_eq!(texts(&ring), ["one", "two", "three", "four"]);
        // Rotated: the new file is read from its start.
        std::fs::write(&path, "five\n").unwrap();
        assert!(tail.poll(&mut ring));
        assert_eq!(texts(&ring).last().unwrap(), "five");
    }

    #[test]
    fn the_ring_keeps_only_the_newest_lines() {
        let mut ring = Ring::default();
        for i in 0..RING + 5 {
            ring.push(LogLine {
                service: None,
                time: None,
                text: i.to_string(),
            });
        }
        assert_eq!(ring.lines.len(), RING);
        assert_eq!(ring.lines.front().unwrap().text, "5");
        assert_eq!(ring.dropped, 5);
    }
}

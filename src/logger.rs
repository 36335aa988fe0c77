//! The log writer (`fpctl __log`), for services with log rotation or
//! recorded times.
//!
//! A service with neither writes straight into its log file. With
//! `log_max_size` or `log_timestamps`, its output goes through a pipe to
//! this small process, which appends to the log, puts the time each line's
//! first byte was read in front of it (`2026-11-26T03:32:14.123Z `), and
//! rotates the file at a line boundary once it reaches the limit
//! (`NAME.log` -> `NAME.log.1` -> … -> `NAME.log.KEEP`). It is its own
//! process, not a task of the supervisor, so a supervisor crash never closes
//! the pipe under a service (no SIGPIPE, no blocked writer). Lines written
//! while it rotates wait in the pipe: none is lost. It exits when the last
//! writer closes the pipe.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;
use std::time::SystemTime;

use crate::config::LogRotation;

const BUF: usize = 256 * 1024;

/// What the writer does besides appending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    pub rotation: Option<LogRotation>,
    /// Put the time in front of every line.
    pub timestamps: bool,
}

/// Copy stdin into `path` as `options` say, until EOF.
pub fn run(path: &Path, options: Options) -> io::Result<()> {
    // The service's stop signal goes to its own group, not to us; ignore
    // terminal signals too, so that we drain the pipe to its end.
    // SAFETY: setting a signal disposition to SIG_IGN is always sound.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let mut input = io::stdin().lock();
    let mut sink = Sink::new(path, options.rotation)?;
    let mut buf = vec![0u8; BUF];
    let mut stamper = options.timestamps.then(Stamper::default);
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => return sink.finish(),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        match &mut stamper {
            Some(stamper) => {
                let stamped = stamper.stamp(&buf[..n]);
                sink.write(stamped)?;
            }
            None => sink.write(&buf[..n])?,
        }
    }
}

/// Puts the time of the read in front of every line that begins in it.
#[derive(Default)]
struct Stamper {
    /// The last read ended inside a line.
    mid_line: bool,
    out: Vec<u8>,
}

impl Stamper {
    fn stamp(&mut self, chunk: &[u8]) -> &[u8] {
        // One clock read and one format per read(2), however many lines it
        // brought: they all arrived at that moment.
        let time = crate::service_log::stamp(SystemTime::now());
        self.out.clear();
        let mut begin = 0;
        for nl in memchr::memchr_iter(b'\n', chunk).chain(std::iter::once(chunk.len())) {
            if begin >= chunk.len() {
                break;
            }
            let end = (nl + 1).min(chunk.len());
            if !self.mid_line {
                self.out.extend_from_slice(time.as_bytes());
            }
            self.out.extend_from_slice(&chunk[begin..end]);
            self.mid_line = chunk[end - 1] != b'\n';
            begin = end;
        }
        &self.out
    }
}

/// The log file: whole lines appended, rotated at a line boundary.
struct Sink<'a> {
    path: &'a Path,
    rotation: Option<LogRotation>,
    file: File,
    size: u64,
    /// Only whole lines are written, so that fpctl's own notes, appended to
    /// the same file, never land inside a line; a partial line waits here.
    carry: Vec<u8>,
}

impl<'a> Sink<'a> {
    fn new(path: &'a Path, rotation: Option<LogRotation>) -> io::Result<Self> {
        let file = open(path)?;
        let size = file.metadata()?.len();
        Ok(Sink {
            path,
            rotation,
            file,
            size,
            carry: Vec::new(),
        })
    }

    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        let Some(last_nl) = memchr::memrchr(b'\n', chunk) else {
            self.carry.extend_from_slice(chunk);
            if self.carry.len() >= BUF {
                // A very long line: write it as it is rather than grow.
                self.file.write_all(&self.carry)?;
                self.size += self.carry.len() as u64;
                self.carry.clear();
            }
            return Ok(());
        };
        let (lines, rest) = chunk.split_at(last_nl + 1);
        // The carried partial line, then complete lines up to the limit.
        let mut carry = std::mem::take(&mut self.carry);
        let pending: &[u8] = if carry.is_empty() {
            lines
        } else {
            carry.extend_from_slice(lines);
            &carry
        };
        let max_size = self.rotation.map_or(u64::MAX, |r| r.max_size);
        let mut written = 0;
        while written < pending.len() {
            let room = max_size.saturating_sub(self.size);
            let part = &pending[written..];
            // Cut at the last line end that still fits; at least one line.
            let cut = if (part.len() as u64) <= room {
                part.len()
            } else {
                match memchr::memrchr(b'\n', &part[..room as usize]) {
                    Some(i) => i + 1,
                    None => memchr::memchr(b'\n', part).map_or(part.len(), |i| i + 1),
                }
            };
            self.file.write_all(&part[..cut])?;
            self.size += cut as u64;
            written += cut;
            if let Some(rotation) = self.rotation.filter(|r| self.size >= r.max_size) {
                rotate(self.path, rotation.keep)?;
                self.file = open(self.path)?;
                self.size = 0;
            }
        }
        carry.clear();
        carry.extend_from_slice(rest);
        self.carry = carry;
        Ok(())
    }

    fn finish(mut self) -> io::Result<()> {
        self.file.write_all(&self.carry)
    }
}

fn open(path: &Path) -> io::Result<File> {
    crate::service_log::open(path)
}

fn rotate(path: &Path, keep: u32) -> io::Result<()> {
    let _ = std::fs::remove_file(crate::service_log::rotated(path, keep));
    for n in (1..keep).rev() {
        let from = crate::service_log::rotated(path, n);
        if from.exists() {
            std::fs::rename(&from, crate::service_log::rotated(path, n + 1))?;
        }
    }
    std::fs::rename(path, crate::service_log::rotated(path, 1))
}

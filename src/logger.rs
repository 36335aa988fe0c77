//! The log writer for services with log rotation (`fpctl __log`).
//!
//! A service without rotation writes straight into its log file. With
//! `log_max_size`, its output goes through a pipe to this small process,
//! which appends to the log and rotates it at a line boundary once it reaches
//! the limit (`NAME.log` -> `NAME.log.1` -> … -> `NAME.log.KEEP`). It is its
//! own process, not a task of the supervisor, so a supervisor crash never
//! closes the pipe under a service (no SIGPIPE, no blocked writer). Lines
//! written while it rotates wait in the pipe: none is lost. It exits when the
//! last writer closes the pipe.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::config::LogRotation;

const BUF: usize = 256 * 1024;

/// Copy stdin into `path`, rotating as `rotation` says, until EOF.
pub fn run(path: &Path, rotation: LogRotation) -> io::Result<()> {
    // The service's stop signal goes to its own group, not to us; ignore
    // terminal signals too, so that we drain the pipe to its end.
    // SAFETY: setting a signal disposition to SIG_IGN is always sound.
    unsafe {
        libc::signal(libc::SIGTERM, libc::SIG_IGN);
        libc::signal(libc::SIGINT, libc::SIG_IGN);
        libc::signal(libc::SIGHUP, libc::SIG_IGN);
    }
    let mut input = io::stdin().lock();
    let mut file = open(path)?;
    let mut size = file.metadata()?.len();
    let mut buf = vec![0u8; BUF];
    // Only whole lines are written, so that fpctl's own notes, appended to
    // the same file, never land inside a line; a partial line waits here.
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => {
                file.write_all(&carry)?;
                return Ok(());
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        let chunk = &buf[..n];
        let Some(last_nl) = chunk.iter().rposition(|&b| b == b'\n') else {
            carry.extend_from_slice(chunk);
            if carry.len() >= BUF {
                // A very long line: write it as it is rather than grow.
                file.write_all(&carry)?;
                size += carry.len() as u64;
                carry.clear();
            }
            continue;
        };
        let (lines, rest) = chunk.split_at(last_nl + 1);
        // The carried partial line, then complete lines up to the limit.
        let mut pending: &[u8] = lines;
        if !carry.is_empty() {
            carry.extend_from_slice(lines);
            pending = &carry;
        }
        let mut written = 0;
        while written < pending.len() {
            let room = rotation.max_size.saturating_sub(size);
            let part = &pending[written..];
            // Cut at the last line end that still fits; at least one line.
            let cut = if (part.len() as u64) <= room {
                part.len()
            } else {
                let fit = &part[..room as usize];
                match fit.iter().rposition(|&b| b == b'\n') {
                    Some(i) => i + 1,
                    None => part
                        .iter()
                        .position(|&b| b == b'\n')
                        .map(|i| i + 1)
                        .unwrap_or(part.len()),
                }
            };
            file.write_all(&part[..cut])?;
            size += cut as u64;
            written += cut;
            if size >= rotation.max_size {
                drop(file);
                rotate(path, rotation.keep)?;
                file = open(path)?;
                size = 0;
            }
        }
        carry = rest.to_vec();
    }
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

/// `NAME.log.N` for the N-th older file.
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

fn rotate(path: &Path, keep: u32) -> io::Result<()> {
    let _ = std::fs::remove_file(rotated(path, keep));
    for n in (1..keep).rev() {
        let from = rotated(path, n);
        if from.exists() {
            std::fs::rename(&from, rotated(path, n + 1))?;
        }
    }
    std::fs::rename(path, rotated(path, 1))
}

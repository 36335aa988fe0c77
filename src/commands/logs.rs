//! `fpctl logs SVC [-f] [-n N]`.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use super::load;
use crate::{Error, Outcome, Result};

pub fn logs(file: Option<&Path>, service: &str, follow: bool, lines: usize) -> Result<Outcome> {
    let config = load(file)?;
    if config.service(service).is_none() {
        let hint = crate::config::suggest(service, config.services.iter().map(|s| s.name.as_str()))
            .map(|n| format!(" (did you mean \"{n}\"?)"))
            .unwrap_or_default();
        return Err(Error::Usage(format!(
            "no service named \"{service}\" in {}{hint}",
            config.path.display()
        )));
    }
    let path = config.log_path(service);
    let mut f = match File::open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !follow => {
            eprintln!("{service} has no log yet ({})", path.display());
            return Ok(Outcome::Success);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => wait_for(&path)?,
        Err(e) => return Err(Error::other(format!("cannot read {}", path.display()), e)),
    };
    let mut out = std::io::stdout().lock();
    let tail = tail_lines(&mut f, lines).map_err(|e| Error::other(path.display(), e))?;
    let _ = out.write_all(&tail);
    let _ = out.flush();
    if !follow {
        return Ok(Outcome::Success);
    }
    let mut offset = f.stream_position().unwrap_or(0);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let len = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if len < offset {
            // Truncated or rotated: start over from the new beginning.
            f = File::open(&path).unwrap_or(f);
            offset = 0;
        }
        let _ = f.seek(SeekFrom::Start(offset));
        loop {
            match f.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    offset += n as u64;
                    if out.write_all(&buf[..n]).is_err() {
                        return Ok(Outcome::Success); // stdout closed
                    }
                }
            }
        }
        let _ = out.flush();
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn wait_for(path: &Path) -> Result<File> {
    loop {
        if let Ok(f) = File::open(path) {
            return Ok(f);
        }
        std::thread::sleep(Duration::from_millis(200));
    }
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

//! `fpctl logs [SVC…] [-f] [-n N]`: one service's log as it is, or several
//! (default: all) behind a coloured `name |` prefix.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::time::Duration;

use super::load;
use crate::{Error, Outcome, Result};

pub fn logs(
    file: Option<&Path>,
    services: &[String],
    follow: bool,
    lines: usize,
) -> Result<Outcome> {
    if let [service] = services {
        return one(file, service, follow, lines);
    }
    let config = load(file)?;
    let names: Vec<String> = if services.is_empty() {
        config.services.iter().map(|s| s.name.clone()).collect()
    } else {
        for name in services {
            known(&config, name)?;
        }
        services.to_vec()
    };
    let tailer = crate::output::LogTailer::new(&config, &names);
    tailer.print_last(lines);
    if follow {
        tailer.run();
    }
    Ok(Outcome::Success)
}

/// An error naming the file (and the nearest name) when `service` is not
/// in it.
fn known(config: &crate::config::Config, service: &str) -> Result<()> {
    if config.service(service).is_some() {
        return Ok(());
    }
    let hint = crate::config::suggest(service, config.services.iter().map(|s| s.name.as_str()))
        .map(|n| format!(" (did you mean \"{n}\"?)"))
        .unwrap_or_default();
    Err(Error::Usage(format!(
        "no service named \"{service}\" in {}{hint}",
        config.path.display()
    )))
}

fn one(file: Option<&Path>, service: &str, follow: bool, lines: usize) -> Result<Outcome> {
    let config = load(file)?;
    known(&config, service)?;
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
    let tail = crate::service_log::tail_lines(&mut f, lines)
        .map_err(|e| Error::other(path.display(), e))?;
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

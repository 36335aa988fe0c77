//! Setup hooks run before a service's first start: a Python venv, npm
//! packages, or a list of commands. Each is re-run only when its inputs
//! change: a hash of them is stamped under `.fpctl/setup/` after a successful
//! run (so files that setup itself writes, like package-lock.json, count).
//! Output goes to the service's log.

use std::fs::File;
use std::io::Write;
use std::path::PathBuf;

use sha2::{Digest, Sha256};

use crate::config::{Config, Service, Setup};
use crate::process::{self, SpawnSpec};

/// Variables a set-up service needs at every start (PATH, VIRTUAL_ENV).
pub fn runtime_env(service: &Service) -> Vec<(String, String)> {
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let prepend = |dir: PathBuf| format!("{}:{path}", dir.display());
    match &service.setup {
        Setup::Venv => {
            let venv = service.dir.join(".venv");
            vec![
                ("PATH".into(), prepend(venv.join("bin"))),
                ("VIRTUAL_ENV".into(), venv.display().to_string()),
            ]
        }
        Setup::Npm => vec![(
            "PATH".into(),
            prepend(service.dir.join("node_modules/.bin")),
        )],
        Setup::None | Setup::Commands(_) => Vec::new(),
    }
}

/// The full environment of a service's processes: its own plus setup's.
pub fn service_env(service: &Service) -> Vec<(String, String)> {
    let mut env = service.port_env.to_vec();
    env.extend(service.env.iter().cloned());
    env.extend(runtime_env(service));
    env
}

/// What happened.
#[derive(Debug, PartialEq, Eq)]
pub enum SetupOutcome {
    NotNeeded,
    UpToDate,
    Ran,
}

fn stamp_path(config: &Config, service: &Service) -> PathBuf {
    config
        .state_dir()
        .join("setup")
        .join(format!("{}.hash", service.name))
}

/// The hash of what this setup depends on; None when there is no setup.
fn inputs_hash(service: &Service) -> Option<String> {
    let mut h = Sha256::new();
    let files: &[&str] = match &service.setup {
        Setup::None => return None,
        Setup::Venv => {
            h.update(b"venv\0");
            &["requirements.txt"]
        }
        Setup::Npm => {
            h.update(b"npm\0");
            &["package.json", "package-lock.json"]
        }
        Setup::Commands(cmds) => {
            for c in cmds {
                h.update(c.as_bytes());
                h.update(b"\0");
            }
            &[]
        }
    };
    for f in files {
        h.update(f.as_bytes());
        match std::fs::read(service.dir.join(f)) {
            Ok(bytes) => {
                h.update(b"\x01");
                h.update(&bytes);
            }
            Err(_) => h.update(b"\x00"),
        }
    }
    Some(format!("{:x}", h.finalize()))
}

/// Whether what setup produced is still there (someone may delete .venv).
fn artifacts_present(service: &Service) -> bool {
    match &service.setup {
        Setup::Venv => service.dir.join(".venv/bin/python").exists(),
        Setup::Npm => service.dir.join("node_modules").is_dir(),
        Setup::None | Setup::Commands(_) => true,
    }
}

/// Whether the service's setup ran before and its inputs changed since.
pub fn stale(config: &Config, service: &Service) -> bool {
    let recorded = std::fs::read_to_string(stamp_path(config, service)).ok();
    match (recorded, inputs_hash(service)) {
        (Some(recorded), Some(now)) => recorded != now,
        _ => false,
    }
}

/// Run the service's setup if its inputs changed since the last success.
/// Its processes carry `marker`, so a stop during setup can find them.
pub async fn run(
    config: &Config,
    service: &Service,
    log: &File,
    marker: Option<&str>,
) -> Result<SetupOutcome, String> {
    let Some(before) = inputs_hash(service) else {
        return Ok(SetupOutcome::NotNeeded);
    };
    let stamp = stamp_path(config, service);
    let recorded = std::fs::read_to_string(&stamp).ok();
    if recorded.as_deref() == Some(before.as_str()) && artifacts_present(service) {
        return Ok(SetupOutcome::UpToDate);
    }
    let _ = std::fs::remove_file(&stamp);
    let env = service_env(service);
    for argv in steps(service) {
        note(log, &format!("setup: {}", shell_words::join(&argv)));
        let spec = SpawnSpec {
            argv: &argv,
            dir: &service.dir,
            env: &env,
            marker,
        };
        let exit = process::run_logged(&spec, log)
            .await
            .map_err(|e| e.to_string())?;
        if !exit.success() {
            return Err(format!("setup step `{}` {exit}", shell_words::join(&argv)));
        }
    }
    let after = inputs_hash(service).expect("setup is set");
    if let Some(dir) = stamp.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    crate::state::write_atomic(&stamp, after.as_bytes())
        .map_err(|e| format!("cannot record setup: {e}"))?;
    note(log, "setup: done");
    Ok(SetupOutcome::Ran)
}

/// The commands a setup runs, in order.
fn steps(service: &Service) -> Vec<Vec<String>> {
    let dir = &service.dir;
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    match &service.setup {
        Setup::None => Vec::new(),
        Setup::Venv => {
            let mut steps = Vec::new();
            if !dir.join(".venv/bin/python").exists() {
                steps.push(s(&["python3", "-m", "venv", ".venv"]));
            }
            if dir.join("requirements.txt").exists() {
                steps.push(s(&[
                    ".venv/bin/python",
                    "-m",
                    "pip",
                    "install",
                    "--disable-pip-version-check",
                    "--no-input",
                    "-r",
                    "requirements.txt",
                ]));
            }
            steps
        }
        Setup::Npm => {
            if dir.join("package-lock.json").exists() {
                vec![s(&["npm", "ci", "--no-audit", "--no-fund"])]
            } else {
                vec![s(&["npm", "install", "--no-audit", "--no-fund"])]
            }
        }
        Setup::Commands(cmds) => cmds.iter().map(|c| s(&["sh", "-c", c])).collect(),
    }
}

/// A line of fpctl's own in a service's log.
pub fn note(mut log: &File, line: &str) {
    // One line per note, whatever the text holds (a multi-line command).
    // One write(2) of the whole line: with O_APPEND it cannot interleave
    // with the service's own output (writeln! would write it in pieces).
    let line = format!("[fpctl] {}\n", line.replace('\n', "\\n"));
    let _ = log.write_all(line.as_bytes());
}

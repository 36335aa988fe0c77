//! Setup hooks run before a service's first start: a Python venv, npm
//! packages, or a list of commands. Each is re-run only when its inputs
//! change: a hash of them is stamped under `.fpctl/setup/` after a successful
//! run (so files that setup itself writes, like package-lock.json, count).
//! Output goes to the service's log.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};
use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

use crate::config::{Config, Service, Setup};
use crate::process::{self, SpawnSpec};
use crate::service_log;
use crate::status::{EngineStep, IoStep, PrepareError};

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
    env.extend(own_env(service));
    env
}

/// [`service_env`] without the variables every service shares: its own
/// `env` and the setup's (`PATH`, `VIRTUAL_ENV`), set after the shared ones.
pub fn own_env(service: &Service) -> Vec<(String, String)> {
    let mut env = service.env.clone();
    env.extend(runtime_env(service));
    env
}

/// Who may run a setup now: at most `max_parallel_setup` at once, and never
/// two of one folder (services sharing a `.venv` or `node_modules`).
pub struct Gate {
    slots: Arc<Semaphore>,
    folders: Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>,
}

/// A setup's right to run; dropping it lets the next one in.
pub struct Pass {
    _folder: Option<OwnedMutexGuard<()>>,
    _slot: Option<OwnedSemaphorePermit>,
}

impl Gate {
    pub fn new(parallel: usize) -> Arc<Gate> {
        Arc::new(Gate {
            slots: Arc::new(Semaphore::new(parallel.max(1))),
            folders: Mutex::new(HashMap::new()),
        })
    }

    /// Wait for the service's folder, then for a slot (a setup waiting for
    /// its folder holds no slot).
    pub async fn enter(&self, service: &Service) -> Pass {
        let folder = shared_folder(service).map(|dir| {
            let mut folders = self.folders.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(folders.entry(dir).or_default())
        });
        let folder = match folder {
            Some(lock) => Some(lock.lock_owned().await),
            None => None,
        };
        let slot = Arc::clone(&self.slots).acquire_owned().await.ok();
        Pass {
            _folder: folder,
            _slot: slot,
        }
    }
}

/// The folder a setup writes that other services may share.
fn shared_folder(service: &Service) -> Option<PathBuf> {
    // An image: its build context, or (pulled) its name. Replicas share one.
    if let Some(c) = service.in_container() {
        return Some(match &c.build {
            Some(dir) => canonical(dir),
            None => PathBuf::from(format!("image:{}", c.tag)),
        });
    }
    let dir = match &service.setup {
        Setup::Venv => service.dir.join(".venv"),
        Setup::Npm => service.dir.join("node_modules"),
        Setup::None | Setup::Commands(_) => return None,
    };
    Some(canonical(&dir))
}

/// `path` with its existing part resolved, so two spellings of one folder
/// are one key.
fn canonical(path: &Path) -> PathBuf {
    match (path.parent(), path.file_name()) {
        (Some(parent), Some(name)) => std::fs::canonicalize(parent)
            .map(|p| p.join(name))
            .unwrap_or_else(|_| path.to_path_buf()),
        _ => path.to_path_buf(),
    }
}

/// Whether running the service's setup now would do anything.
pub fn needed(config: &Config, service: &Service) -> bool {
    let Some(now) = inputs_hash(service) else {
        return false;
    };
    let recorded = std::fs::read_to_string(stamp_path(config, service)).ok();
    recorded.as_deref() != Some(now.as_str()) || !artifacts_present(service)
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

/// The files in a service's dir whose content a setup depends on.
pub fn inputs(setup: &Setup) -> &'static [&'static str] {
    match setup {
        Setup::Venv => &["requirements.txt"],
        Setup::Npm => &["package.json", "package-lock.json"],
        Setup::None | Setup::Commands(_) => &[],
    }
}

/// The hash of what this setup depends on; None when there is no setup.
fn inputs_hash(service: &Service) -> Option<String> {
    let mut h = Sha256::new();
    match &service.setup {
        Setup::None => return None,
        Setup::Venv => h.update(b"venv\0"),
        Setup::Npm => h.update(b"npm\0"),
        Setup::Commands(cmds) => {
            for c in cmds {
                h.update(c.as_bytes());
                h.update(b"\0");
            }
        }
    }
    for f in inputs(&service.setup) {
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
    if service.in_container().is_some() {
        let recorded = std::fs::read_to_string(image_stamp_path(config, service)).ok();
        return match (recorded, crate::container::build_inputs_hash(service)) {
            (Some(recorded), Some(now)) => recorded != now,
            _ => false,
        };
    }
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
    gate: &Gate,
    service: &Service,
    log: &File,
    marker: Option<&str>,
) -> Result<SetupOutcome, PrepareError> {
    if service.in_container().is_some() {
        return image(config, gate, service, log, marker).await;
    }
    if inputs_hash(service).is_none() {
        return Ok(SetupOutcome::NotNeeded);
    }
    if !needed(config, service) {
        return Ok(SetupOutcome::UpToDate);
    }
    let _pass = gate.enter(service).await;
    // Another run (ahead of readiness, or of a service sharing the folder)
    // may have done it while this one waited.
    if !needed(config, service) {
        return Ok(SetupOutcome::UpToDate);
    }
    let stamp = stamp_path(config, service);
    let _ = std::fs::remove_file(&stamp);
    let env = own_env(service);
    for argv in steps(service) {
        service_log::note(
            log,
            service.log_timestamps,
            &format!("setup: {}", shell_words::join(&argv)),
        );
        let spec = SpawnSpec {
            argv: &argv,
            dir: &service.dir,
            shared: &service.port_env,
            env: &env,
            marker,
        };
        let exit = run_step(config, service, &spec, log).await?;
        if !exit.success() {
            let step = shell_words::join(&argv);
            return Err(PrepareError::SetupStep { step, exit });
        }
    }
    let after = inputs_hash(service).expect("setup is set");
    record_stamp(&stamp, &after)?;
    service_log::note(log, service.log_timestamps, "setup: done");
    Ok(SetupOutcome::Ran)
}

/// Whether a service that runs in a container has a setup step: its image,
/// pulled or built (its `setup` is the image's business then).
pub fn has_setup(service: &Service) -> bool {
    service.in_container().is_some() || service.setup != Setup::None
}

/// Where the inputs of the last successful build of a service's image are
/// recorded; replicas share one image, so one record.
fn image_stamp_path(config: &Config, service: &Service) -> PathBuf {
    let name = service
        .group
        .as_ref()
        .map_or(service.name.as_str(), |(g, _)| g.as_str());
    config
        .state_dir()
        .join("setup")
        .join(format!("{name}.image"))
}

/// The setup step of a container service: its image. A `build` runs when
/// its context changed since the last build or the image is gone (the
/// engine's layer cache makes an unchanged step quick); an `image` alone is
/// pulled when it is not on this machine. Neither counts against
/// `start_timeout`, which begins at the container's start.
async fn image(
    config: &Config,
    gate: &Gate,
    service: &Service,
    log: &File,
    marker: Option<&str>,
) -> Result<SetupOutcome, PrepareError> {
    let c = service.in_container().expect("a container service");
    let rt = crate::container::runtime(c.runtime)
        .await
        .map_err(|e| PrepareError::Engine {
            step: EngineStep::Connect,
            error: e.to_string(),
        })?;
    let stamp = image_stamp_path(config, service);
    let current = crate::container::build_inputs_hash(service);
    let up_to_date = || async {
        let built = match &current {
            Some(now) => std::fs::read_to_string(&stamp).ok().as_deref() == Some(now.as_str()),
            None => true,
        };
        built && crate::container::image_present(&rt, &c.tag).await
    };
    if up_to_date().await {
        return Ok(SetupOutcome::UpToDate);
    }
    let _pass = gate.enter(service).await;
    // A replica (or a run begun ahead) may have done it meanwhile.
    if up_to_date().await {
        return Ok(SetupOutcome::UpToDate);
    }
    let (argv, dir) = match crate::container::build_argv(&rt, service) {
        Some(argv) => (argv, c.build.clone().unwrap_or_else(|| config.root.clone())),
        None => (
            crate::container::pull_argv(&rt, &c.tag),
            config.root.clone(),
        ),
    };
    let shown = shell_words::join(&argv);
    service_log::note(log, service.log_timestamps, &format!("setup: {shown}"));
    let spec = SpawnSpec {
        argv: &argv,
        dir: &dir,
        shared: crate::process::no_shared_env(),
        env: &[],
        marker,
    };
    let exit = run_step(config, service, &spec, log).await?;
    if !exit.success() {
        return Err(PrepareError::Image {
            image: c.tag.clone(),
            build: c.build.as_ref().map(|d| d.display().to_string()),
            step: shown,
            exit,
        });
    }
    if let Some(now) = current {
        record_stamp(&stamp, &now)?;
    }
    service_log::note(log, service.log_timestamps, "setup: done");
    Ok(SetupOutcome::Ran)
}

/// Run one setup step to its end, its output in the service's log (through
/// a log writer when the log has times).
async fn run_step(
    config: &Config,
    service: &Service,
    spec: &SpawnSpec<'_>,
    log: &File,
) -> Result<process::Exit, PrepareError> {
    let log_path = config.log_path(&service.name);
    let stamped = service.log_timestamps.then_some(log_path.as_path());
    process::run_logged(spec, log, stamped)
        .await
        .map_err(|e| PrepareError::Io {
            step: IoStep::RunSetup,
            error: e.to_string(),
        })
}

/// Record what a setup that ran was made from, so the next start skips it.
fn record_stamp(stamp: &Path, inputs: &str) -> Result<(), PrepareError> {
    if let Some(dir) = stamp.parent() {
        std::fs::create_dir_all(dir).map_err(|e| PrepareError::Io {
            step: IoStep::RecordSetup,
            error: format!("{}: {e}", dir.display()),
        })?;
    }
    crate::state::write_atomic(stamp, inputs.as_bytes()).map_err(|e| PrepareError::Io {
        step: IoStep::RecordSetup,
        error: e.to_string(),
    })
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

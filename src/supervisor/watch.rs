//! Restart on file change: one inotify watcher (through `notify`) for every
//! service with `watch` globs.
//!
//! Only folders are watched, one watch each, non-recursively: a service's
//! `dir` and the folders below it that `.gitignore` does not exclude, minus
//! the ones no edit of the user's lives in (`.git`, `.fpctl`, `.venv`,
//! `node_modules`, `__pycache__`). At most [`MAX_WATCHES`] in all, so a huge
//! tree cannot exhaust the kernel's limit. A folder created later is added
//! when it appears. A change that matches a service's globs (and not a `!`
//! glob nor `.gitignore`), or that touches one of its setup inputs, restarts
//! it once the files are quiet for `watch_debounce`. The dispatcher decides
//! what the restart means; this task only reports the change through the
//! [`Notify`] it was given.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use ignore::gitignore::{Gitignore, GitignoreBuilder};
use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::service::ServiceId;
use crate::config::Config;

/// Told of each change: the service and the first path that changed
/// (relative to its dir); false once nobody listens.
pub type Notify = Box<dyn Fn(ServiceId, PathBuf) -> bool + Send>;

/// The most folders watched at once, over all services.
pub const MAX_WATCHES: usize = 8192;

/// Folders never watched: tool state and setup output, not sources.
const SKIPPED: &[&str] = &[".git", ".fpctl", ".venv", "node_modules", "__pycache__"];

/// The watching task; dropping this stops it and every watch.
pub struct Watches {
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Watches {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What one service watches.
struct Target {
    id: ServiceId,
    dir: PathBuf,
    include: GlobSet,
    exclude: GlobSet,
    /// The `.gitignore` files from the dir up to the project's folder, each
    /// with its own folder as root.
    gitignores: Vec<Gitignore>,
    setup_inputs: &'static [&'static str],
    debounce: Duration,
}

impl Target {
    fn new(config: &Config, svc: &crate::config::Service) -> Result<Target, globset::Error> {
        let mut include = GlobSetBuilder::new();
        let mut exclude = GlobSetBuilder::new();
        for pattern in &svc.watch {
            let (set, body) = match pattern.strip_prefix('!') {
                Some(body) => (&mut exclude, body),
                None => (&mut include, pattern.as_str()),
            };
            set.add(GlobBuilder::new(body).literal_separator(true).build()?);
        }
        let mut gitignores = Vec::new();
        for folder in svc.dir.ancestors() {
            let file = folder.join(".gitignore");
            if file.is_file() {
                let mut builder = GitignoreBuilder::new(folder);
                builder.add(file);
                if let Ok(g) = builder.build() {
                    gitignores.push(g);
                }
            }
            if folder == config.root {
                break;
            }
        }
        Ok(Target {
            id: ServiceId::new(&svc.name),
            dir: svc.dir.clone(),
            include: include.build()?,
            exclude: exclude.build()?,
            gitignores,
            setup_inputs: crate::setup::inputs(&svc.setup),
            debounce: svc.watch_debounce,
        })
    }

    /// Whether a change of `path` (absolute) should restart the service.
    fn wants(&self, path: &Path, is_dir: bool) -> bool {
        let Ok(rel) = path.strip_prefix(&self.dir) else {
            return false;
        };
        if skipped(rel) || self.ignored(path, is_dir) {
            return false;
        }
        let setup_input = rel.to_str().is_some_and(|r| self.setup_inputs.contains(&r));
        setup_input || (self.include.is_match(rel) && !self.exclude.is_match(rel))
    }

    fn ignored(&self, path: &Path, is_dir: bool) -> bool {
        self.gitignores.iter().any(|g| {
            path.starts_with(g.path()) && g.matched_path_or_any_parents(path, is_dir).is_ignore()
        })
    }
}

fn skipped(rel: &Path) -> bool {
    rel.components()
        .any(|c| SKIPPED.iter().any(|s| c.as_os_str() == *s))
}

/// Start watching for every service of `config` with `watch` globs; None
/// when there are none (or inotify is unavailable, which is logged).
pub fn start(config: &Config, notify: Notify) -> Option<Watches> {
    let mut targets = Vec::new();
    for svc in config.services.iter().filter(|s| !s.watch.is_empty()) {
        match Target::new(config, svc) {
            Ok(t) => targets.push(t),
            // validate() checked every glob; this cannot happen with a
            // config that loaded, but a bad one must not stop the others.
            Err(e) => tracing::warn!(service = %svc.name, "watch: {e}"),
        }
    }
    if targets.is_empty() {
        return None;
    }
    let (events_tx, events_rx) = mpsc::unbounded_channel();
    let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if let Ok(event) = res {
            let _ = events_tx.send(event);
        }
    });
    let mut watcher = match watcher {
        Ok(w) => w,
        Err(e) => {
            tracing::warn!("cannot watch files: {e}");
            return None;
        }
    };
    let mut watched = HashSet::new();
    for t in &targets {
        add_tree(&mut watcher, &mut watched, t, &t.dir);
    }
    tracing::debug!(folders = watched.len(), "watching");
    let task = tokio::spawn(run(watcher, watched, targets, events_rx, notify));
    Some(Watches { task })
}

/// Watch `top` and every folder below it that `target` does not ignore;
/// returns the files found (a new folder's files may be written before its
/// watch exists).
fn add_tree(
    watcher: &mut impl Watcher,
    watched: &mut HashSet<PathBuf>,
    target: &Target,
    top: &Path,
) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let walk = ignore::WalkBuilder::new(top)
        .hidden(false)
        .git_ignore(false)
        .git_global(false)
        .git_exclude(false)
        .ignore(false)
        .parents(false)
        .filter_entry(|e| !SKIPPED.iter().any(|s| e.file_name() == *s))
        .build();
    for entry in walk.flatten() {
        if !entry.file_type().is_some_and(|t| t.is_dir()) {
            files.push(entry.into_path());
            continue;
        }
        let path = entry.path();
        if path != target.dir && target.ignored(path, true) {
            continue;
        }
        if watched.len() >= MAX_WATCHES {
            tracing::warn!(
                "watching {MAX_WATCHES} folders already; {} and the folders below it are not watched",
                path.display()
            );
            return files;
        }
        if watched.insert(path.to_path_buf()) {
            if let Err(e) = watcher.watch(path, RecursiveMode::NonRecursive) {
                tracing::warn!("cannot watch {}: {e}", path.display());
                watched.remove(path);
            }
        }
    }
    files
}

async fn run(
    mut watcher: impl Watcher,
    mut watched: HashSet<PathBuf>,
    targets: Vec<Target>,
    mut events: mpsc::UnboundedReceiver<notify::Event>,
    notify: Notify,
) {
    // Per target: when the files went quiet long enough, and the first
    // path that changed.
    let mut pending: HashMap<usize, (Instant, PathBuf)> = HashMap::new();
    loop {
        let next = pending.values().map(|(at, _)| *at).min();
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { return };
                if matches!(event.kind, EventKind::Access(_) | EventKind::Other) {
                    continue;
                }
                let mut changed = event.paths.clone();
                for path in &event.paths {
                    if matches!(event.kind, EventKind::Create(_)) && path.is_dir() {
                        for t in &targets {
                            let inside = path.strip_prefix(&t.dir).is_ok_and(|rel| !skipped(rel));
                            if inside && !t.ignored(path, true) {
                                changed.extend(add_tree(&mut watcher, &mut watched, t, path));
                            }
                        }
                    }
                }
                for path in &changed {
                    let is_dir = path.is_dir();
                    for (k, t) in targets.iter().enumerate() {
                        if t.wants(path, is_dir) {
                            let rel = path.strip_prefix(&t.dir).unwrap_or(path).to_path_buf();
                            let first = pending.remove(&k).map_or(rel, |(_, p)| p);
                            pending.insert(k, (Instant::now() + t.debounce, first));
                        }
                    }
                }
            }
            _ = sleep_until(next) => {
                let now = Instant::now();
                let due: Vec<usize> = pending
                    .iter()
                    .filter(|(_, (at, _))| *at <= now)
                    .map(|(k, _)| *k)
                    .collect();
                for k in due {
                    if let Some((_, path)) = pending.remove(&k) {
                        let id = targets[k].id.clone();
                        if !notify(id, path) {
                            return;
                        }
                    }
                }
            }
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

//! `fpctl init`: find the services in a project's tree and draft a
//! services.toml for them. It walks the tree (honouring .gitignore, skipping
//! node_modules, .venv, .git and target), reads package.json,
//! requirements.txt / pyproject.toml, Procfiles, compose files and .env
//! files, and says in a [`Report`] what it found, guessed and could not
//! decide. It writes nothing.

mod apps;
mod links;
mod ranges;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::draft::{inline, Draft, DraftService, PortPlan};
use crate::import;
use crate::Error;

/// Folders never searched, ignored or not.
const SKIP: &[&str] = &[
    "node_modules",
    ".venv",
    "venv",
    ".git",
    "target",
    ".fpctl",
    "__pycache__",
    ".tox",
    "dist",
    "build",
];

const COMPOSE_FILES: &[&str] = &[
    "compose.yaml",
    "compose.yml",
    "docker-compose.yaml",
    "docker-compose.yml",
    "process-compose.yaml",
    "process-compose.yml",
];

/// Health endpoints tried, in this order.
const HEALTH_PATHS: &[&str] = &["/health", "/healthz", "/api/health", "/status", "/ping"];

/// What `init` tells the user besides the file.
#[derive(Debug, Default)]
pub struct Report {
    pub found: Vec<String>,
    pub guessed: Vec<String>,
    pub undecided: Vec<String>,
}

/// A service folder and the markers it holds.
#[derive(Debug, Default)]
struct Folder {
    files: Vec<String>,
}

impl Folder {
    fn has(&self, name: &str) -> bool {
        self.files.iter().any(|f| f == name)
    }
}

/// One app found, before ports and links are settled.
pub struct Found {
    pub svc: DraftService,
    /// Its port as the project's own files give it (others may name it).
    pub written_port: Option<u16>,
    /// Whether its port is handed out already (a Procfile's are).
    pub port_settled: bool,
    /// It takes its port from `PORT`, so it can be given another.
    pub movable: bool,
    /// Its `.env`, read.
    pub env: Vec<(String, String)>,
    /// Its code, for names of other services.
    pub code: String,
}

pub fn discover(root: &Path) -> Result<(Draft, Report), Error> {
    let root = std::fs::canonicalize(root)
        .map_err(|e| Error::Usage(format!("{}: {e}", root.display())))?;
    let folders = walk(&root)?;
    let mut report = Report::default();
    let mut ports = PortPlan::default();
    let mut draft = Draft::default();
    let covered = compose_services(&root, &folders, &mut draft, &mut ports, &mut report)?;
    let mut found = folder_services(&root, &folders, &covered, &mut ports, &mut report);

    // Ports: as written where free, else the next free one.
    for f in &mut found {
        let Some(written) = f.written_port.filter(|_| !f.port_settled) else {
            continue;
        };
        let port = ports.claim(written);
        if port != written {
            report.guessed.push(format!(
                "{}: port {written} is taken (in use now or by another service); given {port}",
                f.svc.name
            ));
        }
        f.svc.set("port", i64::from(port));
    }
    unique_names(&mut found, &draft);

    links::infrastructure(&mut draft, &mut found, &mut ports, &mut report);
    links::dependencies(&mut found, &draft, &mut report);
    for f in &mut found {
        health(f, &mut report);
    }
    let holds = ranges::holds(&draft, &found);
    draft.services.extend(found.into_iter().map(|f| f.svc));
    links::tiers(&mut draft);
    ranges::assign(&mut draft, &holds, &mut ports, &mut report);
    if draft.services.is_empty() {
        return Err(Error::Usage(format!(
            "found no services under {}: no package.json, requirements.txt, pyproject.toml, \
             Procfile or compose file",
            root.display()
        )));
    }
    draft.header = vec![
        "Written by `fpctl init` from the services found in this folder.".into(),
        "Comments starting with \"guess\" mark what fpctl guessed: check them.".into(),
    ];
    // `fpctl logs` then merges the services' logs in the order lines were
    // written, not file by file.
    draft
        .project
        .insert("log_timestamps", toml_edit::value(true));
    Ok((draft, report))
}

/// Services from compose and process-compose files (they say the most), and
/// the folders they cover.
fn compose_services(
    root: &Path,
    folders: &BTreeMap<PathBuf, Folder>,
    draft: &mut Draft,
    ports: &mut PortPlan,
    report: &mut Report,
) -> Result<Vec<PathBuf>, Error> {
    let mut covered = Vec::new();
    for (dir, folder) in folders {
        for name in COMPOSE_FILES.iter().filter(|n| folder.has(n)) {
            let file = dir.join(name);
            let imported = import::import_file(&file, root, ports)?;
            report.found.push(format!(
                "{}: a {} with {} service(s)",
                import::relative(&file, root),
                imported.format.label(),
                imported.draft.services.len()
            ));
            let prefix = format!("{}/", root.display());
            report
                .undecided
                .extend(imported.warnings.iter().map(|w| w.replacen(&prefix, "", 1)));
            for svc in imported.draft.services {
                if let Some(d) = svc.get_str("dir") {
                    covered.push(root.join(d));
                }
                if draft.service(&svc.name).is_none() {
                    draft.services.push(svc);
                }
            }
        }
    }
    Ok(covered)
}

/// The apps of every other folder: Procfiles, package.json, Python.
fn folder_services(
    root: &Path,
    folders: &BTreeMap<PathBuf, Folder>,
    covered: &[PathBuf],
    ports: &mut PortPlan,
    report: &mut Report,
) -> Vec<Found> {
    let mut found: Vec<Found> = Vec::new();
    for (dir, folder) in folders {
        if covered.contains(dir) {
            continue;
        }
        let rel = import::relative(dir, root);
        let folder_name = dir
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| apps::valid_name(n))
            .unwrap_or("app")
            .to_string();
        let env = if folder.has(".env") {
            match crate::config::read_env_file(&dir.join(".env")) {
                Ok(env) => env,
                Err(e) => {
                    report.undecided.push(format!("{e}; .env not read"));
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        let code = apps::read_sources(dir);
        if folder.has("Procfile") {
            let text = std::fs::read_to_string(dir.join("Procfile")).unwrap_or_default();
            let mut ctx = import::Ctx::new(&dir.join("Procfile"), root, ports);
            let procs = import::procfile::convert_in(&text, dir, Some(&folder_name), &mut ctx);
            report.undecided.extend(ctx.take_warnings());
            report.found.push(format!(
                "{rel}/Procfile: {} process(es)",
                procs.services.len()
            ));
            for svc in procs.services {
                let written_port = svc.port();
                // A port the command sets itself (`PORT=3000 …`) stays.
                let movable = svc.get_str("command").is_some_and(|c| {
                    import::procfile::reads_port(c) && import::procfile::inline_port(c).is_none()
                });
                found.push(Found {
                    svc,
                    written_port,
                    port_settled: true,
                    movable,
                    env: env.clone(),
                    code: code.clone(),
                });
            }
            continue;
        }
        let app = if folder.has("package.json") {
            apps::node(dir, &folder_name)
        } else if folder.has("requirements.txt") || folder.has("pyproject.toml") {
            apps::python(dir, &folder_name)
        } else {
            continue;
        };
        let app = match app {
            Ok(app) => app,
            Err(e) => {
                report.undecided.push(e.to_string());
                continue;
            }
        };
        found.push(app_service(app, &rel, env, code, report));
    }
    found
}

fn walk(root: &Path) -> Result<BTreeMap<PathBuf, Folder>, Error> {
    let mut folders: BTreeMap<PathBuf, Folder> = BTreeMap::new();
    let walker = ignore::WalkBuilder::new(root)
        .hidden(false)
        .require_git(false)
        .max_depth(Some(6))
        .filter_entry(|e| {
            let name = e.file_name().to_string_lossy();
            !(e.file_type().is_some_and(|t| t.is_dir()) && SKIP.contains(&name.as_ref()))
        })
        .build();
    for entry in walker {
        let entry = entry.map_err(|e| Error::Other(format!("walking {}: {e}", root.display())))?;
        if !entry.file_type().is_some_and(|t| t.is_file()) {
            continue;
        }
        let name = entry.file_name().to_string_lossy().into_owned();
        let marker = matches!(
            name.as_str(),
            "package.json" | "requirements.txt" | "pyproject.toml" | "Procfile" | ".env"
        ) || COMPOSE_FILES.contains(&name.as_str());
        if let (true, Some(dir)) = (marker, entry.path().parent()) {
            folders
                .entry(dir.to_path_buf())
                .or_default()
                .files
                .push(name);
        }
    }
    // A folder with only a .env is not a service (a root .env is read by
    // `links` for infrastructure).
    folders.retain(|_, f| f.files.iter().any(|n| n != ".env"));
    Ok(folders)
}

fn app_service(
    app: apps::App,
    rel: &str,
    env: Vec<(String, String)>,
    code: String,
    report: &mut Report,
) -> Found {
    let mut svc = DraftService::new(&app.name);
    svc.note(format!("{} app in {rel}/", app.kind));
    for n in &app.notes {
        svc.note(n.clone());
    }
    if rel != "." {
        svc.set("dir", rel);
    }
    if let Some(setup) = app.setup.clone() {
        svc.set("setup", setup);
    }
    if app.command_guessed {
        svc.set_noted(
            "command",
            app.command.as_str(),
            &format!("guess: from {}", app.command_from),
        );
        report.guessed.push(format!(
            "{}: command `{}` from {}",
            app.name, app.command, app.command_from
        ));
    } else {
        svc.set("command", app.command.as_str());
    }
    // A PORT in the folder's .env wins over what the code defaults to.
    let env_port = env
        .iter()
        .find(|(k, _)| k == "PORT")
        .and_then(|(_, v)| v.parse::<u16>().ok());
    let port = env_port
        .map(|p| (p, ".env".to_string()))
        .or(app.port.clone());
    if let Some((_, from)) = &port {
        if from.starts_with("guess") {
            report
                .guessed
                .push(format!("{}: port from {from}", app.name));
        }
    }
    report.found.push(format!(
        "{}: {} app in {rel}/, command from {}{}",
        app.name,
        app.kind,
        app.command_from,
        port.as_ref()
            .map(|(p, from)| format!(", port {p} ({from})"))
            .unwrap_or_default()
    ));
    for n in app.notes {
        report.found.push(format!("{}: {n}", app.name));
    }
    if port.is_none() && app.auto_port {
        svc.set_noted(
            "port",
            "auto",
            "guess: no port in its files; it reads PORT, so fpctl gives it a free one of its tier's range",
        );
        report.guessed.push(format!(
            "{}: port \"auto\" (no port in its files; it reads PORT)",
            app.name
        ));
    }
    Found {
        svc,
        written_port: port.map(|(p, _)| p),
        port_settled: false,
        movable: app.port_from_env,
        env,
        code,
    }
}

fn unique_names(found: &mut [Found], draft: &Draft) {
    let mut seen: Vec<String> = draft.services.iter().map(|s| s.name.clone()).collect();
    for f in found.iter_mut() {
        let base = f.svc.name.clone();
        let mut name = base.clone();
        let mut n = 2;
        while seen.contains(&name) {
            name = format!("{base}-{n}");
            n += 1;
        }
        f.svc.name = name.clone();
        seen.push(name);
    }
}

/// An HTTP check for a web service: the endpoint that answers if the
/// service runs now, else one its code names, else `/health`, marked as a
/// guess.
fn health(f: &mut Found, report: &mut Report) {
    let auto = f.svc.get_str("port") == Some("auto");
    if f.svc.table.contains_key("health") || (!auto && f.svc.port().is_none()) {
        return;
    }
    let name = f.svc.name.clone();
    // Where a copy runs now, if its files say.
    if let Some(written) = f.written_port.filter(|_| !auto) {
        if let Some(path) = HEALTH_PATHS.iter().find(|p| answers(written, p)) {
            f.svc.set_noted(
                "health",
                inline([("http", (*path).into())]),
                &format!("{path} answered on port {written}, where it runs now"),
            );
            report
                .found
                .push(format!("{name}: {path} answers on port {written}"));
            return;
        }
    }
    let in_code = HEALTH_PATHS
        .iter()
        .find(|p| f.code.contains(&format!("\"{p}\"")) || f.code.contains(&format!("'{p}'")));
    match in_code {
        Some(path) => {
            f.svc.set_noted(
                "health",
                inline([("http", (*path).into())]),
                &format!("guess: its code names the route {path}"),
            );
            report.guessed.push(format!(
                "{name}: health check on {path}, a route its code names"
            ));
        }
        None => {
            f.svc.set_noted(
                "health",
                inline([("http", "/health".into())]),
                "guess: no health route found; use { tcp = true } if it has none",
            );
            report.guessed.push(format!(
                "{name}: health check on /health (no health route found in its code)"
            ));
        }
    }
}

/// Whether `http://127.0.0.1:PORT/PATH` answers 2xx within half a second.
fn answers(port: u16, path: &str) -> bool {
    use std::io::{Read, Write};
    use std::time::Duration;
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut s) = std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(300)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if write!(s, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").is_err() {
        return false;
    }
    let mut head = [0u8; 12];
    s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") && head[9] == b'2'
}

//! What one service folder runs: a Node app from package.json, a Python app
//! from requirements.txt / pyproject.toml and its entry point. Each finding
//! says whether it was read from a file or guessed.

use std::path::{Path, PathBuf};

/// A service folder's program, as far as its files tell.
#[derive(Debug, Default)]
pub struct App {
    pub name: String,
    pub kind: &'static str,
    pub command: String,
    /// How the command was chosen, for the report.
    pub command_from: String,
    pub command_guessed: bool,
    pub setup: Option<toml_edit::Value>,
    /// The port it listens on as written (before conflicts are resolved),
    /// and where that came from.
    pub port: Option<(u16, String)>,
    /// It serves, its files give no port, and it takes its port from the
    /// environment (`PORT`): fpctl may choose one (`port = "auto"`).
    pub auto_port: bool,
    /// It takes its port from `PORT`, so fpctl may give it another.
    pub port_from_env: bool,
    /// Whether it serves HTTP (so an HTTP health check makes sense).
    pub web: bool,
    pub notes: Vec<String>,
}

/// The program files of a folder (top level and `src/`), to search for
/// ports, routes and other services' addresses.
pub fn source_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for d in [dir.to_path_buf(), dir.join("src"), dir.join("app")] {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.extension()
                        .and_then(|e| e.to_str())
                        .is_some_and(|e| matches!(e, "py" | "js" | "mjs" | "cjs" | "ts"))
            })
            .collect();
        found.sort();
        files.extend(found);
    }
    files.truncate(50);
    files
}

pub fn read_sources(dir: &Path) -> String {
    source_files(dir)
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter(|t| t.len() < 512 * 1024)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Why an app's command could not be told.
#[derive(Debug, thiserror::Error)]
pub enum Undecided {
    #[error("{}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {source}", .path.display())]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{}: no scripts.start, scripts.dev or main file: cannot tell how it starts", .0.display())]
    NoNodeEntry(PathBuf),
    #[error("{}: no app.py, main.py, manage.py, [project.scripts] entry, or one .py file named like the folder (or worker.py, run.py…): cannot tell how it starts", .0.display())]
    NoPythonEntry(PathBuf),
}

/// A Node app: `scripts.start` / `scripts.dev`, else its main file.
pub fn node(dir: &Path, fallback_name: &str) -> Result<App, Undecided> {
    let path = dir.join("package.json");
    let text = std::fs::read_to_string(&path).map_err(|source| Undecided::Read {
        path: path.clone(),
        source,
    })?;
    let pkg: serde_json::Value = serde_json::from_str(&text).map_err(|source| Undecided::Json {
        path: path.clone(),
        source,
    })?;
    let name = pkg["name"]
        .as_str()
        .map(|n| n.rsplit('/').next().unwrap_or(n))
        .filter(|n| valid_name(n))
        .unwrap_or(fallback_name)
        .to_string();
    let scripts = &pkg["scripts"];
    let mut app = App {
        name,
        kind: "Node",
        setup: Some("npm".into()),
        ..App::default()
    };
    if let Some(engine) = pkg["engines"]["node"].as_str() {
        app.notes
            .push(format!("package.json asks for node {engine}"));
    }
    let main = pkg["main"]
        .as_str()
        .map(str::to_string)
        .or_else(|| {
            ["server.js", "index.js", "app.js", "main.js"]
                .into_iter()
                .find(|f| dir.join(f).is_file())
                .map(str::to_string)
        })
        .filter(|f| dir.join(f).is_file());
    if let Some(start) = scripts["start"].as_str() {
        app.command = "npm start".into();
        app.command_from = format!("scripts.start ({start})");
    } else if let Some(dev) = scripts["dev"].as_str() {
        app.command = "npm run dev".into();
        app.command_from = format!("scripts.dev ({dev}); there is no scripts.start");
        app.command_guessed = true;
    } else if let Some(main) = main {
        app.command = format!("node {main}");
        app.command_from = format!("{main} (package.json has no start script)");
        app.command_guessed = true;
    } else {
        return Err(Undecided::NoNodeEntry(path));
    }
    let scripts_text: String = scripts
        .as_object()
        .map(|m| {
            m.values()
                .filter_map(|v| v.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let code = read_sources(dir);
    app.port = port_assignment(&scripts_text)
        .map(|p| (p, "PORT= in package.json's scripts".to_string()))
        .or_else(|| port_in_code(&code).map(|p| (p, "the code".to_string())));
    app.web = app.port.is_some() || code.contains(".listen(");
    app.port_from_env = reads_port_env(&code) || port_assignment(&scripts_text).is_some();
    if app.web && app.port.is_none() {
        guess_port(&mut app, 3000, "Node's usual 3000");
    }
    Ok(app)
}

/// A Python app: its entry point and framework.
pub fn python(dir: &Path, fallback_name: &str) -> Result<App, Undecided> {
    let requirements = std::fs::read_to_string(dir.join("requirements.txt")).unwrap_or_default();
    let pyproject = std::fs::read_to_string(dir.join("pyproject.toml")).unwrap_or_default();
    let deps = format!("{requirements}\n{pyproject}").to_ascii_lowercase();
    let mut app = App {
        name: fallback_name.to_string(),
        kind: "Python",
        ..App::default()
    };
    app.setup = Some("venv".into());
    let known = ["app.py", "main.py", "manage.py", "server.py", "wsgi.py"]
        .into_iter()
        .find(|f| dir.join(f).is_file());
    // No usual entry point and no script: a file named like the folder (or
    // like a worker, a runner…), or the only one there is, as a guess.
    let guessed = match known {
        None if project_script(&pyproject).is_none() => guess_entry(dir, fallback_name),
        _ => None,
    };
    let entry = known.or(guessed.as_ref().map(|(f, _)| f.as_str()));
    let code = read_sources(dir);
    let has = |dep: &str| {
        deps.lines().any(|l| {
            let l = l.trim().trim_start_matches('"');
            l.starts_with(dep)
                && l[dep.len()..]
                    .chars()
                    .next()
                    .is_none_or(|c| !c.is_ascii_alphanumeric() && c != '-' && c != '_')
        }) || code.contains(&format!("import {dep}"))
            || code.contains(&format!("from {dep} import"))
    };
    let framework = if has("django") {
        "Django"
    } else if has("fastapi") {
        "FastAPI"
    } else if has("flask") {
        "Flask"
    } else {
        ""
    };
    if !framework.is_empty() {
        app.kind = match framework {
            "Django" => "Python (Django)",
            "FastAPI" => "Python (FastAPI)",
            _ => "Python (Flask)",
        };
    }
    let module = |f: &str| f.trim_end_matches(".py").to_string();
    let entry_code = entry
        .and_then(|f| std::fs::read_to_string(dir.join(f)).ok())
        .unwrap_or_default();
    let runs_itself = entry_code.contains("__main__");
    let default_port = match framework {
        "Flask" => 5000,
        _ => 8000,
    };
    match entry {
        Some("manage.py") => {
            app.command = "python manage.py runserver 127.0.0.1:${PORT}".into();
            app.command_from = "manage.py (Django's development server)".into();
        }
        Some(f) if runs_itself => {
            app.command = format!("python {f}");
            app.command_from = format!("{f} (it runs itself under __main__)");
        }
        Some(f) if framework == "FastAPI" || has("uvicorn") => {
            let var = assigned_from(&entry_code, "FastAPI(").unwrap_or_else(|| "app".into());
            app.command = format!(
                "python -m uvicorn {}:{var} --host 127.0.0.1 --port ${{PORT}}",
                module(f)
            );
            app.command_from = format!("{f} (a FastAPI app served by uvicorn)");
            if !has("uvicorn") {
                app.notes
                    .push("uvicorn is not in its requirements: add it".into());
            }
        }
        Some(f) if has("gunicorn") => {
            let var = assigned_from(&entry_code, "Flask(").unwrap_or_else(|| "app".into());
            app.command = format!("gunicorn -b 127.0.0.1:${{PORT}} {}:{var}", module(f));
            app.command_from = format!("{f} (served by gunicorn)");
        }
        Some(f) if framework == "Flask" => {
            app.command = format!(
                "python -m flask --app {} run --host 127.0.0.1 --port ${{PORT}}",
                module(f)
            );
            app.command_from = format!("{f} (a Flask app)");
        }
        Some(f) => {
            app.command = format!("python {f}");
            app.command_from = f.to_string();
            app.command_guessed = true;
        }
        None => match project_script(&pyproject) {
            Some(script) => {
                app.setup = Some(crate::draft::strings([
                    "python3 -m venv .venv",
                    ".venv/bin/python -m pip install -e .",
                ]));
                app.command = format!(".venv/bin/{script}");
                app.command_from = format!("[project.scripts] {script} in pyproject.toml");
            }
            None => return Err(Undecided::NoPythonEntry(dir.to_path_buf())),
        },
    }
    if let Some((f, why)) = &guessed {
        app.command_guessed = true;
        app.command_from = format!("{f} ({why}; there is no app.py, main.py or manage.py)");
    }
    let serves = !framework.is_empty()
        || [
            "HTTPServer",
            "http.server",
            "socketserver",
            "aiohttp",
            "uvicorn",
        ]
        .iter()
        .any(|w| code.contains(w));
    app.port = port_in_code(&code).map(|p| (p, "the code".to_string()));
    app.web = serves || app.port.is_some();
    app.port_from_env = app.command.contains("${PORT}") || reads_port_env(&code);
    if app.web && app.port.is_none() {
        guess_port(
            &mut app,
            default_port,
            &format!("{} default", framework_or(framework)),
        );
    }
    Ok(app)
}

/// Files that run a worker or a server by their name, after one named like
/// the folder.
const ENTRY_NAMES: &[&str] = &[
    "worker.py",
    "run.py",
    "start.py",
    "serve.py",
    "bot.py",
    "consumer.py",
    "daemon.py",
    "__main__.py",
];

/// A Python folder's entry point when it has none of the usual names:
/// `worker/worker.py`, then the names above, then its only `.py` file
/// (tests, setup.py and conftest.py aside). The file and why it was chosen.
fn guess_entry(dir: &Path, folder: &str) -> Option<(String, String)> {
    let own = format!("{folder}.py");
    if dir.join(&own).is_file() {
        return Some((own, "named like its folder".into()));
    }
    if let Some(f) = ENTRY_NAMES.iter().find(|f| dir.join(f).is_file()) {
        return Some((f.to_string(), "a usual name for an entry point".into()));
    }
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| {
            n.ends_with(".py")
                && !n.starts_with("test")
                && !n.ends_with("_test.py")
                && !matches!(n.as_str(), "setup.py" | "conftest.py" | "__init__.py")
        })
        .collect();
    files.sort();
    match files.as_slice() {
        [only] => Some((only.clone(), "the only .py file".into())),
        _ => None,
    }
}

/// A server whose files name no port: `auto` when it reads `PORT`, else
/// the usual port of its kind, marked as a guess.
fn guess_port(app: &mut App, usual: u16, why: &str) {
    if app.port_from_env {
        app.auto_port = true;
    } else {
        app.port = Some((usual, format!("guess: {why}")));
    }
}

/// Whether the code reads its port from the `PORT` variable.
fn reads_port_env(code: &str) -> bool {
    [
        "env.PORT",
        "env[\"PORT\"]",
        "env['PORT']",
        "environ[\"PORT\"]",
        "environ['PORT']",
        "environ.get(\"PORT\"",
        "environ.get('PORT'",
        "getenv(\"PORT\"",
        "getenv('PORT'",
    ]
    .iter()
    .any(|m| code.contains(m))
}

fn framework_or(framework: &str) -> &str {
    if framework.is_empty() {
        "the usual"
    } else {
        framework
    }
}

/// `name = "pkg.module:func"` under `[project.scripts]`: the script's name.
fn project_script(pyproject: &str) -> Option<String> {
    let doc: toml::Table = pyproject.parse().ok()?;
    let scripts = doc.get("project")?.get("scripts")?.as_table()?;
    scripts.keys().next().cloned()
}

/// `X = Something(`: the variable's name.
fn assigned_from(code: &str, call: &str) -> Option<String> {
    code.lines().find_map(|l| {
        let (lhs, rhs) = l.split_once('=')?;
        let var = lhs.trim();
        (rhs.trim_start().starts_with(call) && valid_ident(var)).then(|| var.to_string())
    })
}

fn valid_ident(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

pub fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && !s.starts_with('.')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// `PORT=4000` in a command line.
fn port_assignment(text: &str) -> Option<u16> {
    number_after(text, "PORT=")
}

/// A default port in code: `PORT", 5001`, `PORT || 3000`, `port=8000`,
/// `.listen(3000`.
pub fn port_in_code(code: &str) -> Option<u16> {
    for marker in [
        "\"PORT\", \"",
        "'PORT', '",
        "\"PORT\", ",
        "'PORT', ",
        "PORT || ",
        "PORT ?? ",
        "port=",
        "port = ",
        ".listen(",
    ] {
        if let Some(p) = number_after(code, marker) {
            return Some(p);
        }
    }
    None
}

fn number_after(text: &str, marker: &str) -> Option<u16> {
    text.match_indices(marker).find_map(|(i, m)| {
        let digits: String = text[i + m.len()..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok().filter(|&p| p >= 1024)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_in_code_and_scripts() {
        assert_eq!(
            port_in_code("port = int(os.environ.get(\"PORT\", \"5001\"))"),
            Some(5001)
        );
        assert_eq!(
            port_in_code("const port = process.env.PORT || 3000;"),
            Some(3000)
        );
        assert_eq!(port_in_code("app.listen(4000)"), Some(4000));
        assert_eq!(port_in_code("x = 1"), None);
        assert_eq!(port_assignment("PORT=4100 node server.js"), Some(4100));
    }

    fn python_command(files: &[(&str, &str)]) -> String {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        python(dir.path(), "svc").unwrap().command
    }

    #[test]
    fn python_commands_follow_the_framework() {
        assert_eq!(
            python_command(&[
                ("requirements.txt", "fastapi==0.110\nuvicorn[standard]\n"),
                ("main.py", "from fastapi import FastAPI\napi = FastAPI()\n"),
            ]),
            "python -m uvicorn main:api --host 127.0.0.1 --port ${PORT}"
        );
        assert_eq!(
            python_command(&[
                ("requirements.txt", "Flask>=3\n"),
                ("app.py", "from flask import Flask\napp = Flask(__name__)\n"),
            ]),
            "python -m flask --app app run --host 127.0.0.1 --port ${PORT}"
        );
        assert_eq!(
            python_command(&[
                ("requirements.txt", "flask\ngunicorn\n"),
                (
                    "app.py",
                    "from flask import Flask\nserver = Flask(__name__)\n"
                ),
            ]),
            "gunicorn -b 127.0.0.1:${PORT} app:server"
        );
        assert_eq!(
            python_command(&[("requirements.txt", "Django>=5\n"), ("manage.py", "")]),
            "python manage.py runserver 127.0.0.1:${PORT}"
        );
        assert_eq!(
            python_command(&[
                ("requirements.txt", "fastapi\nuvicorn\n"),
                (
                    "main.py",
                    "import uvicorn\nif __name__ == \"__main__\":\n    uvicorn.run(app)\n"
                ),
            ]),
            "python main.py"
        );
    }

    #[test]
    fn a_worker_folder_runs_its_worker() {
        let dir = tempfile::tempdir().unwrap();
        let worker = dir.path().join("worker");
        std::fs::create_dir(&worker).unwrap();
        std::fs::write(worker.join("requirements.txt"), "redis\n").unwrap();
        std::fs::write(worker.join("worker.py"), "print('work')\n").unwrap();
        std::fs::write(worker.join("tasks.py"), "").unwrap();
        let app = python(&worker, "worker").unwrap();
        assert_eq!(app.command, "python worker.py");
        assert!(app.command_guessed && app.command_from.contains("named like its folder"));

        let jobs = dir.path().join("jobs");
        std::fs::create_dir(&jobs).unwrap();
        std::fs::write(jobs.join("requirements.txt"), "").unwrap();
        std::fs::write(jobs.join("process_queue.py"), "").unwrap();
        std::fs::write(jobs.join("test_queue.py"), "").unwrap();
        assert_eq!(
            python(&jobs, "jobs").unwrap().command,
            "python process_queue.py"
        );

        std::fs::write(jobs.join("other.py"), "").unwrap();
        assert!(python(&jobs, "jobs").is_err(), "two candidates: no guess");
    }

    #[test]
    fn the_app_variable() {
        assert_eq!(
            assigned_from("api = FastAPI(title='x')", "FastAPI(").as_deref(),
            Some("api")
        );
    }
}

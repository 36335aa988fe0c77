//! `.env` files: `KEY=VALUE` lines read for `${VAR}` expansion (the `.env`
//! beside services.toml, as docker compose reads it, or `--env-file`) and for
//! a service's `env_file`.

use std::path::{Path, PathBuf};

/// `--env-file` travels to the background supervisor through these.
pub const ENV_FILE_VAR: &str = "FPCTL_ENV_FILE";
pub const NO_DOTENV_VAR: &str = "FPCTL_NO_DOTENV";
pub const FILE_NAME: &str = ".env";

/// Record the command line's choice in this process's environment, so that
/// every later load (and the supervisor `start` spawns) makes the same one.
pub fn export_choice(file: Option<&Path>, off: bool) {
    // Runs first thing in `main`'s thread, before any other thread exists.
    if off {
        std::env::set_var(NO_DOTENV_VAR, "1");
    }
    if let Some(file) = file {
        let absolute = std::env::current_dir()
            .map(|cwd| cwd.join(file))
            .unwrap_or_else(|_| file.to_path_buf());
        std::env::set_var(ENV_FILE_VAR, absolute);
    }
}

/// The variables for expansion in a project rooted at `root`: the chosen
/// env file, or `.env` beside services.toml when there is one.
pub fn load(root: &Path) -> Result<Vec<(String, String)>, (PathBuf, DotenvError)> {
    let off = std::env::var(NO_DOTENV_VAR).is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"));
    if off {
        return Ok(Vec::new());
    }
    let path = match std::env::var_os(ENV_FILE_VAR).filter(|p| !p.is_empty()) {
        Some(p) => root.join(p),
        None => {
            let beside = root.join(FILE_NAME);
            if !beside.is_file() {
                return Ok(Vec::new());
            }
            beside
        }
    };
    read(&path).map_err(|e| (path, e))
}

/// Why an env file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum DotenvError {
    #[error("cannot read {}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("line {line} of {} is not KEY=VALUE", .path.display())]
    NotKeyValue { line: usize, path: PathBuf },
}

/// `KEY=VALUE` lines; `#` comments, blank lines and `export ` are allowed,
/// and matching quotes around a value are removed.
pub fn read(path: &Path) -> Result<Vec<(String, String)>, DotenvError> {
    let text = std::fs::read_to_string(path).map_err(|source| DotenvError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            return Err(DotenvError::NotKeyValue {
                line: n + 1,
                path: path.to_path_buf(),
            });
        };
        let v = v.trim();
        let v = [('"', '"'), ('\'', '\'')]
            .iter()
            .find_map(|(a, b)| v.strip_prefix(*a).and_then(|x| x.strip_suffix(*b)))
            .unwrap_or(v);
        out.push((k.trim().to_string(), v.to_string()));
    }
    Ok(out)
}

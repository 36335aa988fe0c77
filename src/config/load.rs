//! Finding and reading services.toml.

use std::path::{Path, PathBuf};

use super::{validate, Config, ConfigError, Diagnostic, Hosts};

pub const FILE_NAME: &str = "services.toml";

/// Walk up from `start` to the first folder holding services.toml.
pub fn discover(start: &Path) -> Result<PathBuf, ConfigError> {
    start
        .ancestors()
        .map(|dir| dir.join(FILE_NAME))
        .find(|p| p.is_file())
        .ok_or_else(|| ConfigError::NotFound {
            start: start.to_path_buf(),
            name: FILE_NAME,
        })
}

/// Load the given file, or discover one from the current directory.
pub fn load(explicit: Option<&Path>) -> Result<Config, ConfigError> {
    load_file(explicit, Hosts::Loopback, None)
}

/// The file as written, for an export: with `FPCTL_HOST_<NAME>` resolved as
/// `hosts` says, and without what a running stack overrides (`fpctl scale`
/// counts, `start --containers`), which must never leak into an export.
pub fn load_with(explicit: Option<&Path>, hosts: Hosts) -> Result<Config, ConfigError> {
    load_file(explicit, hosts, Some(Default::default()))
}

fn load_file(
    explicit: Option<&Path>,
    hosts: Hosts,
    overrides: Option<crate::scale::Overrides>,
) -> Result<Config, ConfigError> {
    let cwd = std::env::current_dir().map_err(|source| ConfigError::Read {
        path: PathBuf::from("."),
        source,
    })?;
    let path = match explicit {
        Some(p) => cwd.join(p),
        None => discover(&cwd)?,
    };
    let bytes = std::fs::read(&path).map_err(|source| ConfigError::Read {
        path: path.clone(),
        source,
    })?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let text = String::from_utf8_lossy(e.as_bytes()).into_owned();
            // The lossy text has the same bytes up to the first invalid one.
            return Err(ConfigError::Invalid {
                path,
                text,
                diagnostics: vec![Diagnostic::at(
                    valid..valid + 1,
                    "the file is not valid UTF-8 text",
                )],
            });
        }
    };
    load_text(&path, text, hosts, overrides)
}

/// Parse and validate `text` as if read from `path`.
pub fn load_str(path: &Path, text: String) -> Result<Config, ConfigError> {
    load_text(path, text, Hosts::Loopback, None)
}

/// `overrides`: `None` reads those of a running stack from `.fpctl/`.
fn load_text(
    path: &Path,
    text: String,
    hosts: Hosts,
    overrides: Option<crate::scale::Overrides>,
) -> Result<Config, ConfigError> {
    let root = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let dotenv = super::dotenv::load(&root).map_err(|(_, e)| ConfigError::EnvFile(e))?;
    let registry = crate::ports::Registry::open(&root);
    let overrides = overrides.unwrap_or_else(|| crate::scale::overrides(&root));
    match validate::validate(path, &root, &text, &dotenv, hosts, &registry, &overrides) {
        Ok(config) => {
            registry.remember(&config);
            Ok(config)
        }
        Err(diagnostics) => Err(ConfigError::Invalid {
            path: path.to_path_buf(),
            text,
            diagnostics,
        }),
    }
}

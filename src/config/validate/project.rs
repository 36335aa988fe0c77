//! `[project]`: names, logs, the environment every service gets, the API.

use std::path::PathBuf;

use toml::Spanned;

use super::values::valid_env_name;
use super::Validator;
use crate::config::{defaults, Project};

impl Validator<'_> {
    pub(super) fn project(
        &mut self,
        raw: Option<Spanned<crate::config::raw::RawProject>>,
    ) -> Project {
        let mut raw = raw.map(Spanned::into_inner);
        if let Some(p) = raw.as_mut() {
            // A bad name is reported once here, not once per service.
            for (key, value) in std::mem::take(&mut p.env) {
                if valid_env_name(key.get_ref()) {
                    self.project_env.push((key, value));
                } else {
                    let message = format!(
                        "invalid environment variable name {:?} in [project] env",
                        key.get_ref()
                    );
                    self.error(key.span(), message);
                }
            }
        }
        let name = match raw.as_ref().and_then(|p| p.name.as_ref()) {
            Some(n) if n.get_ref().trim().is_empty() => {
                self.error(n.span(), "project name must not be empty");
                String::new()
            }
            Some(n) => n.get_ref().clone(),
            None => self
                .root
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_else(|| "fpctl".into()),
        };
        let log_dir = match raw.as_ref().and_then(|p| p.log_dir.as_ref()) {
            Some(d) if d.get_ref().trim().is_empty() => {
                self.error(d.span(), "log_dir must not be empty");
                PathBuf::new()
            }
            Some(d) => {
                let dir = self.root.join(d.get_ref());
                if let Some(problem) = crate::state::log_dir_problem(&dir) {
                    self.error(d.span(), problem);
                }
                dir
            }
            None => self.root.join(defaults::LOG_DIR),
        };
        let max_size = raw
            .as_ref()
            .and_then(|p| p.log_max_size.as_ref())
            .map(|v| self.size(v, "log_max_size", "the project"));
        let keep = raw
            .as_ref()
            .and_then(|p| p.log_keep.as_ref())
            .map(|k| self.count(k, "log_keep", "the project", 1));
        if keep.is_some() && max_size.is_none() {
            let span = raw
                .as_ref()
                .and_then(|p| p.log_keep.as_ref())
                .map(|k| k.span())
                .unwrap_or(0..0);
            self.error(
                span,
                "log_keep needs log_max_size (rotation happens only with a size limit)",
            );
        }
        let log_rotation = max_size.map(|max_size| crate::config::LogRotation {
            max_size,
            keep: keep.unwrap_or(defaults::LOG_KEEP),
        });
        let max_parallel_setup = raw
            .as_ref()
            .and_then(|p| p.max_parallel_setup.as_ref())
            .map(|v| self.count(v, "max_parallel_setup", "the project", 1) as usize)
            .unwrap_or_else(defaults::parallel_setups);
        let api = self.api(raw.as_ref());
        let log_timestamps = raw.as_ref().and_then(|p| p.log_timestamps).unwrap_or(false);
        let container_runtime = match raw.as_ref().and_then(|p| p.container_runtime) {
            None | Some(crate::config::raw::RawRuntime::Auto) => {
                crate::config::ContainerRuntime::Auto
            }
            Some(crate::config::raw::RawRuntime::Docker) => crate::config::ContainerRuntime::Docker,
            Some(crate::config::raw::RawRuntime::Podman) => crate::config::ContainerRuntime::Podman,
        };
        Project {
            name,
            log_dir,
            log_rotation,
            log_timestamps,
            max_parallel_setup,
            api,
            container_runtime,
        }
    }

    /// `api`, `api_token`, `api_read_only`. A bind beyond loopback needs a
    /// configured token: a generated one would protect nothing remote users
    /// could be told about safely.
    pub(super) fn api(
        &mut self,
        raw: Option<&crate::config::raw::RawProject>,
    ) -> crate::config::ApiSettings {
        let Some(raw) = raw else {
            return crate::config::ApiSettings::default();
        };
        let token = raw.api_token.as_ref().and_then(|t| {
            let lookup = |k: &str| std::env::var(k).ok();
            match crate::config::expand(t.get_ref(), &lookup) {
                Ok(v) if v.len() >= 16 => Some(v),
                Ok(_) => {
                    self.error(t.span(), "api_token must be at least 16 characters");
                    None
                }
                Err(e) => {
                    self.error(t.span(), format!("api_token: {e}"));
                    None
                }
            }
        });
        let listen = raw.api.as_ref().and_then(|a| {
            let text = a.get_ref().trim();
            let parsed = text
                .parse::<std::net::SocketAddr>()
                .or_else(|_| text.replacen("localhost", "127.0.0.1", 1).parse());
            match parsed {
                Err(_) => {
                    self.error(
                        a.span(),
                        format!("api: \"{text}\" is not an address:port (write it like \"127.0.0.1:7070\")"),
                    );
                    None
                }
                Ok(addr) if !addr.ip().is_loopback() && token.is_none() => {
                    self.error(
                        a.span(),
                        format!("api: {addr} is not a loopback address; listening there needs api_token in [project] (or bind 127.0.0.1)"),
                    );
                    None
                }
                Ok(addr) => Some(addr),
            }
        });
        crate::config::ApiSettings {
            listen,
            token,
            read_only: raw.api_read_only.unwrap_or(false),
        }
    }
}

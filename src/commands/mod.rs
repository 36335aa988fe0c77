//! One function per CLI command. Each loads what it needs, does its job
//! through the modules that own the work, and returns an [`Outcome`].

use std::path::Path;

use crate::config::{self, Config};
use crate::graph;
use crate::output;
use crate::{Outcome, Result};

pub fn load(file: Option<&Path>) -> Result<Config> {
    let config = config::load(file)?;
    socket_dir_checked(&config)?;
    Ok(config)
}

/// A socket folder that someone else controls is refused before any
/// command can take what is there for the supervisor.
fn socket_dir_checked(config: &Config) -> Result<()> {
    crate::state::check_socket_dir(&crate::state::socket_path(config))
        .map_err(|e| crate::Error::Other(e.to_string()))
}

/// For commands that act on a running stack (`stop`, `check`, `logs`, …):
/// services.toml, or, while it has an error and a supervisor runs, the
/// config that supervisor runs, with a warning; the bool says which. A
/// broken file must never leave a running stack out of reach. With no
/// supervisor, the file's error (exit 2).
pub fn load_running(file: Option<&Path>) -> Result<(Config, bool)> {
    let err = match config::load(file) {
        Ok(c) => {
            socket_dir_checked(&c)?;
            return Ok((c, false));
        }
        Err(e) => e,
    };
    let config::ConfigError::Invalid {
        path,
        text,
        diagnostics,
    } = &err
    else {
        return Err(err.into());
    };
    let Some(running) = running_config(path) else {
        return Err(err.into());
    };
    let (line, col) = diagnostics
        .first()
        .and_then(|d| d.span.as_ref())
        .map(|span| config::line_col(text, span.start))
        .unwrap_or((1, 1));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string());
    output::print_warning(&format!(
        "{name} has an error ({line}:{col}); acting on the running stack as last loaded \
         (`fpctl validate` shows the error)"
    ));
    Ok((running, true))
}

/// The config the project's supervisor runs, if one answers.
fn running_config(path: &Path) -> Option<Config> {
    use crate::control::{Client, Request, Response};
    let mut client = Client::connect(&crate::state::socket_path_in(path.parent()?))?;
    client.set_timeout(Some(std::time::Duration::from_secs(5)));
    match client.request(Request::Config, |_| {}) {
        Ok(Response::Config { text, .. }) => config::load_str(path, text).ok(),
        _ => None,
    }
}

pub fn validate(file: Option<&Path>) -> Result<Outcome> {
    let config = load(file)?;
    println!("{}", output::validate_summary(&config));
    for conflict in config.port_env_conflicts() {
        output::print_warning(&format!("{}: {conflict}", config.path.display()));
    }
    for warning in config.bridge_reach_warnings() {
        output::print_warning(&format!("{}: {warning}", config.path.display()));
    }
    Ok(Outcome::Success)
}

pub fn graph(file: Option<&Path>, dot: bool) -> Result<Outcome> {
    let config = load(file)?;
    let all = (0..config.services.len()).collect();
    let plan = graph::plan(&config, &all);
    let text = if dot {
        output::graph_dot(&config, &plan)
    } else {
        output::graph_text(&config, &plan)
    };
    print!("{text}");
    Ok(Outcome::Success)
}

mod analyze;
mod check;
mod dashboard;
mod events;
mod exec;
mod generate;
mod lifecycle;
mod logs;
mod ports;
mod probe;
mod scale;
mod tools;

pub use crate::cli::parse_since;
pub use analyze::analyze;
pub use check::{check, no_live_run};
pub use dashboard::dashboard;
pub use events::events;
pub use exec::exec;
pub use generate::{import, init};
pub use lifecycle::{
    connect_or_spawn, reload, restart, start, stop, supervise, supervisor_if_needed, up,
};
pub use logs::{logs, Options as LogsOptions};
pub use ports::ports;
pub use probe::probe;
pub use scale::scale;
pub use tools::{add_habit_tip, completions, man, schema, COMPLETE_VAR};

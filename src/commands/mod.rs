//! One function per CLI command. Each loads what it needs, does its job
//! through the modules that own the work, and returns an [`Outcome`].

use std::path::Path;

use crate::config::{self, Config};
use crate::graph;
use crate::output;
use crate::{Outcome, Result};

pub fn load(file: Option<&Path>) -> Result<Config> {
    let config = config::load(file)?;
    // A socket folder that someone else controls is refused before any
    // command can take what is there for the supervisor.
    crate::state::check_socket_dir(&crate::state::socket_path(&config))
        .map_err(|e| crate::Error::Other(e.to_string()))?;
    Ok(config)
}

pub fn validate(file: Option<&Path>) -> Result<Outcome> {
    let config = load(file)?;
    println!("{}", output::validate_summary(&config));
    for conflict in config.port_env_conflicts() {
        output::print_warning(&format!("{}: {conflict}", config.path.display()));
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

pub use check::check;
pub use dashboard::dashboard;
pub use events::events;
pub use exec::exec;
pub use generate::{import, init};
pub use lifecycle::{reload, restart, start, stop, supervise, supervisor_if_needed, up};
pub use logs::{logs, parse_since, Options as LogsOptions};
pub use ports::ports;
pub use probe::probe;
pub use scale::scale;
pub use tools::{completion_names, completions, man, schema, COMPLETE_VAR};

//! fpctl: start, watch and stop a stack of local services from one
//! services.toml. `run` dispatches a parsed command line; every command
//! returns an [`Outcome`] or an [`Error`], and `main` maps them to exit codes.

pub mod cli;
pub mod commands;
pub mod config;
pub mod error;
pub mod graph;
pub mod output;

pub use error::{Error, Outcome, Result};

use cli::{Cli, Command};

pub fn run(cli: Cli) -> Result<Outcome> {
    output::init_color(cli.no_color);
    let file = cli.file.as_deref();
    match cli.command {
        Command::Validate => commands::validate(file),
        Command::Graph { dot } => commands::graph(file, dot),
        _ => Err(Error::Usage("this command is not available yet".into())),
    }
}

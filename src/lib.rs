//! fpctl: start, watch and stop a stack of local services from one
//! services.toml. `run` dispatches a parsed command line; every command
//! returns an [`Outcome`] or an [`Error`], and `main` maps them to exit codes.

// Every `print!`, `println!`, `eprint!` and `eprintln!` of the crate goes
// through these: a reader that went away (`fpctl stop | head -1`) ends the
// output quietly instead of panicking, and the command's work and exit code
// stay its own. They shadow the standard macros for every module below.
macro_rules! print {
    ($($arg:tt)*) => { $crate::stdio::write_out(format_args!($($arg)*)) };
}
macro_rules! println {
    () => { $crate::stdio::write_out(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::stdio::write_out(format_args!("{}\n", format_args!($($arg)*))) };
}
#[allow(unused_macros)]
macro_rules! eprint {
    ($($arg:tt)*) => { $crate::stdio::write_err(format_args!($($arg)*)) };
}
macro_rules! eprintln {
    () => { $crate::stdio::write_err(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::stdio::write_err(format_args!("{}\n", format_args!($($arg)*))) };
}

pub mod api;
pub mod cli;
pub mod commands;
pub mod config;
pub mod container;
pub mod control;
pub mod discover;
pub mod draft;
pub mod env_block;
pub mod error;
pub mod events;
pub mod export;
pub mod graph;
pub mod health;
pub mod human;
pub mod import;
pub mod logger;
pub mod mcp;
pub mod metrics;
pub mod output;
pub mod ports;
pub mod process;
pub mod progress;
pub mod scale;
pub mod service_log;
pub mod setup;
pub mod state;
pub mod status;
pub mod stdio;
pub mod supervisor;
pub mod top;

pub use error::{Error, Outcome, Result};

use cli::{Cli, Command};

pub fn run(cli: Cli) -> Result<Outcome> {
    let forced = match cli.color {
        _ if cli.no_color => Some(false),
        cli::ColorChoice::Always => Some(true),
        cli::ColorChoice::Never => Some(false),
        cli::ColorChoice::Auto => None,
    };
    output::init_color(forced);
    config::dotenv::export_choice(cli.env_file.as_deref(), cli.no_dotenv);
    let file = cli.file.as_deref();
    match cli.command {
        Command::Validate => commands::validate(file),
        Command::Init {
            dir,
            dry_run,
            force,
        } => commands::init(dir.as_deref(), dry_run, force),
        Command::Import {
            file,
            output,
            dry_run,
            force,
        } => commands::import(&file, output.as_deref(), dry_run, force),
        Command::Graph { dot } => commands::graph(file, dot),
        Command::Start {
            services,
            profiles,
            replace,
            containers,
        } => commands::start(file, services, profiles, replace, containers),
        Command::Up {
            services,
            profiles,
            detach: true,
            containers,
        } => commands::start(file, services, profiles, false, containers),
        Command::Up {
            services,
            profiles,
            detach: false,
            containers,
        } => commands::up(file, services, profiles, containers),
        Command::Check {
            services,
            json,
            wide,
            wait,
            profiles,
        } => commands::check(file, services, json, wide, wait, profiles),
        Command::Top { start, once } => top::top(file, start, once),
        Command::Analyze { json } => commands::analyze(file, json),
        Command::Dashboard { no_open } => commands::dashboard(file, no_open),
        Command::Mcp { read_only } => mcp::serve_stdio(file, read_only),
        Command::Restart { services } => commands::restart(file, services),
        Command::Stop { services } => commands::stop(file, services),
        Command::Reload { dry_run } => commands::reload(file, dry_run),
        Command::Scale { counts } => commands::scale(file, counts),
        Command::Logs {
            services,
            follow,
            lines,
            timestamps,
            since,
        } => commands::logs(
            file,
            &services,
            commands::LogsOptions {
                follow,
                lines,
                timestamps,
                since,
            },
        ),
        Command::Events {
            service,
            json,
            follow,
            lines,
        } => commands::events(file, service.as_deref(), json, follow, lines),
        Command::Ports { json } => commands::ports(file, json),
        Command::Export {
            target,
            services,
            output,
            profiles,
            dockerfiles,
            publish_all,
        } => export::export(
            file,
            export::Options {
                target,
                services,
                profiles,
                output,
                dockerfiles,
                publish_all,
            },
        ),
        Command::Probe { service, wait } => commands::probe(file, &service, wait),
        Command::Exec { service, command } => commands::exec(file, &service, &command),
        Command::Completions { shell } => commands::completions(shell),
        Command::Man => commands::man(),
        Command::Schema => commands::schema(),
        Command::Supervise => commands::supervise(file),
        Command::Log {
            path,
            max_size,
            keep,
            timestamps,
        } => {
            let rotation = max_size
                .zip(keep)
                .map(|(max_size, keep)| config::LogRotation { max_size, keep });
            let options = logger::Options {
                rotation,
                timestamps,
            };
            logger::run(&path, options).map_err(|e| Error::other(path.display(), e))?;
            Ok(Outcome::Success)
        }
    }
}

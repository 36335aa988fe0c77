//! Command-line definitions only (clap derive). No behaviour lives here.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use clap_complete::engine::ArgValueCandidates;

#[derive(Debug, Parser)]
#[command(
    name = "fpctl",
    version,
    about = "Start, watch and stop a stack of local services from one services.toml"
)]
pub struct Cli {
    /// The services.toml to use (default: found by walking up from the current
    /// folder). Give it before the command: `fpctl -f x.toml check`
    #[arg(short = 'f', long = "file", env = "FPCTL_FILE")]
    pub file: Option<PathBuf>,

    /// Never colour the output (the same as --color=never)
    #[arg(long, global = true)]
    pub no_color: bool,

    /// Colour: auto (on a terminal, unless NO_COLOR is set; CLICOLOR_FORCE or
    /// FORCE_COLOR force it on), always or never
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto")]
    pub color: ColorChoice,

    /// Read ${VAR} values from this file instead of the .env beside services.toml
    #[arg(long, global = true, value_name = "PATH", env = "FPCTL_ENV_FILE")]
    pub env_file: Option<PathBuf>,

    /// Do not read the .env beside services.toml
    #[arg(long, global = true, env = "FPCTL_NO_DOTENV")]
    pub no_dotenv: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start services (default: all) and their dependencies under a background supervisor
    Start {
        #[arg(add = names(Names::Services))]
        services: Vec<String>,
        /// Also start services of this profile (repeatable, or comma-separated;
        /// also: FPCTL_PROFILES)
        #[arg(long = "profile", short = 'p', env = "FPCTL_PROFILES", value_delimiter = ',', add = names(Names::Profiles))]
        profiles: Vec<String>,
        /// Stop a stale, unhealthy copy of a service's own command that holds
        /// its port (never a foreign process), then start the service
        #[arg(long)]
        replace: bool,
        /// Run every service that has a container table in its container
        /// (building its image where it has `build`), until `fpctl stop`
        #[arg(long)]
        containers: bool,
    },
    /// Like start, in the foreground, with every service's log interleaved; Ctrl-C stops everything
    Up {
        #[arg(add = names(Names::Services))]
        services: Vec<String>,
        #[arg(long = "profile", short = 'p', env = "FPCTL_PROFILES", value_delimiter = ',', add = names(Names::Profiles))]
        profiles: Vec<String>,
        /// In the background: the same as `fpctl start` (as `docker compose up -d`)
        #[arg(short = 'd', long)]
        detach: bool,
        /// Run every service that has a container table in its container
        #[arg(long)]
        containers: bool,
    },
    /// Show the status of the stack; exit 1 when anything is not online
    #[command(visible_aliases = ["status", "ps"])]
    Check {
        #[arg(add = names(Names::Services))]
        services: Vec<String>,
        /// Print one JSON object instead of the table
        #[arg(long)]
        json: bool,
        /// Also show memory, CPU and every restart, asked for or not
        #[arg(long, conflicts_with = "json")]
        wide: bool,
        /// Wait until everything is online (default up to 60s), then report
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "60s", value_parser = parse_duration, value_name = "DUR")]
        wait: Option<Duration>,
        #[arg(long = "profile", short = 'p', env = "FPCTL_PROFILES", value_delimiter = ',', add = names(Names::Profiles))]
        profiles: Vec<String>,
    },
    /// The critical chain of the last start: when each service was ready, its own start-up time, and the dependencies that bounded the total
    Analyze {
        /// Print one JSON object instead of the chain and table
        #[arg(long)]
        json: bool,
    },
    /// A live view of the running stack in the terminal, with actions (off a
    /// terminal: the `check --wide` table every 2s)
    Top {
        /// Start the stack first, as `fpctl start` does
        #[arg(long)]
        start: bool,
        /// Print the table once and exit (0 when everything is online, as `check`)
        #[arg(long)]
        once: bool,
    },
    /// Stop and start services again (default: all), and wait until they are online; a scheduled job named runs now
    Restart {
        #[arg(add = names(Names::Services))]
        services: Vec<String>,
    },
    /// Run N instances of a service with replicas (NAME=N…), live
    Scale {
        /// NAME=N: the service and its new instance count
        #[arg(required = true, value_name = "NAME=N")]
        counts: Vec<String>,
    },
    /// Apply the edits to services.toml to the running stack (what changed restarts)
    Reload {
        /// Print what would change, and change nothing
        #[arg(long)]
        dry_run: bool,
    },
    /// Stop services (dependents first); with no argument, everything and the supervisor
    #[command(visible_alias = "down")]
    Stop {
        #[arg(add = names(Names::Services))]
        services: Vec<String>,
    },
    /// Print a service's log, or several merged in time order (default: all)
    Logs {
        #[arg(add = names(Names::Services))]
        services: Vec<String>,
        /// Keep printing new lines
        #[arg(short, long)]
        follow: bool,
        /// How many lines from the end of each log [default: 100, or all
        /// with --since]
        #[arg(short = 'n', long = "lines", visible_alias = "tail", value_name = "N")]
        lines: Option<usize>,
        /// Show the time each line was recorded (needs log_timestamps)
        #[arg(short = 't', long)]
        timestamps: bool,
        /// Only lines recorded since then: a duration ago (10m, 2h30m) or a
        /// time (2026-11-26T03:00:00Z)
        #[arg(long, value_name = "WHEN", value_parser = parse_since)]
        since: Option<std::time::SystemTime>,
    },
    /// Show the history of starts, exits, health changes and restarts
    Events {
        /// Only this service's events (a replicated service: all its instances')
        #[arg(add = names(Names::Services))]
        service: Option<String>,
        /// One JSON object per line
        #[arg(long)]
        json: bool,
        /// Keep printing new events
        #[arg(short, long)]
        follow: bool,
        /// How many events from the end
        #[arg(short = 'n', long = "lines", default_value_t = 50)]
        lines: usize,
    },
    /// Serve the web dashboard and HTTP API; print its URL and token
    Dashboard {
        /// Do not try to open a browser
        #[arg(long)]
        no_open: bool,
    },
    /// Serve MCP on stdin/stdout for coding agents, as a client of the
    /// supervisor (started in the background if none runs)
    Mcp {
        /// Offer only the tools that change nothing (no start, restart,
        /// stop or reload)
        #[arg(long)]
        read_only: bool,
    },
    /// Check services.toml and print a summary
    Validate,
    /// Write a services.toml for the services found under DIR (default: here)
    Init {
        dir: Option<PathBuf>,
        /// Print the file instead of writing it
        #[arg(long)]
        dry_run: bool,
        /// Replace an existing services.toml
        #[arg(long)]
        force: bool,
    },
    /// Convert a Procfile, docker compose file or process-compose file into a services.toml
    Import {
        file: PathBuf,
        /// Where to write it
        #[arg(
            short = 'o',
            long = "output",
            value_name = "FILE",
            default_value = "services.toml"
        )]
        output: Option<PathBuf>,
        /// Print the file instead of writing it
        #[arg(long)]
        dry_run: bool,
        /// Replace an existing file
        #[arg(long)]
        force: bool,
    },
    /// Show tiers, start levels and dependencies
    Graph {
        /// Print Graphviz dot instead of text
        #[arg(long)]
        dot: bool,
    },
    /// Show every port, its service and tier range, and who holds it now; exit 1 on a conflict
    Ports {
        /// Print one JSON object instead of the table
        #[arg(long)]
        json: bool,
    },
    /// Write the stack as a docker compose file, Kubernetes manifests or systemd units
    Export {
        #[arg(value_enum)]
        target: crate::export::Target,
        /// Export these services and their dependencies (default: all)
        #[arg(add = names(Names::Services))]
        services: Vec<String>,
        /// A folder (or, for compose and kubernetes, a .yaml file); default: stdout
        #[arg(short = 'o', long = "output", value_name = "DIR|FILE")]
        output: Option<PathBuf>,
        /// Export the services of this profile too (repeatable)
        #[arg(long = "profile", short = 'p', env = "FPCTL_PROFILES", value_delimiter = ',', add = names(Names::Profiles))]
        profiles: Vec<String>,
        /// Write a minimal Dockerfile for venv/npm services that have none
        #[arg(long)]
        dockerfiles: bool,
        /// Compose: publish ports on every host interface (default: on
        /// 127.0.0.1 only, as fpctl's services listen)
        #[arg(long)]
        publish_all: bool,
    },
    /// Run one service's health check; exit 0 when it passes
    Probe {
        #[arg(add = names(Names::Services))]
        service: String,
        /// Keep probing until it passes (default up to 60s)
        #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "60s", value_parser = parse_duration, value_name = "DUR")]
        wait: Option<Duration>,
    },
    /// Run a command in a service's environment (its dir, env, venv/npm PATH,
    /// variables), as fpctl would launch the service; exits with its code
    Exec {
        #[arg(add = names(Names::Services))]
        service: String,
        /// The command and its arguments, after `--`
        #[arg(
            required = true,
            trailing_var_arg = true,
            allow_hyphen_values = true,
            value_name = "CMD"
        )]
        command: Vec<String>,
    },
    /// Print a shell completion script (names of services and profiles
    /// complete from the services.toml in scope): `source <(fpctl completions bash)`
    Completions {
        #[arg(value_enum)]
        shell: Shell,
    },
    /// Print the man page (roff) of fpctl
    Man,
    /// Print the JSON Schema of services.toml (for editors: taplo, Even Better TOML)
    Schema,
    /// Run the supervisor in this process (used by `start`)
    #[command(name = "__supervise", hide = true)]
    Supervise,
    /// Copy stdin into a log file with rotation or times (used by the
    /// supervisor)
    #[command(name = "__log", hide = true)]
    Log {
        path: PathBuf,
        #[arg(long, requires = "keep")]
        max_size: Option<u64>,
        #[arg(long, requires = "max_size")]
        keep: Option<u32>,
        /// Put the time in front of every line
        #[arg(long)]
        timestamps: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    Bash,
    Zsh,
    Fish,
    Powershell,
    Elvish,
}

/// What a positional argument names, for dynamic completion.
#[derive(Debug, Clone, Copy)]
pub enum Names {
    Services,
    Profiles,
}

fn names(kind: Names) -> ArgValueCandidates {
    ArgValueCandidates::new(move || completion_names(kind))
}

/// A command-line value that does not parse.
#[derive(Debug, thiserror::Error)]
pub enum BadValue {
    #[error("{0} (write it like \"500ms\", \"2s\" or \"1m\")")]
    Duration(#[from] humantime::DurationError),
    #[error("\"{0}\" reaches back before 1970")]
    BeforeEpoch(String),
    #[error("\"{0}\" is neither a duration (10m, 2h30m) nor a time (2026-11-26T03:00:00Z)")]
    NotAWhen(String),
}

pub fn parse_duration(s: &str) -> Result<Duration, BadValue> {
    Ok(humantime::parse_duration(s)?)
}

/// `--since`: a duration back from now (`10m`, `2h30m`) or a time (RFC
/// 3339, `2026-11-26T03:00:00Z`).
pub fn parse_since(s: &str) -> Result<std::time::SystemTime, BadValue> {
    if let Ok(ago) = humantime::parse_duration(s) {
        return std::time::SystemTime::now()
            .checked_sub(ago)
            .ok_or_else(|| BadValue::BeforeEpoch(s.to_string()));
    }
    humantime::parse_rfc3339_weak(s).map_err(|_| BadValue::NotAWhen(s.to_string()))
}

/// Names from the services.toml in scope (found from the current folder, or
/// FPCTL_FILE); none when there is no valid one.
pub fn completion_names(kind: Names) -> Vec<clap_complete::engine::CompletionCandidate> {
    let file = std::env::var_os("FPCTL_FILE").map(PathBuf::from);
    let Ok(config) = crate::config::load(file.as_deref()) else {
        return Vec::new();
    };
    match kind {
        Names::Services => config
            .services
            .iter()
            .map(|s| {
                let tier = &config.tiers[s.tier].name;
                clap_complete::engine::CompletionCandidate::new(&s.name)
                    .help(Some(format!("tier {tier}").into()))
            })
            .collect(),
        Names::Profiles => {
            let mut profiles: Vec<&String> =
                config.services.iter().flat_map(|s| &s.profiles).collect();
            profiles.sort();
            profiles.dedup();
            profiles
                .into_iter()
                .map(clap_complete::engine::CompletionCandidate::new)
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}

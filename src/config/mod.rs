//! The services.toml model: what a stack is, once parsed and validated.
//!
//! `load` finds and reads the file, `raw` mirrors it with spans, `validate`
//! turns it into the resolved [`Config`] below (defaults applied, variables
//! expanded, paths absolute) or a [`ConfigError`] listing every problem with
//! its file:line:column. Nothing here touches processes.

mod diag;
pub mod dotenv;
mod expand;
mod load;
mod raw;
mod validate;
mod words;

use std::path::PathBuf;
use std::time::Duration;

pub use diag::{line_col, ConfigError, Diagnostic};
pub use dotenv::{read as read_env_file, DotenvError};
pub use expand::{expand, ExpandError};
pub use load::{discover, load, load_str, load_with, FILE_NAME};
pub use raw::json_schema;
pub use validate::suggest;

/// Defaults, documented once; the README's reference table follows these.
pub mod defaults {
    use std::time::Duration;

    pub const LOG_DIR: &str = ".fpctl/logs";
    pub const MAX_RESTARTS: u32 = 5;
    pub const STOP_SIGNAL: &str = "SIGTERM";
    pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
    /// Between probes of an online service (a starting one is probed
    /// much more often): a crash is seen through the process's exit, so
    /// probes only catch a service that hangs, after about
    /// `interval * retries + timeout`.
    pub const HEALTH_INTERVAL: Duration = Duration::from_secs(10);
    pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(1);
    pub const START_TIMEOUT: Duration = Duration::from_secs(60);
    pub const HEALTH_RETRIES: u32 = 3;
    pub const TIER_NAME: &str = "default";
    /// Rotated log files kept beside the live one, when rotation is on.
    pub const LOG_KEEP: u32 = 3;
    /// Quiet time after a watched file changes before the restart.
    pub const WATCH_DEBOUNCE: Duration = Duration::from_millis(300);
    /// Setups at once when the file does not say: the number of cores, at
    /// least 4. Installs mostly wait on the network and the disk, so a
    /// 2-core machine still runs three of them side by side.
    pub const MIN_PARALLEL_SETUPS: usize = 4;
    /// The exit codes that mean success, unless `success_exit_codes` says.
    pub const SUCCESS_EXIT_CODES: [i32; 1] = [0];

    pub fn parallel_setups() -> usize {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .max(MIN_PARALLEL_SETUPS)
    }
}

#[derive(Debug, Clone)]
pub struct Config {
    /// The services.toml file itself.
    pub path: PathBuf,
    /// Its folder: relative paths and `.fpctl/` live here.
    pub root: PathBuf,
    pub project: Project,
    pub tiers: Vec<Tier>,
    /// In file order.
    pub services: Vec<Service>,
}

#[derive(Debug, Clone)]
pub struct Project {
    pub name: String,
    pub log_dir: PathBuf,
    pub log_rotation: Option<LogRotation>,
    /// Record the time of every line of every service's log.
    pub log_timestamps: bool,
    /// How many setups may run at once (`max_parallel_setup`; default: the
    /// number of cores, at least 4).
    pub max_parallel_setup: usize,
    pub api: ApiSettings,
    /// `container_runtime`: which engine runs container services.
    pub container_runtime: ContainerRuntime,
}

/// `[project] container_runtime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ContainerRuntime {
    /// Whichever answers: Docker first, then Podman.
    #[default]
    Auto,
    Docker,
    Podman,
}

/// The HTTP API: where it listens (off when `None`, until `fpctl dashboard`
/// asks for it), its token when set in the file (else one is generated under
/// `.fpctl/`), and whether mutations are refused.
#[derive(Debug, Clone, Default)]
pub struct ApiSettings {
    pub listen: Option<std::net::SocketAddr>,
    pub token: Option<String>,
    pub read_only: bool,
}

/// Rotate a service's log once it reaches `max_size` bytes, keeping `keep`
/// older files (`NAME.log.1` is the newest).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogRotation {
    pub max_size: u64,
    pub keep: u32,
}

#[derive(Debug, Clone)]
pub struct Tier {
    pub name: String,
    pub title: Option<String>,
    /// The ports this tier's services may use (`[[tier]] ports`).
    pub ports: Option<PortRange>,
}

/// An inclusive range of TCP ports, written `"8000-8099"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn contains(&self, port: u16) -> bool {
        (self.first..=self.last).contains(&port)
    }

    pub fn iter(&self) -> impl Iterator<Item = u16> {
        self.first..=self.last
    }

    pub fn len(&self) -> usize {
        usize::from(self.last - self.first) + 1
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// Where `port = "auto"` comes from: the ports earlier runs chose, and what
/// holds a port now. The config stays free of I/O; `load` passes the real
/// registry (`crate::ports`).
pub trait PortBook {
    /// The port an earlier run chose for `service`.
    fn recorded(&self, service: &str) -> Option<u16>;
    /// Whether `port` may be given to `service`: nothing listens on it, or
    /// only that service itself.
    fn available(&self, port: u16, service: &str) -> bool;
}

/// A book with no records in which every port is available (for parsing
/// without a project folder).
pub struct NoPortBook;

impl PortBook for NoPortBook {
    fn recorded(&self, _: &str) -> Option<u16> {
        None
    }
    fn available(&self, _: u16, _: &str) -> bool {
        true
    }
}

#[derive(Debug, Clone)]
pub struct Service {
    pub name: String,
    /// Index into [`Config::tiers`].
    pub tier: usize,
    /// What to exec: program first. With `shell = true` this is `sh -c CMD`.
    pub argv: Vec<String>,
    pub dir: PathBuf,
    pub port: Option<u16>,
    /// The port was chosen from the tier's range (`port = "auto"`).
    pub port_auto: bool,
    /// `FPCTL_PORT_<NAME>` and `FPCTL_HOST_<NAME>` of every service with a
    /// port (shared by all).
    pub port_env: std::sync::Arc<crate::env_block::SharedEnv>,
    /// Extra environment, resolved: `PORT`, env_file, env.
    pub env: Vec<(String, String)>,
    /// The env_file files (absolute), in order.
    pub env_files: Vec<PathBuf>,
    /// The names written in the `env` table (their values are in `env`).
    pub env_keys: Vec<String>,
    /// Names of variables whose values must never be shown (env_file values,
    /// and names that look like secrets).
    pub secret_keys: Vec<String>,
    /// Values that must never be shown though they are not in `env`: those
    /// of `.env` variables whose names look like secrets.
    pub secret_values: std::sync::Arc<[String]>,
    /// Indices into [`Config::services`].
    pub depends_on: Vec<usize>,
    pub setup: Setup,
    pub health: Option<Health>,
    pub restart: RestartPolicy,
    pub max_restarts: u32,
    pub stop_signal: nix::sys::signal::Signal,
    pub stop_timeout: Duration,
    pub start_timeout: Duration,
    pub profiles: Vec<String>,
    pub oneshot: bool,
    /// Exit codes that mean success (`success_exit_codes`, default `[0]`):
    /// a oneshot that exits with one is completed, a long-running service
    /// stopped (restarted only under `restart = "always"`).
    pub success_exit_codes: Vec<i32>,
    pub disabled: bool,
    /// Restart when the service's process group uses more memory (bytes, RSS).
    pub max_memory: Option<u64>,
    /// The project's rotation, or this service's own.
    pub log_rotation: Option<LogRotation>,
    /// Whether each line of its log gets the time it was written (the
    /// project's `log_timestamps`, or this service's own).
    pub log_timestamps: bool,
    /// `[services.X.container]`, when given.
    pub container: Option<Container>,
    /// For an instance of a service with `replicas`: the service's name as
    /// written, and this instance's number (1-based).
    pub group: Option<(String, u32)>,
    /// Globs relative to `dir` whose changes restart the service; a
    /// leading `!` excludes.
    pub watch: Vec<String>,
    pub watch_debounce: Duration,
    /// Stop a stale, unhealthy copy of this service's own command that
    /// holds its port, instead of refusing to start.
    pub replace_stale: bool,
    /// When a oneshot runs on its own (`schedule`).
    pub schedule: Option<Schedule>,
}

/// `schedule = { ... }`: when a oneshot job runs, and what happens around
/// its runs. The supervisor's timer follows it (`supervisor/actor/schedule.rs`).
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub when: When,
    /// The zone `cron` is read in; `None`: the machine's local time.
    pub timezone: Option<String>,
    /// Run once as soon as the job is started by a plain `start`.
    pub run_on_start: bool,
    pub concurrency: Concurrency,
    /// One run at start when runs came due while no supervisor ran.
    pub catch_up: bool,
    /// A failed last run makes `check` fail.
    pub critical: bool,
}

/// The two ways to say when a job runs.
#[derive(Debug, Clone, PartialEq)]
pub enum When {
    /// A cron expression as written (5 fields, or 6 with seconds first),
    /// parsed.
    Cron {
        expr: String,
        cron: Box<croner::Cron>,
    },
    /// A fixed interval from the previous time the job came due.
    Every(Duration),
}

/// What a run that comes due while the previous one still runs does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// It is skipped (an event says so).
    Skip,
    /// It waits for the running one to end; at most one waits.
    Queue,
}

impl Schedule {
    /// The time zone `cron` is read in.
    pub fn zone(&self) -> jiff::tz::TimeZone {
        self.timezone
            .as_deref()
            .and_then(|name| jiff::tz::TimeZone::get(name).ok())
            .unwrap_or_else(jiff::tz::TimeZone::system)
    }

    /// The first time the job comes due after `after` (Unix seconds).
    /// `every` counts from `after`.
    pub fn next_after(&self, after: f64) -> Option<f64> {
        match &self.when {
            When::Every(d) => Some(after + d.as_secs_f64()),
            When::Cron { cron, .. } => {
                let ts = jiff::Timestamp::from_microsecond((after * 1e6) as i64).ok()?;
                let next = cron
                    .find_next_occurrence(&ts.to_zoned(self.zone()), false)
                    .ok()?;
                Some(next.timestamp().as_microsecond() as f64 / 1e6)
            }
        }
    }

    /// The schedule in words: `every 30m`, `cron "*/15 * * * *"`.
    pub fn describe(&self) -> String {
        match &self.when {
            When::Every(d) => format!("every {}", humantime::format_duration(*d)),
            When::Cron { expr, .. } => format!("cron \"{expr}\""),
        }
    }
}

/// `[services.X.container]`: the image a container engine runs the service
/// from (a published image, a build context, or both: build it and tag it
/// as `image`) and how fpctl runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub image: Option<String>,
    /// The build context (absolute).
    pub build: Option<PathBuf>,
    /// The Dockerfile stage to build.
    pub target: Option<String>,
    /// The program it runs, expanded, replacing the image's ENTRYPOINT
    /// (empty: none); `None` keeps the image's.
    pub entrypoint: Option<Vec<String>>,
    /// The container's command, expanded; `None` keeps the service's
    /// `command` if it has one, else the image's CMD.
    pub args: Option<Vec<String>>,
    /// Where the program listens inside the container (bridge network).
    pub container_port: Option<u16>,
    /// `-v` arguments, host paths made absolute.
    pub volumes: Vec<String>,
    pub init: bool,
    pub network: Network,
    /// This load runs the service in its container: it has no `command`,
    /// or `fpctl start --containers` asked for it (or it is exported).
    pub runs: bool,
    /// The image to run: `image`, else the tag fpctl gives its build.
    pub tag: String,
    /// `[project] container_runtime`.
    pub runtime: ContainerRuntime,
    /// The container's name: one per service and project folder
    /// (`fpctl-MARKER-SERVICE`), so the engine itself refuses a second copy.
    pub name: String,
}

/// How a container is networked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Its own network namespace; `port` is published on 127.0.0.1 (and on
    /// the bridge's gateway, so other containers reach it).
    Bridge,
    /// The host's network: 127.0.0.1 is the host's, both ways.
    Host,
}

/// What `FPCTL_HOST_<NAME>` holds inside a bridge container that fpctl
/// runs: the name the engine gives the host's bridge gateway (`--add-host
/// host.docker.internal:host-gateway`), where every service of the stack is
/// reachable.
pub const BRIDGE_HOST: &str = "host.docker.internal";

/// What `FPCTL_HOST_<NAME>` holds: `127.0.0.1` when fpctl runs the stack on
/// this machine; the service's own name under compose or Kubernetes, where
/// each service is reached by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hosts {
    Loopback,
    ServiceNames,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Setup {
    None,
    Venv,
    Npm,
    Commands(Vec<String>),
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    No,
    OnFailure,
    Always,
}

#[derive(Debug, Clone)]
pub struct Health {
    pub probe: Probe,
    pub interval: Duration,
    pub timeout: Duration,
    pub retries: u32,
}

#[derive(Debug, Clone)]
pub enum Probe {
    Http {
        url: String,
        /// Accepted status codes; empty means any 2xx.
        expect_status: Vec<u16>,
        /// Field (dotted path) -> accepted values.
        expect_json: Vec<(String, Vec<serde_json::Value>)>,
        /// Accept any certificate (self-signed ones of local services).
        insecure: bool,
    },
    Tcp {
        port: u16,
    },
    Exec {
        argv: Vec<String>,
    },
    /// Healthy once the service's log, since its latest launch, has a line
    /// matching `pattern`.
    Log {
        pattern: regex::Regex,
        log: PathBuf,
    },
    /// The image's own HEALTHCHECK, as the container engine reports it.
    Container,
}

impl Config {
    pub fn service(&self, name: &str) -> Option<(usize, &Service)> {
        self.services
            .iter()
            .enumerate()
            .find(|(_, s)| s.name == name)
    }

    /// The services a name given on the command line means: a replicated
    /// service's name means all its instances. Unknown names pass through.
    pub fn expand_names(&self, names: &[String]) -> Vec<String> {
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            let instances: Vec<&Service> = self
                .services
                .iter()
                .filter(|s| s.group.as_ref().is_some_and(|(g, _)| g == name))
                .collect();
            if instances.is_empty() || self.service(name).is_some() {
                out.push(name.clone());
            } else {
                out.extend(instances.iter().map(|s| s.name.clone()));
            }
        }
        out
    }

    /// Where fpctl keeps its socket, state and setup stamps.
    pub fn state_dir(&self) -> PathBuf {
        self.root.join(".fpctl")
    }

    pub fn log_path(&self, service: &str) -> PathBuf {
        self.project.log_dir.join(format!("{service}.log"))
    }
}

impl Service {
    /// Its container settings, when this load runs it in a container.
    pub fn in_container(&self) -> Option<&Container> {
        self.container.as_ref().filter(|c| c.runs)
    }

    /// What its container runs: `args`, else its `command`, else nothing
    /// (the image's CMD).
    pub fn container_command(&self) -> &[String] {
        match self.container.as_ref().and_then(|c| c.args.as_ref()) {
            Some(args) => args,
            None => &self.argv,
        }
    }

    /// What its container runs as one line: its `entrypoint`, if it has
    /// one, then its command (the image's own when this is empty).
    pub fn container_line(&self) -> String {
        let entry = self.container.as_ref().and_then(|c| c.entrypoint.as_ref());
        let words: Vec<&String> = entry
            .into_iter()
            .flatten()
            .chain(self.container_command())
            .collect();
        shell_words::join(words)
    }

    /// `text` with the value of every secret variable replaced by `***`.
    pub fn redact(&self, text: &str) -> String {
        let mut out = text.to_string();
        let values = self
            .secret_keys
            .iter()
            .filter_map(|key| self.env_value(key))
            .chain(self.secret_values.iter().map(String::as_str));
        for v in values {
            if v.len() >= 3 {
                out = out.replace(v, "***");
            }
        }
        redact_url_passwords(&out).into_owned()
    }

    pub fn env_value(&self, key: &str) -> Option<&str> {
        self.env
            .iter()
            .rev()
            .chain(self.port_env.iter())
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

impl Config {
    /// Bridge containers that depend on a native service with a port: they
    /// reach it through the bridge's gateway, which works only when it
    /// listens beyond 127.0.0.1. One sentence each.
    pub fn bridge_reach_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for s in &self.services {
            let Some(c) = s.in_container() else { continue };
            if c.network != Network::Bridge {
                continue;
            }
            for &d in &s.depends_on {
                let dep = &self.services[d];
                if dep.in_container().is_some() {
                    continue;
                }
                let Some(port) = dep.port else { continue };
                out.push(format!(
                    "service \"{}\" runs in a bridge container and reaches the native service \"{}\" at {BRIDGE_HOST}:{port}, which works only if \"{}\" listens beyond 127.0.0.1 (on 0.0.0.0); otherwise set network = \"host\" in [services.{}.container]",
                    s.name, dep.name, dep.name, s.name
                ));
            }
        }
        out
    }

    /// Services whose `env` sets `PORT` or an `FPCTL_PORT_*` to something
    /// other than the port fpctl exports: the service would listen where no
    /// health check looks. One sentence each.
    pub fn port_env_conflicts(&self) -> Vec<String> {
        let mut found = Vec::new();
        for svc in &self.services {
            let mut seen: Vec<&str> = Vec::new();
            // The last value of a key is the one the process gets.
            for (key, value) in svc.env.iter().rev() {
                if seen.contains(&key.as_str()) {
                    continue;
                }
                seen.push(key);
                let exported = match key.as_str() {
                    // fpctl's own PORT comes first: the port, or in a
                    // bridge container its container_port.
                    "PORT" => svc.port.and_then(|_| {
                        let first = svc.env.iter().find(|(k, _)| k == "PORT");
                        first.map(|(_, v)| v.clone())
                    }),
                    _ => svc
                        .port_env
                        .iter()
                        .find(|(k, _)| k == key && k.starts_with("FPCTL_PORT_"))
                        .map(|(_, v)| v.clone()),
                };
                if let Some(port) = exported.filter(|p| p != value) {
                    found.push(format!(
                        "service \"{}\": env sets {key} = \"{value}\", but fpctl exports {key}={port}; the health check and dependents look at {port}",
                        svc.name
                    ));
                }
            }
        }
        found
    }
}

/// A marker unique to a project folder, shared by all its services: a
/// service's processes carry `FPCTL_INSTANCE=<marker>:<service>`, and its
/// container is `fpctl-<marker>-<service>`.
pub fn project_marker(root: &std::path::Path) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(root.as_os_str().as_encoded_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// `path` with `.` and `..` resolved lexically (it need not exist).
pub fn normalize_path(path: &std::path::Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// `FPCTL_PORT_<NAME>`: upper-cased, every other character becomes `_`.
pub fn port_var_name(service: &str) -> String {
    service_var_name("FPCTL_PORT_", service)
}

/// A service's name as a host name (and Kubernetes object name): lower
/// case, with every character other than a letter, digit or `-` as `-`.
pub fn dns_name(service: &str) -> String {
    service
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

/// `FPCTL_PORTS_<NAME>`: every port of a replicated service's instances.
pub fn ports_var_name(service: &str) -> String {
    service_var_name("FPCTL_PORTS_", service)
}

/// `FPCTL_HOST_<NAME>`, named like [`port_var_name`].
pub fn host_var_name(service: &str) -> String {
    service_var_name("FPCTL_HOST_", service)
}

fn service_var_name(prefix: &str, service: &str) -> String {
    let mut var = String::from(prefix);
    var.extend(service.chars().map(|c| {
        if c.is_ascii_alphanumeric() {
            c.to_ascii_uppercase()
        } else {
            '_'
        }
    }));
    var
}

/// Whether an environment variable's name suggests its value is a secret:
/// it contains TOKEN, SECRET, PASSWORD, PASSWD, PASSPHRASE, KEY, CREDENTIAL
/// or PRIVATE; or one of its words (between `_`) is PASS, PWD, PW or DSN, or
/// begins with AUTH (not AUTHOR). `PWD` alone is the working directory.
pub fn looks_secret(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    let inside = [
        "TOKEN",
        "SECRET",
        "PASSWORD",
        "PASSWD",
        "PASSPHRASE",
        "KEY",
        "CREDENTIAL",
        "PRIVATE",
    ];
    if inside.iter().any(|w| upper.contains(w)) {
        return true;
    }
    upper != "PWD"
        && upper
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|word| {
                matches!(word, "PASS" | "PWD" | "PW" | "DSN")
                    || (word.starts_with("AUTH") && !matches!(word, "AUTHOR" | "AUTHORS"))
            })
}

/// `text` with the password of every URL in it (`scheme://user:PASSWORD@host`)
/// replaced by `***`.
pub fn redact_url_passwords(text: &str) -> std::borrow::Cow<'_, str> {
    static USERINFO: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    if !text.contains("://") {
        return std::borrow::Cow::Borrowed(text);
    }
    let re = USERINFO.get_or_init(|| {
        // The password runs to the last `@` before the host's end.
        regex::Regex::new(r"(?i)\b([a-z][a-z0-9+.\-]*://[^\s:/?#@]*):[^\s/?#]*@")
            .expect("a valid pattern")
    });
    re.replace_all(text, "$1:***@")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_containers_own_port_is_no_conflict_but_a_port_set_in_env_is() {
        let file = |env: &str| {
            let text = format!(
                "[services.web]\nport = 18080\nhealth = {{ tcp = true }}\n{env}\n\
                 [services.web.container]\nimage = \"busybox\"\ncontainer_port = 8080\n"
            );
            load_str(std::path::Path::new("/tmp/fpctl-unit/services.toml"), text).expect("valid")
        };
        assert_eq!(file("").port_env_conflicts(), Vec::<String>::new());
        let conflicts = file("env = { PORT = \"9000\" }").port_env_conflicts();
        assert_eq!(conflicts.len(), 1, "{conflicts:?}");
        assert!(conflicts[0].contains("PORT = \"9000\""), "{conflicts:?}");
    }

    #[test]
    fn secret_names_are_recognised() {
        let secret = [
            "API_TOKEN",
            "GITHUB_TOKEN",
            "CLIENT_SECRET",
            "AWS_SECRET_ACCESS_KEY",
            "API_KEY",
            "DB_PASSWORD",
            "POSTGRES_PASSWORD",
            "db_password",
            "MYSQL_PASSWD",
            "GPG_PASSPHRASE",
            "AWS_CREDENTIALS",
            "DB_PASS",
            "SMTP_PASS",
            "PASS",
            "DB_PWD",
            "MYSQL_PWD",
            "DB_PW",
            "AUTH",
            "AUTH_HEADER",
            "AUTHORIZATION",
            "BASIC_AUTH",
            "AUTHTOKEN",
            "SENTRY_DSN",
            "DATABASE_DSN",
            "DSN",
            "PRIVATE_KEY",
            "MY_PRIVATE_THING",
            "PRIVATEDATA",
        ];
        let plain = [
            "PORT",
            "PWD",
            "OLDPWD",
            "PATH",
            "HOME",
            "AUTHOR",
            "AUTHORS",
            "GIT_AUTHOR_NAME",
            "DATABASE_URL",
            "LOG_LEVEL",
            "BYPASS_CACHE",
            "PASSPORT_OFFICE",
            "COMPASS",
            "DSNAME",
            "NODE_ENV",
            "FPCTL_PORT_DB",
            "PUBLIC_URL",
        ];
        for name in secret {
            assert!(looks_secret(name), "{name} should look secret");
        }
        for name in plain {
            assert!(!looks_secret(name), "{name} should not look secret");
        }
    }

    #[test]
    fn url_passwords_are_redacted() {
        let cases = [
            ("postgres://u:secret@h/db", "postgres://u:***@h/db"),
            (
                "--db=postgres://u:secret@h:5432/db x",
                "--db=postgres://u:***@h:5432/db x",
            ),
            ("redis://:pw123@cache:6379", "redis://:***@cache:6379"),
            ("amqp://u:p@ss@h/", "amqp://u:***@h/"),
            (
                "a mysql://root:s3@db b https://x:y@z",
                "a mysql://root:***@db b https://x:***@z",
            ),
            (
                "http://127.0.0.1:8080/health",
                "http://127.0.0.1:8080/health",
            ),
            ("http://user@host/", "http://user@host/"),
            ("http://h:80/?next=a@b", "http://h:80/?next=a@b"),
            ("no url here: a@b", "no url here: a@b"),
        ];
        for (text, want) in cases {
            assert_eq!(redact_url_passwords(text), want, "{text}");
        }
    }
}

//! The services.toml document exactly as written, with spans.
//!
//! These types only mirror the file: every struct denies unknown keys so that a
//! typo is an error, and every value a user may get wrong keeps its span so
//! that validation (in `validate/`) can point at it. No defaults are applied
//! and nothing is resolved here. The JSON Schema of services.toml (`fpctl
//! schema`) is derived from these same types, so it cannot drift from them.

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

/// services.toml: a stack of local services for fpctl.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "services.toml")]
pub struct RawFile {
    #[schemars(with = "Option<RawProject>")]
    pub project: Option<Spanned<RawProject>>,
    #[serde(default)]
    #[schemars(with = "Vec<RawTier>")]
    pub tier: Vec<Spanned<RawTier>>,
    #[serde(default)]
    #[schemars(with = "IndexMap<String, RawService>")]
    pub services: IndexMap<Spanned<String>, Spanned<RawService>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProject {
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub log_dir: Option<Spanned<String>>,
    #[schemars(with = "Option<Scalar>")]
    pub log_max_size: Option<Spanned<Scalar>>,
    #[schemars(with = "Option<i64>")]
    pub log_keep: Option<Spanned<i64>>,
    /// Record the time of every line in every service's log (a service's
    /// own `log_timestamps` overrides it).
    pub log_timestamps: Option<bool>,
    /// How many setups may run at once (default: the number of cores, at
    /// least 4).
    #[schemars(with = "Option<i64>")]
    pub max_parallel_setup: Option<Spanned<i64>>,
    #[serde(default)]
    #[schemars(with = "IndexMap<String, Scalar>")]
    pub env: IndexMap<Spanned<String>, Spanned<Scalar>>,
    #[schemars(with = "Option<String>")]
    pub api: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub api_token: Option<Spanned<String>>,
    pub api_read_only: Option<bool>,
    /// Which container engine runs container services: `auto` (whichever
    /// answers, Docker first), `docker` or `podman`.
    pub container_runtime: Option<RawRuntime>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RawRuntime {
    Auto,
    Docker,
    Podman,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTier {
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    pub title: Option<String>,
    /// The tier's port range, `"8000-8099"`.
    #[schemars(with = "Option<String>")]
    pub ports: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    #[schemars(with = "Option<StringOrList>")]
    pub command: Option<Spanned<StringOrList>>,
    #[serde(default)]
    pub shell: bool,
    #[schemars(with = "Option<String>")]
    pub dir: Option<Spanned<String>>,
    /// A port number, or `"auto"` for a free one from the tier's range.
    #[serde(default)]
    #[schemars(schema_with = "port_schema")]
    pub port: Option<Spanned<Scalar>>,
    #[serde(default)]
    #[schemars(with = "IndexMap<String, Scalar>")]
    pub env: IndexMap<Spanned<String>, Spanned<Scalar>>,
    #[schemars(with = "Option<StringOrList>")]
    pub env_file: Option<Spanned<StringOrList>>,
    #[schemars(with = "Option<String>")]
    pub tier: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub depends_on: Vec<Spanned<String>>,
    #[schemars(with = "Option<StringOrList>")]
    pub setup: Option<Spanned<StringOrList>>,
    #[schemars(with = "Option<RawHealth>")]
    pub health: Option<Spanned<RawHealth>>,
    #[schemars(with = "Option<RawRestart>")]
    pub restart: Option<Spanned<RawRestart>>,
    #[schemars(with = "Option<i64>")]
    pub max_restarts: Option<Spanned<i64>>,
    #[schemars(with = "Option<Scalar>")]
    pub stop_signal: Option<Spanned<Scalar>>,
    #[schemars(with = "Option<Scalar>")]
    pub stop_timeout: Option<Spanned<Scalar>>,
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub profiles: Vec<Spanned<String>>,
    #[serde(default)]
    pub oneshot: bool,
    /// Exit codes that mean success (default `[0]`; list 0 if it counts).
    #[schemars(with = "Option<Vec<u8>>")]
    pub success_exit_codes: Option<Spanned<Vec<Spanned<i64>>>>,
    #[serde(default)]
    pub disabled: bool,
    #[schemars(with = "Option<Scalar>")]
    pub max_memory: Option<Spanned<Scalar>>,
    #[schemars(with = "Option<Scalar>")]
    pub log_max_size: Option<Spanned<Scalar>>,
    #[schemars(with = "Option<i64>")]
    pub log_keep: Option<Spanned<i64>>,
    /// Record the time of every line in the log (default: the project's).
    pub log_timestamps: Option<bool>,
    #[schemars(with = "Option<RawContainer>")]
    pub container: Option<Spanned<RawContainer>>,
    /// Run this many instances, `NAME-1` to `NAME-N`.
    #[schemars(with = "Option<i64>")]
    pub replicas: Option<Spanned<i64>>,
    /// Globs (relative to `dir`; `!` excludes) whose changes restart it.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub watch: Vec<Spanned<String>>,
    #[schemars(with = "Option<Scalar>")]
    pub watch_debounce: Option<Spanned<Scalar>>,
    /// Stop a stale, unhealthy copy of this service holding its port.
    #[serde(default)]
    pub replace_stale: bool,
    /// Run this oneshot on a schedule: `{ cron = "*/15 * * * *" }` or
    /// `{ every = "30m" }`.
    #[schemars(with = "Option<RawSchedule>")]
    pub schedule: Option<Spanned<RawSchedule>>,
}

/// `schedule = { ... }` of a oneshot service.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSchedule {
    /// A cron expression (5 fields, or 6 with a leading seconds field).
    #[schemars(with = "Option<String>")]
    pub cron: Option<Spanned<String>>,
    /// A fixed interval, like `"30m"` or `"1h"`.
    #[schemars(with = "Option<Scalar>")]
    pub every: Option<Spanned<Scalar>>,
    /// An IANA time zone for `cron` (default: the machine's local time).
    #[schemars(with = "Option<String>")]
    pub timezone: Option<Spanned<String>>,
    /// Also run once when the supervisor starts the job (default: false).
    pub run_on_start: Option<bool>,
    /// What a run that comes due while one still runs does: `skip`
    /// (default) or `queue` (at most one waiting run).
    pub concurrency: Option<RawConcurrency>,
    /// Run once at start when runs were missed while no supervisor ran
    /// (default: false).
    pub catch_up: Option<bool>,
    /// A failed last run makes `fpctl check` fail (default: false).
    pub critical: Option<bool>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RawConcurrency {
    Skip,
    Queue,
}

/// `[services.X.container]`: the image the service runs from. A service with
/// this table and no `command` runs as a container; with a command it runs
/// natively, and the table serves `fpctl export` and `start --containers`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawContainer {
    /// An image reference (`redis:7`); with `build`, the tag the build gets.
    #[schemars(with = "Option<String>")]
    pub image: Option<Spanned<String>>,
    /// A folder holding a Dockerfile, relative to services.toml's folder.
    #[schemars(with = "Option<String>")]
    pub build: Option<Spanned<String>>,
    /// The Dockerfile stage to build (`--target`).
    #[schemars(with = "Option<String>")]
    pub target: Option<Spanned<String>>,
    /// The program the container runs, replacing the image's ENTRYPOINT
    /// (`[]` runs none); `args` follow it.
    #[schemars(with = "Option<StringOrList>")]
    pub entrypoint: Option<Spanned<StringOrList>>,
    /// The container's command and arguments, replacing the image's CMD.
    #[schemars(with = "Option<StringOrList>")]
    pub args: Option<Spanned<StringOrList>>,
    /// Where the program listens inside the container (default: `port`).
    #[schemars(with = "Option<i64>")]
    pub container_port: Option<Spanned<i64>>,
    /// `HOST:CONTAINER[:ro]` binds (a relative host path starts at
    /// services.toml's folder) or named volumes.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    pub volumes: Vec<Spanned<String>>,
    /// Run a tiny init as PID 1 that forwards signals and reaps (default: true).
    pub init: Option<bool>,
    /// `bridge` (default: `port` published on 127.0.0.1) or `host`.
    pub network: Option<RawNetwork>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RawNetwork {
    Bridge,
    Host,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    #[schemars(with = "Option<String>")]
    pub http: Option<Spanned<String>>,
    #[schemars(with = "Option<Scalar>")]
    pub tcp: Option<Spanned<Scalar>>,
    #[schemars(with = "Option<StringOrList>")]
    pub exec: Option<Spanned<StringOrList>>,
    #[schemars(with = "Option<String>")]
    pub log: Option<Spanned<String>>,
    /// `true`: the image's own HEALTHCHECK, as the container engine reports it.
    #[schemars(with = "Option<bool>")]
    pub container: Option<Spanned<bool>>,
    #[serde(default)]
    pub insecure: bool,
    #[schemars(with = "Option<IntOrList>")]
    pub expect_status: Option<Spanned<IntOrList>>,
    #[schemars(with = "Option<IndexMap<String, ScalarOrList>>")]
    pub expect_json: Option<Spanned<IndexMap<String, Spanned<ScalarOrList>>>>,
    #[schemars(with = "Option<Scalar>")]
    pub interval: Option<Spanned<Scalar>>,
    #[schemars(with = "Option<Scalar>")]
    pub timeout: Option<Spanned<Scalar>>,
    #[schemars(with = "Option<Scalar>")]
    pub start_timeout: Option<Spanned<Scalar>>,
    #[schemars(with = "Option<i64>")]
    pub retries: Option<Spanned<i64>>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RawRestart {
    No,
    OnFailure,
    Always,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "expected a string or an array of strings")]
pub enum StringOrList {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "expected an integer or an array of integers")]
pub enum IntOrList {
    One(i64),
    Many(Vec<i64>),
}

/// A string, number or boolean, as env values and durations may be written.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged, expecting = "expected a string, number or boolean")]
pub enum Scalar {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(
    untagged,
    expecting = "expected a string, number, boolean or an array of them"
)]
pub enum ScalarOrList {
    One(Scalar),
    Many(Vec<Scalar>),
}

impl Scalar {
    /// The value as it would appear in an environment variable.
    pub fn to_env_string(&self) -> String {
        match self {
            Scalar::Str(s) => s.clone(),
            Scalar::Int(i) => i.to_string(),
            Scalar::Float(f) => f.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Scalar::Str(s) => serde_json::Value::from(s.as_str()),
            Scalar::Int(i) => serde_json::Value::from(*i),
            Scalar::Float(f) => serde_json::Value::from(*f),
            Scalar::Bool(b) => serde_json::Value::from(*b),
        }
    }
}

impl StringOrList {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            StringOrList::One(s) => vec![s],
            StringOrList::Many(v) => v,
        }
    }
}

/// What `port` accepts: 1-65535 or "auto" (the parser reads any scalar, to
/// say what is wrong with it in words).
fn port_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "A port number, or \"auto\" for a free one from the tier's range.",
        "anyOf": [
            { "type": "integer", "minimum": 1, "maximum": 65535 },
            { "const": "auto" }
        ]
    })
}

/// The JSON Schema (draft 2020-12) of services.toml, pretty-printed.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(RawFile);
    serde_json::to_string_pretty(&schema).expect("a schema serializes")
}

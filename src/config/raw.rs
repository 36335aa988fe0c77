//! The services.toml document exactly as written, with spans.
//!
//! These types only mirror the file: every struct denies unknown keys so that a
//! typo is an error, and every value a user may get wrong keeps its span so
//! that validation (in `validate.rs`) can point at it. No defaults are applied
//! and nothing is resolved here.

use indexmap::IndexMap;
use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFile {
    pub project: Option<Spanned<RawProject>>,
    #[serde(default)]
    pub tier: Vec<Spanned<RawTier>>,
    #[serde(default)]
    pub services: IndexMap<Spanned<String>, Spanned<RawService>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProject {
    pub name: Option<Spanned<String>>,
    pub log_dir: Option<Spanned<String>>,
    pub log_max_size: Option<Spanned<Scalar>>,
    pub log_keep: Option<Spanned<i64>>,
    pub api: Option<Spanned<String>>,
    pub api_token: Option<Spanned<String>>,
    pub api_read_only: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTier {
    pub name: Spanned<String>,
    pub title: Option<String>,
    /// The tier's port range, `"8000-8099"`.
    pub ports: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub command: Option<Spanned<StringOrList>>,
    #[serde(default)]
    pub shell: bool,
    pub dir: Option<Spanned<String>>,
    /// A port number, or `"auto"` for a free one from the tier's range.
    pub port: Option<Spanned<Scalar>>,
    #[serde(default)]
    pub env: IndexMap<Spanned<String>, Spanned<Scalar>>,
    pub env_file: Option<Spanned<StringOrList>>,
    pub tier: Option<Spanned<String>>,
    #[serde(default)]
    pub depends_on: Vec<Spanned<String>>,
    pub setup: Option<Spanned<StringOrList>>,
    pub health: Option<Spanned<RawHealth>>,
    pub restart: Option<Spanned<RawRestart>>,
    pub max_restarts: Option<Spanned<i64>>,
    pub stop_signal: Option<Spanned<Scalar>>,
    pub stop_timeout: Option<Spanned<Scalar>>,
    #[serde(default)]
    pub profiles: Vec<Spanned<String>>,
    #[serde(default)]
    pub oneshot: bool,
    #[serde(default)]
    pub disabled: bool,
    pub max_memory: Option<Spanned<Scalar>>,
    pub log_max_size: Option<Spanned<Scalar>>,
    pub log_keep: Option<Spanned<i64>>,
    pub container: Option<Spanned<RawContainer>>,
}

/// `[services.X.container]`: how the service runs under a container engine
/// (only `fpctl export` reads it).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawContainer {
    pub image: Option<Spanned<String>>,
    pub build: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHealth {
    pub http: Option<Spanned<String>>,
    pub tcp: Option<Spanned<Scalar>>,
    pub exec: Option<Spanned<StringOrList>>,
    pub expect_status: Option<Spanned<IntOrList>>,
    pub expect_json: Option<Spanned<IndexMap<String, Spanned<ScalarOrList>>>>,
    pub interval: Option<Spanned<Scalar>>,
    pub timeout: Option<Spanned<Scalar>>,
    pub start_timeout: Option<Spanned<Scalar>>,
    pub retries: Option<Spanned<i64>>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RawRestart {
    No,
    OnFailure,
    Always,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "expected a string or an array of strings")]
pub enum StringOrList {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "expected an integer or an array of integers")]
pub enum IntOrList {
    One(i64),
    Many(Vec<i64>),
}

/// A string, number or boolean, as env values and durations may be written.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged, expecting = "expected a string, number or boolean")]
pub enum Scalar {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
}

#[derive(Debug, Clone, Deserialize)]
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

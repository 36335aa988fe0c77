//! `fpctl export`: the same services.toml as a docker compose file,
//! Kubernetes manifests or systemd user units.
//!
//! `mapping` holds what every target shares (selection, images, environment,
//! dependency gates, notes); each target file turns a [`mapping::Plan`] into
//! files. Whatever a target cannot express is said in a comment in its output
//! and in a warning on stderr, never dropped silently.

mod compose;
mod kubernetes;
mod mapping;
mod schedule;
mod systemd;

use std::path::{Path, PathBuf};

use crate::config::{self, Hosts};
use crate::{Error, Outcome, Result};

pub use mapping::{relative, Note};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Target {
    Compose,
    Kubernetes,
    Systemd,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub target: Target,
    /// Export these and their dependencies (default: the whole stack).
    pub services: Vec<String>,
    pub profiles: Vec<String>,
    /// A folder, or a file (compose or Kubernetes); stdout when `None`.
    pub output: Option<PathBuf>,
    /// Write a minimal Dockerfile for venv/npm services that have none.
    pub dockerfiles: bool,
    /// Compose: publish ports on every host interface, not only loopback.
    pub publish_all: bool,
}

/// One file of an export, by its name in the output folder.
#[derive(Debug, Clone)]
pub struct OutFile {
    pub name: String,
    pub text: String,
}

impl OutFile {
    fn new(name: &str, text: String) -> Self {
        OutFile {
            name: name.to_string(),
            text,
        }
    }
}

/// What becomes of `dir` in a container.
const DIR_NOTE: &str = "a service's dir is not a working directory in a container: the image's WORKDIR is; without an image, the dir holding the Dockerfile is the build context";

/// Where the files go.
enum Dest {
    Stdout,
    Dir(PathBuf),
    /// One file (compose, or every Kubernetes manifest in one); anything
    /// else (generated Dockerfiles) beside it.
    File(PathBuf),
}

pub fn export(file: Option<&Path>, opts: Options) -> Result<Outcome> {
    let hosts = match opts.target {
        Target::Systemd => Hosts::Loopback,
        Target::Compose | Target::Kubernetes => Hosts::ServiceNames,
    };
    let config = config::load_with(file, hosts)?;
    let dest = destination(opts.target, opts.output.as_deref())?;
    if opts.dockerfiles && matches!(dest, Dest::Stdout) {
        return Err(Error::Usage(
            "--dockerfiles writes files: give an output folder with -o DIR".into(),
        ));
    }
    if opts.publish_all && opts.target != Target::Compose {
        return Err(Error::Usage(
            "--publish-all is for `fpctl export compose` (which publishes ports on 127.0.0.1 without it)".into(),
        ));
    }
    let base = match &dest {
        Dest::Dir(d) => d.clone(),
        Dest::File(f) => f.parent().map(Path::to_path_buf).unwrap_or_default(),
        Dest::Stdout => crate::config::normalize_path(&config.root),
    };
    let mut plan = mapping::Plan::new(
        &config,
        &opts.services,
        &opts.profiles,
        opts.target == Target::Compose,
    )?;
    let mut contexts = Vec::new();
    let files = match opts.target {
        Target::Compose => {
            let images = mapping::images(&plan, opts.dockerfiles)?;
            contexts = generated_contexts(&images);
            compose::export(&mut plan, &images, &base, opts.publish_all)
        }
        Target::Kubernetes => {
            let images = mapping::images(&plan, opts.dockerfiles)?;
            contexts = generated_contexts(&images);
            if !matches!(dest, Dest::Dir(_))
                && plan
                    .services
                    .iter()
                    .any(|&i| !plan.svc(i).env_files.is_empty())
            {
                plan.note_stack("env_file values go into Secrets that only the kustomization (written with -o DIR) creates");
            }
            kubernetes::export(&mut plan, &images, &base)
        }
        Target::Systemd => {
            let fpctl = std::env::current_exe()
                .map_err(|e| Error::other("cannot find the fpctl binary", e))?;
            systemd::export(&mut plan, &fpctl)
        }
    };
    let written = write(opts.target, &dest, &files)?;
    // `COPY . .` of a generated Dockerfile takes the whole folder: BuildKit
    // reads the .dockerignore beside the Dockerfile, the classic builder
    // only the one at the root of the build context. One is written there
    // when the folder has none.
    for dir in contexts {
        let path = dir.join(".dockerignore");
        if !path.exists() {
            std::fs::write(&path, mapping::DOCKERIGNORE)
                .map_err(|e| Error::other(format!("cannot write {}", path.display()), e))?;
            eprintln!("wrote {}", path.display());
        }
    }
    for note in &plan.notes {
        eprintln!("warning: {}", note.line());
    }
    if let Some(where_) = written {
        let names: Vec<&str> = files.iter().map(|f| f.name.as_str()).collect();
        eprintln!("wrote {} ({})", where_.display(), names.join(", "));
    }
    Ok(Outcome::Success)
}

/// The build contexts of the Dockerfiles this export generates.
fn generated_contexts(images: &[(usize, mapping::Image)]) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = images
        .iter()
        .filter(|(_, image)| image.generated.is_some())
        .filter_map(|(_, image)| image.build.clone())
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

fn destination(target: Target, output: Option<&Path>) -> Result<Dest> {
    let Some(out) = output else {
        return Ok(Dest::Stdout);
    };
    let cwd = std::env::current_dir().map_err(|e| Error::other("current folder", e))?;
    let path = crate::config::normalize_path(&cwd.join(out));
    let yaml = path.extension().is_some_and(|e| e == "yaml" || e == "yml");
    Ok(match target {
        _ if path.is_dir() => Dest::Dir(path),
        Target::Systemd if path.exists() => {
            return Err(Error::Usage(format!(
                "{}: systemd units are one file each: give a folder with -o",
                out.display()
            )))
        }
        Target::Compose | Target::Kubernetes if yaml => Dest::File(path),
        _ => Dest::Dir(path),
    })
}

/// Write the files; returns the folder or file written, if not stdout.
fn write(target: Target, dest: &Dest, files: &[OutFile]) -> Result<Option<PathBuf>> {
    let put = |dir: &Path, name: &str, text: &str| -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| Error::other(dir.display(), e))?;
        let path = dir.join(name);
        std::fs::write(&path, text).map_err(|e| Error::other(path.display(), e))
    };
    let is_yaml = |f: &&OutFile| f.name.ends_with(".yaml");
    match dest {
        Dest::Dir(dir) => {
            for f in files {
                put(dir, &f.name, &f.text)?;
            }
            Ok(Some(dir.clone()))
        }
        Dest::File(path) => {
            let dir = path.parent().unwrap_or(Path::new("/"));
            let (docs, other): (Vec<&OutFile>, Vec<&OutFile>) = files.iter().partition(is_yaml);
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            put(
                dir,
                name.as_deref().unwrap_or_default(),
                &joined(target, &docs),
            )?;
            for f in other {
                put(dir, &f.name, &f.text)?;
            }
            Ok(Some(path.clone()))
        }
        Dest::Stdout => {
            let shown: Vec<&OutFile> = files.iter().collect();
            print!("{}", joined(target, &shown));
            Ok(None)
        }
    }
}

/// Several files as one text: YAML documents (without the kustomization,
/// which lists files), or units each headed by its name.
fn joined(target: Target, files: &[&OutFile]) -> String {
    match target {
        Target::Compose => files.first().map(|f| f.text.clone()).unwrap_or_default(),
        Target::Kubernetes => files
            .iter()
            .filter(|f| f.name != kubernetes::KUSTOMIZATION)
            .map(|f| f.text.as_str())
            .collect::<Vec<_>>()
            .join("---\n"),
        Target::Systemd => files
            .iter()
            .map(|f| format!("# ==> {} <==\n{}", f.name, f.text))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// A JSON value as a YAML document that YAML 1.1 readers (docker-compose's
/// PyYAML, Kubernetes' Go parser) read back the same: the YAML writer quotes
/// only what YAML 1.2 would misread, so `no`, `on`, `y`… are quoted here.
fn yaml(value: &serde_json::Value) -> String {
    let mut value = value.clone();
    let mut words = Vec::new();
    hide_yaml11_words(&mut value, &mut words);
    let mut text =
        serde_yaml_ng::to_string(&value).unwrap_or_else(|e| format!("# cannot write YAML: {e}\n"));
    for (i, word) in words.iter().enumerate().rev() {
        text = text.replace(&placeholder(i), &format!("'{word}'"));
    }
    text
}

fn placeholder(i: usize) -> String {
    format!("fpctl-yaml11-word-{i}-")
}

fn hide_yaml11_words(v: &mut serde_json::Value, words: &mut Vec<String>) {
    const YAML11: [&str; 11] = [
        "y", "yes", "n", "no", "on", "off", "true", "false", "null", "~", "",
    ];
    match v {
        serde_json::Value::String(s) if YAML11.contains(&s.to_ascii_lowercase().as_str()) => {
            let word = std::mem::replace(s, placeholder(words.len()));
            words.push(word);
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(|x| hide_yaml11_words(x, words)),
        serde_json::Value::Object(o) => o.values_mut().for_each(|x| hide_yaml11_words(x, words)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    #[test]
    fn yaml_quotes_what_yaml_1_1_would_misread() {
        let text = super::yaml(&json!({
            "restart": "no", "a": ["on", "Off", "y"], "b": "nothing", "c": "no way"
        }));
        assert_eq!(
            text,
            "restart: 'no'\na:\n- 'on'\n- 'Off'\n- 'y'\nb: nothing\nc: no way\n"
        );
    }
}

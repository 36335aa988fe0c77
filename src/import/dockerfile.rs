//! What a Dockerfile's image runs: the ENTRYPOINT / CMD, the first EXPOSE and
//! the WORKDIR of one stage (the `build.target` named, else the last), with
//! what that stage inherits from an earlier stage it is built `FROM`.
//! Heredoc bodies (`RUN <<EOF`) are skipped, not read as instructions.

use std::path::{Path, PathBuf};

use crate::draft::strings;

/// `["a", "b"]` (exec form) or a command line for a shell (shell form).
#[derive(Debug, Clone, PartialEq)]
enum Form {
    Exec(Vec<String>),
    Shell(String),
}

impl Form {
    fn parse(rest: &str) -> Form {
        match serde_json::from_str::<Vec<String>>(rest) {
            Ok(argv) => Form::Exec(argv),
            Err(_) => Form::Shell(rest.to_string()),
        }
    }
}

#[derive(Debug, Clone, Default)]
struct Stage {
    name: Option<String>,
    entrypoint: Option<Form>,
    cmd: Option<Form>,
    /// Whether CMD was written in this stage (an ENTRYPOINT written here
    /// drops an inherited CMD, as docker does).
    own_cmd: bool,
    expose: Option<u16>,
    workdir: Option<String>,
}

/// The chosen stage, as fpctl can use it.
#[derive(Debug, Default)]
pub struct Image {
    /// The command (a string or an array) and whether it needs a shell.
    pub command: Option<(toml_edit::Value, bool)>,
    pub expose: Option<u16>,
    pub workdir: Option<String>,
}

/// Why a Dockerfile tells nothing.
#[derive(Debug, thiserror::Error)]
pub enum DockerfileError {
    #[error("{}: {source}", .path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} has no stage \"{stage}\" (its named stages: {named})", .path.display())]
    NoStage {
        path: PathBuf,
        stage: String,
        named: String,
    },
}

/// The Dockerfile at `path`, for stage `target` (None: the last). Err when
/// the file cannot be read or has no such stage.
pub fn read(path: &Path, target: Option<&str>) -> Result<Image, DockerfileError> {
    let text = std::fs::read_to_string(path).map_err(|source| DockerfileError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let stages = stages(&text);
    let stage = match target {
        Some(t) => stages
            .iter()
            .find(|s| s.name.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(t)))
            .ok_or_else(|| {
                let names: Vec<&str> = stages.iter().filter_map(|s| s.name.as_deref()).collect();
                DockerfileError::NoStage {
                    path: path.to_path_buf(),
                    stage: t.to_string(),
                    named: if names.is_empty() {
                        "none".to_string()
                    } else {
                        names.join(", ")
                    },
                }
            })?,
        None => match stages.last() {
            Some(s) => s,
            None => return Ok(Image::default()),
        },
    };
    let command = match (&stage.entrypoint, &stage.cmd) {
        (Some(Form::Exec(ep)), Some(Form::Exec(c))) => {
            let argv: Vec<&String> = ep.iter().chain(c).collect();
            Some((strings(argv), false))
        }
        (Some(Form::Exec(ep)), _) => Some((strings(ep), false)),
        (Some(Form::Shell(sh)), _) | (None, Some(Form::Shell(sh))) => {
            Some((sh.as_str().into(), true))
        }
        (None, Some(Form::Exec(c))) => Some((strings(c), false)),
        (None, None) => None,
    };
    Ok(Image {
        command,
        expose: stage.expose,
        workdir: stage.workdir.clone(),
    })
}

/// Logical instructions: continuation lines joined, comments and heredoc
/// bodies left out.
fn instructions(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = text.lines();
    while let Some(first) = lines.next() {
        let trimmed = first.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let mut line = trimmed.to_string();
        while line.ends_with('\\') {
            line.pop();
            match lines.by_ref().find(|l| !l.trim_start().starts_with('#')) {
                Some(next) => {
                    line.push(' ');
                    line.push_str(next.trim());
                }
                None => break,
            }
        }
        for word in heredoc_words(&line) {
            // `<<-` allows the terminator to be indented.
            for body in lines.by_ref() {
                if body.trim() == word {
                    break;
                }
            }
        }
        out.push(line);
    }
    out
}

/// The terminators of `<<EOF` / `<<-"EOF"` heredocs opened on a line.
fn heredoc_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("<<") {
        let after = rest[i + 2..].trim_start_matches('-');
        let after = after.trim_start_matches(['"', '\'']);
        let word: String = after
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !word.is_empty() {
            words.push(word);
        }
        rest = &rest[i + 2..];
    }
    words
}

fn stages(text: &str) -> Vec<Stage> {
    let mut stages: Vec<Stage> = Vec::new();
    for line in instructions(text) {
        let (instr, rest) = line.split_once(char::is_whitespace).unwrap_or((&line, ""));
        let rest = rest.trim();
        let instr = instr.to_ascii_uppercase();
        if instr == "FROM" {
            let words: Vec<&str> = rest
                .split_whitespace()
                .filter(|w| !w.starts_with("--"))
                .collect();
            let base = words.first().copied().unwrap_or_default();
            let name = match words.as_slice() {
                [_, kw, name, ..] if kw.eq_ignore_ascii_case("as") => Some(name.to_string()),
                _ => None,
            };
            // Built on an earlier stage: it starts with what that one has.
            let mut stage = stages
                .iter()
                .rev()
                .find(|s| {
                    s.name
                        .as_deref()
                        .is_some_and(|n| n.eq_ignore_ascii_case(base))
                })
                .cloned()
                .unwrap_or_default();
            stage.name = name;
            stage.own_cmd = false;
            stages.push(stage);
            continue;
        }
        let Some(stage) = stages.last_mut() else {
            continue;
        };
        match instr.as_str() {
            "ENTRYPOINT" => {
                stage.entrypoint = Some(Form::parse(rest));
                if !stage.own_cmd {
                    stage.cmd = None;
                }
            }
            "CMD" => {
                stage.cmd = Some(Form::parse(rest));
                stage.own_cmd = true;
            }
            "EXPOSE" => {
                stage.expose = rest
                    .split_whitespace()
                    .next()
                    .and_then(|p| p.split('/').next()?.parse().ok());
            }
            "WORKDIR" => {
                let dir = rest.trim_matches('"');
                stage.workdir = Some(match &stage.workdir {
                    Some(base) if !dir.starts_with('/') => {
                        format!("{}/{dir}", base.trim_end_matches('/'))
                    }
                    _ => dir.to_string(),
                });
            }
            _ => {}
        }
    }
    stages
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(
        text: &str,
        target: Option<&str>,
    ) -> Result<(Option<String>, Option<u16>), DockerfileError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("Dockerfile");
        std::fs::write(&path, text).unwrap();
        let d = read(&path, target)?;
        Ok((
            d.command.map(|(v, shell)| format!("{v} shell={shell}")),
            d.expose,
        ))
    }

    #[test]
    fn entrypoint_and_cmd_of_the_last_stage() {
        let (cmd, port) = image(
            "FROM node:20 AS build\nCMD [\"npm\", \"test\"]\n\
             FROM python:3.12\nEXPOSE 8080/tcp\nENTRYPOINT [\"python\", \"-m\"]\n\
             CMD [\"api\", \\\n  \"--reload\"]\n",
            None,
        )
        .unwrap();
        assert_eq!(
            cmd.as_deref(),
            Some(r#"["python", "-m", "api", "--reload"] shell=false"#)
        );
        assert_eq!(port, Some(8080));
        let (cmd, _) = image("FROM node:20\nCMD node server.js --port $PORT\n", None).unwrap();
        assert_eq!(
            cmd.as_deref(),
            Some(r#""node server.js --port $PORT" shell=true"#)
        );
        assert_eq!(image("FROM scratch\n", None).unwrap(), (None, None));
    }

    const MULTI: &str = "FROM golang:1.18 AS builder\nWORKDIR /code\nEXPOSE 8000\n\
        CMD [\"/code/bin/backend\"]\n\
        FROM builder as dev-envs\nRUN <<EOF\napk add git\nCMD [\"not\", \"an\", \"instruction\"]\nEOF\n\
        FROM scratch\nCMD [\"/usr/local/bin/backend\"]\n";

    #[test]
    fn a_target_picks_its_stage_and_a_stage_inherits_from_its_base() {
        let cmd = |t| image(MULTI, t).unwrap().0;
        assert_eq!(
            cmd(Some("builder")).as_deref(),
            Some(r#"["/code/bin/backend"] shell=false"#)
        );
        // dev-envs is built FROM builder: its CMD and EXPOSE carry over, and
        // the heredoc's body is not an instruction.
        assert_eq!(
            image(MULTI, Some("dev-envs")).unwrap(),
            (
                Some(r#"["/code/bin/backend"] shell=false"#.into()),
                Some(8000)
            )
        );
        assert_eq!(
            cmd(None).as_deref(),
            Some(r#"["/usr/local/bin/backend"] shell=false"#)
        );
        assert!(image(MULTI, Some("prod"))
            .unwrap_err()
            .to_string()
            .contains("no stage \"prod\""));
    }

    #[test]
    fn an_entrypoint_drops_an_inherited_cmd() {
        let (cmd, _) = image(
            "FROM python AS base\nCMD [\"app.py\"]\nFROM base\nENTRYPOINT [\"python3\", \"serve.py\"]\n",
            None,
        )
        .unwrap();
        assert_eq!(
            cmd.as_deref(),
            Some(r#"["python3", "serve.py"] shell=false"#)
        );
    }
}

//! Procfile (foreman, honcho, overmind): `name: command` lines, each run by
//! a shell in the Procfile's folder. As foreman does, a process whose command
//! uses `$PORT` gets its own port, from 5000 up in steps of 100; one that
//! sets it inline (`web: PORT=3000 bundle exec puma`) gets that port.

use crate::draft::{inline, setup_for, Draft, DraftService};

use super::{convert_vars, Ctx};

/// `PORT=3000 cmd` (or `env PORT=3000 cmd`): the port the command sets for
/// itself, in the assignments before its program.
pub fn inline_port(command: &str) -> Option<u16> {
    command
        .split_whitespace()
        .skip_while(|w| *w == "env")
        .take_while(|w| {
            w.split_once('=').is_some_and(|(k, _)| {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
        })
        .find_map(|w| {
            w.strip_prefix("PORT=")?
                .trim_matches(['"', '\''])
                .parse()
                .ok()
        })
        .filter(|&p: &u16| p > 0)
}

/// Whether the command reads the `PORT` it is given (`$PORT`, `${PORT}`,
/// `${PORT:-3000}`, `${PORT:="3000"}`…).
pub fn reads_port(command: &str) -> bool {
    command.match_indices("PORT").any(|(i, _)| {
        let before = &command[..i];
        let after = command[i + 4..].chars().next();
        let whole = after.is_none_or(|c| !(c.is_ascii_alphanumeric() || c == '_'));
        whole && (before.ends_with('$') || before.ends_with("${"))
    })
}

/// `name: command` lines (and comments) only.
pub fn looks_like(text: &str) -> bool {
    let mut entries = 0;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if parse_line(line).is_none() {
            return false;
        }
        entries += 1;
    }
    entries > 0
}

fn parse_line(line: &str) -> Option<(&str, &str)> {
    let (name, cmd) = line.split_once(':')?;
    let name = name.trim();
    let valid = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    (valid && !cmd.trim().is_empty()).then(|| (name, cmd.trim()))
}

pub fn convert(text: &str, ctx: &mut Ctx) -> Draft {
    let dir = ctx.source_path(".");
    convert_in(text, &dir, None, ctx)
}

/// The Procfile's processes as services running in `dir`; with a `prefix`
/// (a folder's name, when `init` finds several), `web` (or the only
/// process, or one named like the folder) is named after it and the others
/// `PREFIX-NAME`.
pub fn convert_in(text: &str, dir: &std::path::Path, prefix: Option<&str>, ctx: &mut Ctx) -> Draft {
    let mut draft = Draft::default();
    let rel = ctx.rel(dir);
    let mut index = 0u16;
    let mut inline_ports: Vec<u16> = Vec::new();
    let single = text
        .lines()
        .filter(|l| parse_line(l.trim()).is_some() && !l.trim().starts_with('#'))
        .count()
        == 1;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((kind, command)) = parse_line(line) else {
            ctx.warn(format!("line {line:?} is not `name: command`; skipped"));
            continue;
        };
        let name = match prefix {
            Some(p) if kind == "web" || kind == p || single => p.to_string(),
            Some(p) => format!("{p}-{kind}"),
            None => kind.to_string(),
        };
        let mut svc = DraftService::new(&name);
        svc.note(format!("from the Procfile's `{kind}` process"));
        if rel != "." {
            svc.set("dir", rel.as_str());
        }
        if let Some(setup) = setup_for(dir) {
            svc.set("setup", setup);
        }
        // Shell-only forms (`${PORT:=3000}`) stay the shell's.
        let converted =
            convert_vars(command, true, &["PORT"]).unwrap_or_else(|_| command.to_string());
        svc.set("command", converted.as_str());
        svc.set("shell", true);
        let port = match inline_port(command) {
            Some(p) if inline_ports.contains(&p) => {
                ctx.warn(format!(
                    "process `{kind}` sets PORT={p} too, and two services cannot share a port: \
                     it is written without one (its command still sets PORT={p})"
                ));
                None
            }
            Some(p) => {
                inline_ports.push(p);
                if ctx.ports.reserve(p) == p {
                    svc.note(format!("its command sets PORT={p}"));
                    Some(p)
                } else {
                    ctx.warn(format!(
                        "process `{kind}` sets PORT={p}, which another service here has: \
                         it is written without a port"
                    ));
                    None
                }
            }
            None if reads_port(command) => Some(ctx.ports.claim(5000 + 100 * index)),
            None => None,
        };
        if let Some(port) = port {
            svc.set("port", i64::from(port));
            svc.set_noted(
                "health",
                inline([("tcp", true.into())]),
                "ready when it accepts connections on its port",
            );
        }
        if kind == "release" {
            svc.set("oneshot", true);
            svc.note("a release task: runs once to completion");
        }
        index += 1;
        draft.services.push(svc);
    }
    // As on Heroku, the release task finishes before the processes start.
    if let Some(release) = draft
        .services
        .iter()
        .find(|s| s.table.contains_key("oneshot"))
        .map(|s| s.name.clone())
    {
        for svc in draft.services.iter_mut().filter(|s| s.name != release) {
            svc.add_dependency(&release);
        }
    }
    draft
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_set_inline_and_ports_read() {
        assert_eq!(
            inline_port("PORT=3000 bundle exec puma -C config/puma.rb"),
            Some(3000)
        );
        assert_eq!(
            inline_port("RAILS_ENV=dev PORT=4000 yarn start"),
            Some(4000)
        );
        assert_eq!(inline_port("env PORT=5001 node app.js"), Some(5001));
        assert_eq!(inline_port("node app.js PORT=3000"), None);
        assert_eq!(inline_port("bin/rails s -p 3000"), None);
        assert!(reads_port("bundle exec rails server -p $PORT"));
        assert!(reads_port("unicorn_rails -p ${PORT:=\"3000\"}"));
        assert!(!reads_port("PORT=3000 bundle exec puma"));
        assert!(!reads_port("echo $PORTAL"));
    }
}

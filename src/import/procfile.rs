//! Procfile (foreman, honcho, overmind): `name: command` lines, each run by
//! a shell in the Procfile's folder. As foreman does, a process whose command
//! uses `$PORT` gets its own port, from 5000 up in steps of 100.

use crate::draft::{inline, setup_for, Draft, DraftService};

use super::Ctx;

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
        svc.set("command", command);
        svc.set("shell", true);
        if command.contains("$PORT") || command.contains("${PORT}") {
            let port = ctx.ports.claim(5000 + 100 * index);
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

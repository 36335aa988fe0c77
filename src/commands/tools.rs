//! Commands about fpctl itself rather than a stack: shell completions (and
//! the names they offer), the man page and the JSON Schema of services.toml.

use std::io::Write;
use std::path::PathBuf;

use clap::CommandFactory;
use clap_complete::env::{Bash, Elvish, EnvCompleter, Fish, Powershell, Zsh};

use crate::cli::{Cli, Shell};
use crate::{config, Error, Outcome, Result};

/// The variable the generated scripts set when they call back into fpctl
/// for candidates (clap_complete's protocol; its default name, COMPLETE, is
/// too common to claim).
pub const COMPLETE_VAR: &str = "FPCTL_COMPLETE";

pub fn completions(shell: Shell) -> Result<Outcome> {
    let completer: &dyn EnvCompleter = match shell {
        Shell::Bash => &Bash,
        Shell::Zsh => &Zsh,
        Shell::Fish => &Fish,
        Shell::Powershell => &Powershell,
        Shell::Elvish => &Elvish,
    };
    // The script calls this same binary back: by name when run from PATH,
    // by absolute path when run by path.
    let argv0 = PathBuf::from(std::env::args_os().next().unwrap_or_else(|| "fpctl".into()));
    let program = if argv0.components().count() > 1 {
        std::env::current_dir().map_or(argv0.clone(), |cwd| cwd.join(&argv0))
    } else {
        argv0
    };
    let mut script = Vec::new();
    completer
        .write_registration(
            COMPLETE_VAR,
            "fpctl",
            "fpctl",
            &program.to_string_lossy(),
            &mut script,
        )
        .and_then(|()| write_stdout(&script))
        .map_err(|e| Error::other("cannot write the completion script", e))?;
    Ok(Outcome::Success)
}

pub fn man() -> Result<Outcome> {
    let page = man_page().map_err(|e| Error::other("cannot render the man page", e))?;
    write_stdout(&page).map_err(|e| Error::other("cannot write the man page", e))?;
    Ok(Outcome::Success)
}

/// Write to stdout; a reader that went away (`| head`) is not an error.
fn write_stdout(bytes: &[u8]) -> std::io::Result<()> {
    match std::io::stdout().write_all(bytes) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// One page: fpctl's own, then a section per command (with its aliases and
/// options), all generated from the CLI definition.
fn man_page() -> std::io::Result<Vec<u8>> {
    let cli = Cli::command();
    let mut page = Vec::new();
    clap_mangen::Man::new(cli.clone()).render(&mut page)?;
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub.get_name();
        let aliases: Vec<&str> = sub.get_visible_aliases().collect();
        writeln!(page, ".SH \"COMMAND: {}\"", name.to_uppercase())?;
        if !aliases.is_empty() {
            writeln!(page, "Aliases: {}", aliases.join(", "))?;
            writeln!(page, ".PP")?;
        }
        let man = clap_mangen::Man::new(sub.clone().bin_name(format!("fpctl {name}")));
        let mut part = Vec::new();
        man.render_synopsis_section(&mut part)?;
        man.render_description_section(&mut part)?;
        man.render_options_section(&mut part)?;
        // Sections of a command are subsections of the page.
        let part = String::from_utf8_lossy(&part).replace("\n.SH ", "\n.SS ");
        let part = part
            .strip_prefix(".SH ")
            .map_or(part.clone(), |p| format!(".SS {p}"));
        page.extend_from_slice(part.as_bytes());
    }
    Ok(page)
}

pub fn schema() -> Result<Outcome> {
    println!("{}", config::json_schema());
    Ok(Outcome::Success)
}

/// A command line that another tool's users type (docker compose, pm2,
/// process-compose) and fpctl spells differently: a tip toward fpctl's own
/// spelling, added to clap's usage error.
pub fn add_habit_tip(e: &mut clap::Error) {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    if e.kind() != ErrorKind::InvalidSubcommand {
        return;
    }
    let Some(ContextValue::String(word)) = e.get(ContextKind::InvalidSubcommand) else {
        return;
    };
    let tip = match word.as_str() {
        "config" | "show" => {
            "`fpctl validate` checks services.toml, `fpctl graph` shows its tiers and dependencies"
        }
        "rm" | "kill" | "delete" => {
            "`fpctl stop [SVC…]` stops services and every process they started"
        }
        "ls" | "list" | "describe" | "inspect" => {
            "`fpctl check [SVC…]` shows every service's state (`--json` for all fields)"
        }
        "top" | "stats" | "monit" => "`fpctl check --wide` shows memory and CPU",
        "run" => "`fpctl exec SVC -- CMD…` runs a command in a service's environment",
        "attach" => "`fpctl up` attaches to a running stack and shows its logs live",
        _ => return,
    };
    let mut tips = match e.get(ContextKind::Suggested) {
        Some(ContextValue::StyledStrs(v)) => v.clone(),
        _ => Vec::new(),
    };
    tips.push(tip.into());
    e.insert(ContextKind::Suggested, ContextValue::StyledStrs(tips));
}

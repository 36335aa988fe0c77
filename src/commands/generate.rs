//! `fpctl init` and `fpctl import`: draft a services.toml, check it with the
//! same validation `fpctl validate` runs, then write or print it.

use std::path::{Path, PathBuf};

use crate::config::{self, FILE_NAME};
use crate::discover;
use crate::draft::{Draft, PortPlan};
use crate::import;
use crate::{Error, Outcome, Result};

pub fn init(dir: Option<&Path>, dry_run: bool, force: bool) -> Result<Outcome> {
    let dir = dir.unwrap_or(Path::new("."));
    let root = std::fs::canonicalize(dir)
        .ok()
        .filter(|r| r.is_dir())
        .ok_or_else(|| Error::Usage(format!("{} is not a folder", dir.display())))?;
    let out = root.join(FILE_NAME);
    refuse_overwrite(&out, dry_run, force)?;
    let (draft, report) = discover::discover(&root)?;
    section("found", &report.found);
    section("guessed (marked \"guess\" in the file)", &report.guessed);
    section("could not decide", &report.undecided);
    emit(&draft, &out, dry_run)
}

pub fn import(file: &Path, output: Option<&Path>, dry_run: bool, force: bool) -> Result<Outcome> {
    let out = absolute(output.unwrap_or(Path::new(FILE_NAME)))?;
    refuse_overwrite(&out, dry_run, force)?;
    let out_dir = out.parent().unwrap_or(Path::new("/"));
    let mut ports = PortPlan::default();
    let mut imported = import::import_file(file, out_dir, &mut ports)?;
    for w in &imported.warnings {
        eprintln!("warning: {w}");
    }
    imported.draft.header.insert(
        0,
        format!(
            "Converted by `fpctl import` from the {} {}.",
            imported.format.label(),
            file.display()
        ),
    );
    emit(&imported.draft, &out, dry_run)
}

fn absolute(p: &Path) -> Result<PathBuf> {
    let cwd = std::env::current_dir().map_err(|e| Error::other("current folder", e))?;
    Ok(cwd.join(p))
}

fn refuse_overwrite(out: &Path, dry_run: bool, force: bool) -> Result<()> {
    if out.exists() && !dry_run && !force {
        return Err(Error::Usage(format!(
            "{} already exists; --force replaces it, --dry-run prints what would be written",
            out.display()
        )));
    }
    Ok(())
}

fn section(title: &str, lines: &[String]) {
    if lines.is_empty() {
        return;
    }
    eprintln!("{title}:");
    for l in lines {
        eprintln!("  {l}");
    }
}

/// Check the text as `fpctl validate` would, then print or write it. A
/// draft that does not validate is still written (to be fixed by hand), and
/// the command fails with the reasons.
fn emit(draft: &Draft, out: &Path, dry_run: bool) -> Result<Outcome> {
    let text = draft.render();
    let checked = config::load_str(out, text.clone());
    if dry_run {
        print!("{text}");
    } else {
        std::fs::write(out, &text).map_err(|e| Error::other(out.display(), e))?;
    }
    let config = checked
        .inspect_err(|_| eprintln!("{} needs editing before fpctl can use it:", out.display()))?;
    // Counted from the draft: replicas make more services than it has.
    let live = config.services.len();
    let stubs = draft.services.iter().filter(|s| s.stub).count();
    eprintln!(
        "{} {}: {live} service{} in {} tier{}{}; next: fpctl start",
        if dry_run { "would write" } else { "wrote" },
        out.display(),
        if live == 1 { "" } else { "s" },
        config.tiers.len(),
        if config.tiers.len() == 1 { "" } else { "s" },
        if stubs > 0 {
            format!(
                ", and {stubs} commented stub{} to finish by hand",
                if stubs == 1 { "" } else { "s" }
            )
        } else {
            String::new()
        },
    );
    Ok(Outcome::Success)
}

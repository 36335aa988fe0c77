//! `fpctl exec SVC -- CMD…`: a one-off command in a service's environment.

use std::os::unix::process::CommandExt;
use std::path::Path;

use crate::{graph, setup, Error, Outcome, Result};

/// Replace this process with `command`, run as fpctl would launch `service`:
/// in its dir, with its env, `PORT`, every `FPCTL_PORT_*` and its venv / npm
/// PATH. Its exit code (or signal) is therefore the command's own.
pub fn exec(file: Option<&Path>, service: &str, command: &[String]) -> Result<Outcome> {
    let (config, _) = super::load_running(file)?;
    // The same "no service named … (did you mean …)" as every command.
    graph::select(&config, &[service.to_string()], &[])?;
    // A replicated service's name: its first instance, said on stderr.
    let instances = config.expand_names(&[service.to_string()]);
    let Some((_, svc)) = instances.first().and_then(|n| config.service(n)) else {
        return Err(Error::Usage(format!("no service named \"{service}\"")));
    };
    if svc.name != service {
        eprintln!(
            "note: \"{service}\" runs {} instances; running in {} (name one to choose: {})",
            instances.len(),
            svc.name,
            instances.join(", ")
        );
    }
    let (program, args) = command
        .split_first()
        .ok_or_else(|| Error::Usage("exec needs a command after `--`".into()))?;
    let err = std::process::Command::new(program)
        .args(args)
        .current_dir(&svc.dir)
        .envs(setup::service_env(svc))
        .exec();
    Err(Error::Usage(format!(
        "cannot run {program:?} in {} (service \"{service}\"): {err}",
        svc.dir.display()
    )))
}

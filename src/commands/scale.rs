//! `fpctl scale NAME=N…`: change how many instances of a replicated service
//! run, live: the new count is recorded (see `crate::scale`) and the running
//! supervisor reloads, which starts the new instances and stops the extra
//! ones like any other edit.

use std::path::Path;

use super::load;
use crate::control::Client;
use crate::{scale, state};
use crate::{Error, Outcome, Result};

pub fn scale(file: Option<&Path>, args: Vec<String>) -> Result<Outcome> {
    let config = load(file)?;
    let before = scale::read(&config.root);
    let mut counts = before.clone();
    for arg in &args {
        let (name, n) = scale::parse(arg).map_err(|e| Error::Usage(e.to_string()))?;
        let replicated = config
            .services
            .iter()
            .any(|s| s.group.as_ref().is_some_and(|(g, _)| *g == name));
        if !replicated {
            let hint = match config.service(&name) {
                Some(_) => format!(
                    "service \"{name}\" has no replicas: add replicas = N to [services.{name}] in {} to scale it",
                    config.path.display()
                ),
                None => format!("no replicated service named \"{name}\" in {}", config.path.display()),
            };
            return Err(Error::Usage(hint));
        }
        counts.insert(name, n);
    }
    let write = |counts: &scale::Counts| {
        scale::write(&config.root, counts)
            .map_err(|e| Error::other("cannot record the instance counts under .fpctl", e))
    };
    write(&counts)?;
    // The new counts must make a valid stack (ports in range, free).
    if let Err(e) = load(file) {
        write(&before)?;
        return Err(e);
    }
    if Client::connect(&state::socket_path(&config)).is_none() {
        println!("no supervisor is running; `fpctl start` runs the new counts");
        return Ok(Outcome::Success);
    }
    super::reload(file, false)
}

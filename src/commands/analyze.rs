//! `fpctl analyze`: the critical chain of the last start, from the record
//! the running supervisor kept of it (see `status::StartRecord`).

use std::path::Path;

use crate::control::{Client, ErrorKind, Request, Response};
use crate::status::Analysis;
use crate::{output, state};
use crate::{Error, Outcome, Result};

pub fn analyze(file: Option<&Path>, json: bool) -> Result<Outcome> {
    let (config, _) = super::load_running(file)?;
    let Some(mut client) = Client::connect(&state::socket_path(&config)) else {
        return Err(Error::Service(format!(
            "no supervisor is running for \"{}\" ({}), so no start is recorded: \
             `fpctl start` starts the stack, then `fpctl analyze` shows how its start went",
            config.project.name,
            config.path.display()
        )));
    };
    let reply = client
        .request(Request::Analyze, |_| {})
        .map_err(|e| Error::other("lost the supervisor", e))?;
    let record = match reply {
        Response::Analysis { record } => record,
        Response::Error {
            kind: ErrorKind::BadRequest,
            ..
        } => {
            return Err(Error::Service(
                "the running supervisor is older than `fpctl analyze` and keeps no record of its start; \
                 `fpctl stop` then `fpctl start` runs one that does"
                    .into(),
            ))
        }
        Response::Error { kind, message } => return Err(Error::Refused { kind, message }),
        other => {
            return Err(Error::Other(format!(
                "unexpected answer from the supervisor: {other:?}"
            )))
        }
    };
    let Some(record) = record else {
        return Err(Error::Service(
            "the supervisor has recorded no start yet: `fpctl start` starts the stack, \
             then `fpctl analyze` shows how its start went"
                .into(),
        ));
    };
    let analysis = Analysis::of(&record);
    if json {
        let text = serde_json::to_string(&analysis).expect("an analysis serialises");
        println!("{text}");
    } else {
        print!("{}", output::analysis_text(&analysis));
    }
    Ok(Outcome::Success)
}

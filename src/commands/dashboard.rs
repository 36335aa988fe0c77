//! `fpctl dashboard`: have the supervisor serve its HTTP API and dashboard
//! (starting a supervisor if none runs), print the URL and token, and open
//! a browser where there is one.

use std::path::Path;
use std::process::{Command, Stdio};

use super::lifecycle::connect_or_spawn;
use crate::control::{Request, Response};
use crate::{Error, Outcome, Result};

pub fn dashboard(file: Option<&Path>, no_open: bool) -> Result<Outcome> {
    let (config, _) = super::load_running(file)?;
    let mut client = connect_or_spawn(&config)?;
    let reply = client
        .request(Request::Api, |_| {})
        .map_err(|e| Error::other("lost the supervisor", e))?;
    let (url, token, codes) = match reply {
        Response::Api { url, token, codes } => (url, token, codes),
        Response::Error { kind, message } => return Err(Error::Refused { kind, message }),
        other => {
            return Err(Error::Other(format!(
                "unexpected reply from the supervisor: {other:?}"
            )))
        }
    };
    let [for_browser, for_print] = codes.as_slice() else {
        return Err(Error::Other(
            "the supervisor gave no one-time codes for the dashboard".into(),
        ));
    };
    // A browser's command line can be read by every local user: it gets a
    // code that the page trades once for the token (in the fragment, which
    // browsers never send), never the token.
    println!("dashboard: {url}#code={for_print}  (good once, for 10 minutes)");
    println!("API:       {url}api/v1/  (header: Authorization: Bearer {token})");
    if !no_open {
        open_browser(&format!("{url}#code={for_browser}"));
    }
    Ok(Outcome::Success)
}

/// Best effort: `$BROWSER`, else xdg-open when a display is there.
fn open_browser(page: &str) {
    let graphical =
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    let opener = match std::env::var("BROWSER") {
        Ok(b) if !b.trim().is_empty() => b,
        _ if graphical => "xdg-open".to_string(),
        _ => return,
    };
    let _ = Command::new(opener)
        .arg(page)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

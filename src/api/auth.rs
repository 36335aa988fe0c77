//! Who may use the API: the bearer token (configured, or generated at first
//! use into `.fpctl/` with mode 0600), the `Host` header (against DNS
//! rebinding) and the `Origin` of WebSocket upgrades and POSTs (against
//! cross-site requests).

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

use crate::config::Config;

pub const TOKEN_FILE: &str = "api-token";

/// The API token: the configured one, else the one in `.fpctl/api-token`,
/// created (random, 0600) if missing.
pub fn token(config: &Config) -> Result<String, String> {
    if let Some(t) = &config.project.api.token {
        return Ok(t.clone());
    }
    let path = config.state_dir().join(TOKEN_FILE);
    if let Ok(t) = std::fs::read_to_string(&path) {
        if !t.trim().is_empty() {
            return Ok(t.trim().to_string());
        }
    }
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| format!("cannot read /dev/urandom for the API token: {e}"))?;
    let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    crate::state::ensure_dirs(config)
        .map_err(|e| format!("cannot create {}: {e}", config.state_dir().display()))?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(token.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    Ok(token)
}

/// `host:port` to put in a URL for a listener bound to `bound`.
pub fn url_host(bound: SocketAddr) -> String {
    if bound.ip().is_unspecified() {
        format!("127.0.0.1:{}", bound.port())
    } else {
        bound.to_string()
    }
}

/// The checks of one listener: its port, and the token in force (a reload
/// may change it; the next request sees the new one).
#[derive(Clone)]
pub struct Guard {
    token: watch::Receiver<Arc<str>>,
    port: u16,
}

impl Guard {
    pub fn new(token: watch::Receiver<Arc<str>>, bound: SocketAddr) -> Guard {
        Guard {
            token,
            port: bound.port(),
        }
    }

    /// A `Host` (or origin authority) a browser may legitimately send: an IP
    /// literal or `localhost`, on our port. A DNS name could be rebound to
    /// 127.0.0.1 by a hostile page, so none is accepted.
    fn host_ok(&self, authority: &str) -> bool {
        let Some((host, port)) = authority.rsplit_once(':') else {
            return false;
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        port.parse::<u16>().ok() == Some(self.port)
            && (host.eq_ignore_ascii_case("localhost") || host.parse::<IpAddr>().is_ok())
    }

    fn token_ok(&self, given: &str) -> bool {
        // Constant time in the token's length; no token yet refuses all.
        let token = Arc::clone(&self.token.borrow());
        let (a, b) = (given.as_bytes(), token.as_bytes());
        !b.is_empty()
            && a.len() == b.len()
            && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

fn refuse(status: StatusCode, message: &str) -> Response {
    let mut r = (status, axum::Json(serde_json::json!({ "error": message }))).into_response();
    if status == StatusCode::UNAUTHORIZED {
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            header::HeaderValue::from_static("Bearer"),
        );
    }
    r
}

/// Every request passes here first.
pub async fn check(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if !guard.host_ok(host) {
        return refuse(StatusCode::FORBIDDEN, "Host header not accepted");
    }
    let upgrade = headers.contains_key(header::UPGRADE);
    if request.method() == Method::POST || upgrade {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let same = origin
                .to_str()
                .ok()
                .and_then(|o| o.strip_prefix("http://"))
                .is_some_and(|a| guard.host_ok(a));
            if !same {
                return refuse(StatusCode::FORBIDDEN, "cross-origin request refused");
            }
        }
    }
    // The page itself holds no data; everything it shows needs the token.
    if request.uri().path() == "/" {
        return next.run(request).await;
    }
    let bearer = headers
        .get(header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "));
    // Browsers cannot set headers on a WebSocket: the stream also takes
    // the token as `?token=`.
    let query = (request.uri().path() == "/api/v1/stream")
        .then(|| request.uri().query())
        .flatten()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("token=")));
    match bearer.or(query) {
        None => refuse(
            StatusCode::UNAUTHORIZED,
            "missing bearer token (see `fpctl dashboard`)",
        ),
        Some(t) if !guard.token_ok(t) => refuse(StatusCode::UNAUTHORIZED, "wrong token"),
        Some(_) => next.run(request).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let (_token, rx) = watch::channel(Arc::from("t"));
        let g = Guard::new(rx, "127.0.0.1:7000".parse().unwrap());
        assert!(g.host_ok("127.0.0.1:7000"));
        assert!(g.host_ok("localhost:7000"));
        assert!(g.host_ok("[::1]:7000"));
        assert!(!g.host_ok("127.0.0.1:7001"));
        assert!(!g.host_ok("evil.example:7000"));
        assert!(!g.host_ok("127.0.0.1"));
    }
}

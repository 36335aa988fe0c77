//! Who may use the API: the bearer token (configured, or generated at first
//! use into `.fpctl/` with mode 0600), the `Host` header (against DNS
//! rebinding) and the `Origin` of WebSocket upgrades and POSTs (against
//! cross-site requests). Also the one-time codes that `fpctl dashboard`
//! hands a browser instead of the token: a browser's command line is
//! visible to every local user, so the token never goes there.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

use crate::config::Config;

pub const TOKEN_FILE: &str = "api-token";

/// The API token: the configured one, else the one in `.fpctl/api-token`,
/// created (random, 0600) if missing.
pub fn token(config: &Config) -> Result<String, super::ApiError> {
    if let Some(t) = &config.project.api.token {
        return Ok(t.clone());
    }
    let path = config.state_dir().join(TOKEN_FILE);
    if let Ok(t) = std::fs::read_to_string(&path) {
        if !t.trim().is_empty() {
            return Ok(t.trim().to_string());
        }
    }
    let token = random_hex().map_err(super::ApiError::Random)?;
    crate::state::ensure_dirs(config).map_err(|source| super::ApiError::StateDir {
        path: config.state_dir(),
        source,
    })?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .and_then(|mut f| f.write_all(token.as_bytes()))
        .and_then(|()| std::fs::rename(&tmp, &path))
        .map_err(|source| super::ApiError::WriteToken {
            path: path.clone(),
            source,
        })?;
    Ok(token)
}

/// 32 random bytes, in hex.
pub fn random_hex() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// Whether two secrets are equal, in time that depends on their length only.
fn same_secret(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How long a code from `fpctl dashboard` stays good, unused.
pub const CODE_LIFETIME: Duration = Duration::from_secs(600);
/// Codes kept at once (the oldest go first).
const MAX_CODES: usize = 16;

/// The one-time codes handed out and not yet used.
#[derive(Default)]
pub struct Codes(Mutex<Vec<(String, Instant)>>);

impl Codes {
    /// A new code, good once within [`CODE_LIFETIME`].
    pub fn issue(&self) -> Result<String, super::ApiError> {
        let code = random_hex().map_err(super::ApiError::Random)?;
        let mut codes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        codes.retain(|(_, at)| at.elapsed() < CODE_LIFETIME);
        if codes.len() >= MAX_CODES {
            codes.remove(0);
        }
        codes.push((code.clone(), Instant::now()));
        Ok(code)
    }

    /// Use `code`: true once, for a code issued within its lifetime.
    pub fn redeem(&self, code: &str) -> bool {
        let mut codes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        codes.retain(|(_, at)| at.elapsed() < CODE_LIFETIME);
        // Compared with every code, so the time says nothing of which.
        let mut found = None;
        for (i, (c, _)) in codes.iter().enumerate() {
            if same_secret(c, code) {
                found = Some(i);
            }
        }
        match found {
            Some(i) => {
                codes.remove(i);
                true
            }
            None => false,
        }
    }
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

    /// A `Host` (or origin authority) a browser may legitimately send to
    /// this API: on our port, `localhost`, `127.0.0.1`, `[::1]`, or the
    /// address the request came in on (`arrived`: the API's own host when it
    /// listens on every address). Another port is another site; another
    /// address is not this API; and a DNS name could be rebound to
    /// 127.0.0.1 by a hostile page.
    fn host_ok(&self, authority: &str, arrived: Option<IpAddr>) -> bool {
        let Some((host, port)) = authority.rsplit_once(':') else {
            return false;
        };
        if port.parse::<u16>().ok() != Some(self.port) {
            return false;
        }
        if host.eq_ignore_ascii_case("localhost") {
            return true;
        }
        let ip = match host.strip_prefix('[') {
            Some(v6) => v6
                .strip_suffix(']')
                .and_then(|h| h.parse::<Ipv6Addr>().ok())
                .map(IpAddr::V6),
            None => host.parse::<Ipv4Addr>().ok().map(IpAddr::V4),
        };
        ip.is_some_and(|ip| {
            ip == IpAddr::V4(Ipv4Addr::LOCALHOST)
                || ip == IpAddr::V6(Ipv6Addr::LOCALHOST)
                || Some(ip.to_canonical()) == arrived
        })
    }

    fn token_ok(&self, given: &str) -> bool {
        // Constant time in the token's length; no token yet refuses all.
        let token = Arc::clone(&self.token.borrow());
        !token.is_empty() && same_secret(given, &token)
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
    let arrived = request
        .extensions()
        .get::<super::listen::ArrivedAt>()
        .map(|a| a.0);
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if !guard.host_ok(host, arrived) {
        return refuse(StatusCode::FORBIDDEN, "Host header not accepted");
    }
    let upgrade = headers.contains_key(header::UPGRADE);
    if request.method() == Method::POST || upgrade {
        if let Some(origin) = headers.get(header::ORIGIN) {
            let same = origin
                .to_str()
                .ok()
                .and_then(|o| o.strip_prefix("http://"))
                .is_some_and(|a| guard.host_ok(a, arrived));
            if !same {
                return refuse(StatusCode::FORBIDDEN, "cross-origin request refused");
            }
        }
    }
    // The page itself holds no data; everything it shows needs the token,
    // which the page gets for a one-time code.
    if matches!(request.uri().path(), "/" | SESSION) {
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

/// Where the page trades a one-time code for the token.
pub const SESSION: &str = "/api/v1/session";

#[derive(serde::Deserialize)]
pub struct Redeem {
    code: String,
}

/// `POST /api/v1/session` with `{"code": …}`: the token, once per code.
pub async fn session(
    State((codes, guard)): State<(Arc<Codes>, Guard)>,
    axum::Json(body): axum::Json<Redeem>,
) -> Response {
    if !codes.redeem(&body.code) {
        return refuse(
            StatusCode::UNAUTHORIZED,
            "this dashboard link was used already or has expired: run `fpctl dashboard` for a new one",
        );
    }
    let token = guard.token.borrow().to_string();
    (
        [(header::CACHE_CONTROL, "no-store")],
        axum::Json(serde_json::json!({ "token": token })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let (_token, rx) = watch::channel(Arc::from("t"));
        let g = Guard::new(rx, "127.0.0.1:7000".parse().unwrap());
        assert!(g.host_ok("127.0.0.1:7000", None));
        assert!(g.host_ok("localhost:7000", None));
        assert!(g.host_ok("LocalHost:7000", None));
        assert!(g.host_ok("[::1]:7000", None));
        assert!(!g.host_ok("127.0.0.1:7001", None));
        assert!(!g.host_ok("localhost:7001", None));
        assert!(!g.host_ok("evil.example:7000", None));
        assert!(!g.host_ok("127.0.0.1", None));
        // Another address on our port is not this API...
        assert!(!g.host_ok("10.1.2.3:7000", None));
        assert!(!g.host_ok("127.0.0.2:7000", None));
        assert!(!g.host_ok("0.0.0.0:7000", None));
        assert!(!g.host_ok("[::2]:7000", None));
        // ...unless the request came in on it.
        let here = Some("10.1.2.3".parse().unwrap());
        assert!(g.host_ok("10.1.2.3:7000", here));
        assert!(!g.host_ok("10.1.2.4:7000", here));
        assert!(!g.host_ok("10.1.2.3:7001", here));
    }

    #[test]
    fn a_code_is_good_once() {
        let codes = Codes::default();
        let a = codes.issue().unwrap();
        let b = codes.issue().unwrap();
        assert_ne!(a, b);
        assert!(!codes.redeem("nope"));
        assert!(codes.redeem(&a));
        assert!(!codes.redeem(&a), "replayed");
        assert!(codes.redeem(&b));
        // The oldest go first when too many are out.
        let first = codes.issue().unwrap();
        for _ in 0..MAX_CODES {
            codes.issue().unwrap();
        }
        assert!(!codes.redeem(&first));
    }
}

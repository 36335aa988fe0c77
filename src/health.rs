//! Health probes: http(s), tcp, exec and log. One probe is one future with
//! its own timeout; callers run as many as they like concurrently. A probe
//! only observes; what a result means for a service is the supervisor's
//! business.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;

use crate::config::{Probe, Service};
use crate::process::{self, Exit, SpawnSpec};

mod http;
mod log;

/// What one probe saw.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    pub verdict: Verdict,
    /// Short and human: JSON status, HTTP code, probe output or error.
    pub detail: String,
    pub latency: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Passes.
    Healthy,
    /// Answers, but says it is not healthy (wrong status, JSON field).
    Unhealthy,
    /// Does not answer at all.
    Down,
    /// fpctl could not make the probe: its own file descriptors, buffers or
    /// memory ran out. Says nothing about the service.
    Inconclusive,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Healthy => "healthy",
            Verdict::Unhealthy => "unhealthy",
            Verdict::Down => "down",
            Verdict::Inconclusive => "inconclusive",
        }
    }
}

/// Run one probe of `service` with its configured timeout.
pub async fn probe(service: &Service, probe: &Probe, timeout: Duration) -> ProbeResult {
    let started = Instant::now();
    let (verdict, detail) = match tokio::time::timeout(timeout, run(service, probe, timeout)).await
    {
        Ok(r) => r,
        Err(_) => (
            Verdict::Down,
            format!("no answer within {}", crate::human::duration_short(timeout)),
        ),
    };
    ProbeResult {
        verdict,
        detail,
        latency: started.elapsed(),
    }
}

async fn run(service: &Service, probe: &Probe, timeout: Duration) -> (Verdict, String) {
    let container = service.in_container();
    match probe {
        Probe::Tcp { port }
            if container.is_some_and(|c| c.network == crate::config::Network::Bridge) =>
        {
            tcp_published(service, *port).await
        }
        Probe::Tcp { port } => tcp(*port).await,
        Probe::Http {
            url,
            expect_status,
            expect_json,
            insecure,
        } => http(url, *insecure, expect_status, expect_json).await,
        Probe::Log { pattern, log } => log::probe(log, pattern).await,
        Probe::Exec { argv } if container.is_some() => match in_container(service).await {
            Ok((rt, name)) => {
                let argv = crate::container::exec_argv(&rt, &name, argv);
                exec(&argv, &service.dir, &[], timeout).await
            }
            Err(e) => (
                Verdict::Down,
                e.map_or_else(
                    || "the service has no container table".into(),
                    |e| e.to_string(),
                ),
            ),
        },
        Probe::Exec { argv } => {
            exec(
                argv,
                &service.dir,
                &crate::setup::service_env(service),
                timeout,
            )
            .await
        }
        Probe::Container => container_health(service).await,
    }
}

/// The engine and the container name of a service that runs in one.
async fn in_container(
    service: &Service,
) -> Result<(crate::container::Runtime, String), Option<crate::container::EngineError>> {
    let c = service.container.as_ref().ok_or(None)?;
    let rt = crate::container::runtime(c.runtime).await.map_err(Some)?;
    Ok((rt, c.name.clone()))
}

/// The image's HEALTHCHECK, as the engine reports it.
async fn container_health(service: &Service) -> (Verdict, String) {
    let (rt, name) = match in_container(service).await {
        Ok(found) => found,
        Err(Some(e)) => return (Verdict::Down, e.to_string()),
        Err(None) => return (Verdict::Down, "the service has no container table".into()),
    };
    match crate::container::health_status(&rt, &name).await {
        Ok(status) if status == "healthy" => (Verdict::Healthy, "container healthy".into()),
        Ok(status) if status == "none" => (
            Verdict::Down,
            "the image has no HEALTHCHECK: give the service another health check".into(),
        ),
        Ok(status) => (Verdict::Down, format!("container {status}")),
        Err(e) => (Verdict::Down, e.to_string()),
    }
}

/// A bridge container's published port. The engine's port proxy accepts a
/// connection even while nothing listens inside the container (and holds
/// it for a second while the container's network comes up), so a connect
/// proves nothing: the port is open when something listens on the
/// container's side, in its network namespace. Where that cannot be read
/// (another user's engine), a connection that the proxy does not close at
/// once has to do.
async fn tcp_published(service: &Service, port: u16) -> (Verdict, String) {
    use tokio::io::AsyncReadExt;
    let mut stream = match TcpStream::connect(("127.0.0.1", port)).await {
        Ok(s) => s,
        Err(e) => return (Verdict::Down, short_io_error(&e)),
    };
    let inner = match service.in_container().and_then(|c| c.container_port) {
        Some(inner) if service.port == Some(port) => inner,
        _ => port,
    };
    let not_yet = || {
        (
            Verdict::Down,
            format!(
                "port {port} is published, but nothing listens on {inner} in the container yet"
            ),
        )
    };
    if let Ok((rt, name)) = in_container(service).await {
        let Some(pid) = crate::container::main_pid(&rt, &name).await else {
            return (Verdict::Down, format!("container {name} is not running"));
        };
        match process::listens_in_netns_of(pid, inner) {
            Ok(true) => return (Verdict::Healthy, format!("port {port} open")),
            Ok(false) => return not_yet(),
            Err(_) => {}
        }
    }
    let mut byte = [0u8; 1];
    match tokio::time::timeout(PROXY_SETTLE, stream.read(&mut byte)).await {
        Err(_) | Ok(Ok(1..)) => (Verdict::Healthy, format!("port {port} open")),
        Ok(Ok(0)) | Ok(Err(_)) => not_yet(),
    }
}

/// How long a connection through the engine's port proxy must stay open to
/// prove that something listens behind it: the proxy closes one whose
/// inside connection is refused within milliseconds.
const PROXY_SETTLE: Duration = Duration::from_millis(150);

pub async fn tcp(port: u16) -> (Verdict, String) {
    match TcpStream::connect(("127.0.0.1", port)).await {
        Ok(_) => (Verdict::Healthy, format!("port {port} open")),
        Err(e) => (no_answer(&e), short_io_error(&e)),
    }
}

async fn http(
    url: &str,
    insecure: bool,
    expect_status: &[u16],
    expect_json: &[(String, Vec<serde_json::Value>)],
) -> (Verdict, String) {
    let (status, body) = match http::get(url, insecure).await {
        Ok(r) => r,
        Err(e) => return (e.verdict(), e.text),
    };
    let status_ok = if expect_status.is_empty() {
        (200..300).contains(&status)
    } else {
        expect_status.contains(&status)
    };
    let code = format!("HTTP {status}");
    let Some(body) = body else {
        return (Verdict::Unhealthy, format!("{code}, body over 1 MiB"));
    };
    // The whole body as JSON only when fields are expected; for the detail
    // a typical `{"status":"ok"}` is read without building a JSON tree.
    let json: Option<serde_json::Value> = if expect_json.is_empty() {
        None
    } else {
        serde_json::from_slice(&body).ok()
    };
    let status_field = match &json {
        Some(j) => j.get("status").map(shown),
        None => status_of(&body),
    };
    let detail = status_field.clone().unwrap_or_else(|| code.clone());
    if !status_ok {
        return (
            Verdict::Unhealthy,
            format!(
                "{code}{}",
                status_field.map(|s| format!(" {s}")).unwrap_or_default()
            ),
        );
    }
    for (field, accepted) in expect_json {
        let value = json.as_ref().and_then(|j| lookup(j, field));
        match value {
            Some(v) if accepted.contains(v) => {}
            Some(v) => {
                return (Verdict::Unhealthy, format!("{field}={}", shown(v)));
            }
            None if json.is_none() => {
                return (Verdict::Unhealthy, format!("{code}, body is not JSON"))
            }
            None => return (Verdict::Unhealthy, format!("{field} missing")),
        }
    }
    (Verdict::Healthy, detail)
}

/// A JSON value as a detail shows it: a string without its quotes.
fn shown(v: &serde_json::Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

/// The top-level `status` field of a JSON object body, if there is one;
/// other fields are skipped without being built.
fn status_of(body: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Head {
        status: Option<serde_json::Value>,
    }
    serde_json::from_slice::<Head>(body)
        .ok()?
        .status
        .map(|v| shown(&v))
}

/// A dotted path into a JSON value: `checks.db.status`.
fn lookup<'a>(value: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.').try_fold(value, |v, key| v.get(key))
}

async fn exec(
    argv: &[String],
    dir: &Path,
    env: &[(String, String)],
    timeout: Duration,
) -> (Verdict, String) {
    let spec = SpawnSpec {
        argv,
        dir,
        shared: crate::process::no_shared_env(),
        env,
        marker: None,
    };
    match process::run_captured(&spec, timeout).await {
        Ok(Some((exit, out))) => {
            let line = out
                .lines()
                .map(str::trim)
                .find(|l| !l.is_empty())
                .unwrap_or_default();
            let line: String = line.chars().take(80).collect();
            match exit {
                Exit::Code(0) => (Verdict::Healthy, line),
                other if line.is_empty() => (Verdict::Down, other.to_string()),
                _ => (Verdict::Down, line),
            }
        }
        Ok(None) => (Verdict::Down, "probe timed out".into()),
        Err(e) => (no_answer(&e), e.to_string()),
    }
}

/// Whether an error is fpctl running out of what it needs to make a probe
/// (open files, in the process or the system; kernel buffers; memory;
/// processes), rather than anything the service did.
pub fn own_shortage(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM | libc::EAGAIN)
    )
}

/// The verdict of a probe that got no answer because of `e`.
fn no_answer(e: &std::io::Error) -> Verdict {
    if own_shortage(e) {
        Verdict::Inconclusive
    } else {
        Verdict::Down
    }
}

/// Why an HTTP probe got no answer, in words, and whether it was fpctl's
/// own shortage.
#[derive(Debug, Clone)]
pub(crate) struct NoAnswer {
    pub text: String,
    pub ours: bool,
}

impl NoAnswer {
    fn verdict(&self) -> Verdict {
        if self.ours {
            Verdict::Inconclusive
        } else {
            Verdict::Down
        }
    }
}

impl From<String> for NoAnswer {
    fn from(text: String) -> NoAnswer {
        NoAnswer { text, ours: false }
    }
}

impl From<&str> for NoAnswer {
    fn from(text: &str) -> NoAnswer {
        NoAnswer::from(text.to_string())
    }
}

impl From<&std::io::Error> for NoAnswer {
    fn from(e: &std::io::Error) -> NoAnswer {
        NoAnswer {
            text: short_io_error(e),
            ours: own_shortage(e),
        }
    }
}

pub(crate) fn short_io_error(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connection refused".into(),
        _ => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Error;

    #[test]
    fn only_fpctls_own_shortages_are_inconclusive() {
        let table = [
            (libc::EMFILE, Verdict::Inconclusive),
            (libc::ENFILE, Verdict::Inconclusive),
            (libc::ENOBUFS, Verdict::Inconclusive),
            (libc::ENOMEM, Verdict::Inconclusive),
            (libc::EAGAIN, Verdict::Inconclusive),
            (libc::ECONNREFUSED, Verdict::Down),
            (libc::ECONNRESET, Verdict::Down),
            (libc::ETIMEDOUT, Verdict::Down),
            (libc::EHOSTUNREACH, Verdict::Down),
            (libc::ENETUNREACH, Verdict::Down),
            (libc::EADDRNOTAVAIL, Verdict::Down),
            (libc::ENOENT, Verdict::Down),
            (libc::EACCES, Verdict::Down),
        ];
        for (errno, want) in table {
            let e = Error::from_raw_os_error(errno);
            assert_eq!(no_answer(&e), want, "{e}");
            assert_eq!(NoAnswer::from(&e).verdict(), want, "{e}");
        }
        // Errors without an errno (a bad response, a timeout) are the
        // service's.
        assert_eq!(no_answer(&Error::other("bad")), Verdict::Down);
        assert_eq!(NoAnswer::from("bad HTTP response").verdict(), Verdict::Down);
    }

    #[tokio::test]
    async fn a_refused_connection_is_down() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        assert_eq!(tcp(port).await.0, Verdict::Down);
        let (v, _) = http(&format!("http://127.0.0.1:{port}/"), false, &[], &[]).await;
        assert_eq!(v, Verdict::Down);
    }
}

//! GET for http health probes. Plain http goes through hyper's connection
//! API (one connection, one request, nothing pooled): at 50 idle services it
//! costs 0.15-0.20 % of a core less than reqwest (README, Performance).
//! https goes through one reused reqwest client per trust mode (rustls with
//! ring, no system OpenSSL, no proxy lookup, no redirects).

use std::sync::OnceLock;

use hyper::body::Bytes;
use tokio::net::TcpStream;

use super::short_io_error;

/// The longest body a probe reads.
const MAX_BODY: usize = 1 << 20;

/// The client plain-http probes use: hyper, unless `FPCTL_HTTP_CLIENT` says
/// `reqwest` or `reqwest-nopool` (bench/run compares their idle cost).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Plain {
    Hyper,
    Reqwest,
    ReqwestNoPool,
}

fn plain_client() -> Plain {
    static CHOICE: OnceLock<Plain> = OnceLock::new();
    *CHOICE.get_or_init(|| match std::env::var("FPCTL_HTTP_CLIENT").as_deref() {
        Ok("reqwest") => Plain::Reqwest,
        Ok("reqwest-nopool") => Plain::ReqwestNoPool,
        _ => Plain::Hyper,
    })
}

/// GET `url`: the status and the body (None when over [`MAX_BODY`]).
pub async fn get(url: &str, insecure: bool) -> Result<(u16, Option<Bytes>), String> {
    if url.starts_with("http://") && plain_client() == Plain::Hyper {
        plain(url).await
    } else {
        with_reqwest(url, insecure).await
    }
}

/// The client for this trust mode, built once and shared by every probe.
fn client(insecure: bool) -> Result<&'static reqwest::Client, String> {
    static SECURE: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    static INSECURE: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    let cell = if insecure { &INSECURE } else { &SECURE };
    cell.get_or_init(|| {
        // rustls with ring: no system OpenSSL. Installing twice is harmless.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut builder = reqwest::Client::builder();
        if plain_client() == Plain::ReqwestNoPool {
            builder = builder.pool_max_idle_per_host(0);
        }
        builder
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("fpctl")
            .tcp_nodelay(true)
            .tls_danger_accept_invalid_certs(insecure)
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {}", innermost(&e)))
    })
    .as_ref()
    .map_err(Clone::clone)
}

async fn with_reqwest(url: &str, insecure: bool) -> Result<(u16, Option<Bytes>), String> {
    let mut response = client(insecure)?
        .get(url)
        .send()
        .await
        .map_err(|e| innermost(&e))?;
    let status = response.status().as_u16();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| innermost(&e))? {
        if body.len() + chunk.len() > MAX_BODY {
            return Ok((status, None));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, Some(Bytes::from(body))))
}

/// The root cause, short: "connection refused", "invalid peer certificate:
/// UnknownIssuer", rather than reqwest's "error sending request for url".
fn innermost(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    match cause.downcast_ref::<std::io::Error>() {
        Some(io) if io.get_ref().is_none() => short_io_error(io),
        _ => cause.to_string(),
    }
}

/// Plain HTTP/1.1 through hyper's connection API: one connection per probe,
/// one request with `Connection: close`, and no pool, proxy or redirect
/// machinery.
const PROBE_READ_BUF: usize = 4096;

async fn plain(url: &str) -> Result<(u16, Option<Bytes>), String> {
    use http_body_util::{BodyExt, Empty, Limited};

    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL {url}: {e}"))?;
    let host = uri.host().ok_or_else(|| format!("no host in {url}"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| short_io_error(&e))?;
    // No TCP_NODELAY: the request is one write on a fresh connection, which
    // Nagle never delays; a setsockopt per probe would be wasted.
    // A health answer is small: a 4 KiB read buffer (hyper starts at 8 KiB
    // and grows) keeps a round of many probes at once light on memory.
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .read_buf_exact_size(Some(PROBE_READ_BUF))
        .handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    let authority = uri.authority().map(|a| a.as_str()).unwrap_or(host);
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority)
        .header(hyper::header::USER_AGENT, "fpctl")
        .header(hyper::header::CONNECTION, "close")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let exchange = async move {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        match Limited::new(response.into_body(), MAX_BODY).collect().await {
            Ok(body) => Ok((status, Some(body.to_bytes()))),
            Err(e)
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some() =>
            {
                Ok((status, None))
            }
            Err(e) => Err(e.to_string()),
        }
    };
    // Drive the connection in this same task, no task spawned per probe.
    let mut exchange = std::pin::pin!(exchange);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        biased;
        done = &mut exchange => done,
        ended = &mut conn => match ended {
            Err(e) => Err(e.to_string()),
            Ok(()) => exchange.await,
        },
    }
}

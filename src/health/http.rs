//! GET for http health probes. Plain http is one request on a fresh
//! connection, written at once and read into one buffer, with httparse (the
//! parser under hyper) reading the head and chunk sizes: probing is what an
//! idle supervisor does all day, and this costs less than hyper's client
//! connection (its dispatch channel and header maps), which costs less than
//! reqwest (README, Performance). https goes through one reused reqwest
//! client per trust mode (rustls with ring, no system OpenSSL, no proxy
//! lookup, no redirects).

use std::sync::OnceLock;

use hyper::body::Bytes;
use tokio::net::TcpStream;

use super::NoAnswer;

/// The longest body a probe reads.
const MAX_BODY: usize = 1 << 20;

/// The client plain-http probes use: the lean one, unless
/// `FPCTL_HTTP_CLIENT` says `hyper`, `reqwest` or `reqwest-nopool` (bench/run
/// compares their idle cost).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Plain {
    Lean,
    Hyper,
    Reqwest,
    ReqwestNoPool,
}

fn plain_client() -> Plain {
    static CHOICE: OnceLock<Plain> = OnceLock::new();
    *CHOICE.get_or_init(|| match std::env::var("FPCTL_HTTP_CLIENT").as_deref() {
        Ok("reqwest") => Plain::Reqwest,
        Ok("reqwest-nopool") => Plain::ReqwestNoPool,
        Ok("hyper") => Plain::Hyper,
        _ => Plain::Lean,
    })
}

/// GET `url`: the status and the body (None when over [`MAX_BODY`]).
pub(crate) async fn get(url: &str, insecure: bool) -> Result<(u16, Option<Bytes>), NoAnswer> {
    if !url.starts_with("http://") {
        return with_reqwest(url, insecure).await;
    }
    match plain_client() {
        Plain::Lean => lean(url).await,
        Plain::Hyper => plain(url).await,
        Plain::Reqwest | Plain::ReqwestNoPool => with_reqwest(url, insecure).await,
    }
}

/// The client for this trust mode, built once and shared by every probe.
fn client(insecure: bool) -> Result<&'static reqwest::Client, NoAnswer> {
    static SECURE: OnceLock<Result<reqwest::Client, NoAnswer>> = OnceLock::new();
    static INSECURE: OnceLock<Result<reqwest::Client, NoAnswer>> = OnceLock::new();
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
            // fpctl's own shortage: it says nothing of the service.
            .map_err(|e| NoAnswer {
                text: format!("cannot set up the HTTP client: {}", innermost(&e).text),
                ours: true,
            })
    })
    .as_ref()
    .map_err(Clone::clone)
}

async fn with_reqwest(url: &str, insecure: bool) -> Result<(u16, Option<Bytes>), NoAnswer> {
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
fn innermost(e: &(dyn std::error::Error + 'static)) -> NoAnswer {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    match cause.downcast_ref::<std::io::Error>() {
        Some(io) if io.get_ref().is_none() => NoAnswer::from(io),
        _ => NoAnswer::from(cause.to_string()),
    }
}

/// Where a plain-http URL points: host and port to connect to, the Host
/// header and the request target.
struct Target<'a> {
    host: &'a str,
    port: u16,
    authority: &'a str,
    path: &'a str,
}

fn target<'a>(url: &str, uri: &'a hyper::Uri) -> Result<Target<'a>, NoAnswer> {
    let host = uri
        .host()
        .ok_or_else(|| NoAnswer::from(format!("no host in {url}")))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok(Target {
        host,
        port: uri.port_u16().unwrap_or(80),
        authority: uri.authority().map(|a| a.as_str()).unwrap_or(host),
        path: uri.path_and_query().map(|p| p.as_str()).unwrap_or("/"),
    })
}

/// The longest response head a probe reads.
const MAX_HEAD: usize = 64 * 1024;

/// How the body of a response ends.
enum Framing {
    /// No body (204, 304).
    Empty,
    Length(usize),
    Chunked,
    /// At the end of the connection.
    Close,
}

impl Framing {
    fn of(status: u16, headers: &[httparse::Header]) -> Result<Framing, NoAnswer> {
        if status == 204 || status == 304 {
            return Ok(Framing::Empty);
        }
        let value = |name: &str| {
            headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value))
        };
        if let Some(te) = value("transfer-encoding") {
            if te
                .rsplit(',')
                .next()
                .is_some_and(|last| last.trim().eq_ignore_ascii_case("chunked"))
            {
                return Ok(Framing::Chunked);
            }
            return Ok(Framing::Close);
        }
        match value("content-length") {
            Some(n) => n
                .trim()
                .parse()
                .map(Framing::Length)
                .map_err(|_| NoAnswer::from(format!("bad Content-Length: {n}"))),
            None => Ok(Framing::Close),
        }
    }
}

/// One GET with `Connection: close` on a fresh connection: one write, one
/// growing buffer, no task, channel or header map. Returns the status and
/// the body (None when over [`MAX_BODY`]).
async fn lean(url: &str) -> Result<(u16, Option<Bytes>), NoAnswer> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL {url}: {e}"))?;
    let t = target(url, &uri)?;
    let mut stream = TcpStream::connect((t.host, t.port))
        .await
        .map_err(|e| NoAnswer::from(&e))?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: fpctl\r\nConnection: close\r\n\r\n",
        t.path, t.authority
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| NoAnswer::from(&e))?;
    // A health answer usually fits in the first KiB; a round of many probes
    // at once then holds little memory.
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    // Reads more into `buf` (doubling it when full); false at the end of
    // the connection.
    async fn more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<bool, NoAnswer> {
        if buf.len() == buf.capacity() {
            buf.reserve(buf.capacity().max(1024));
        }
        match stream.read_buf(buf).await {
            Ok(0) => Ok(false),
            Ok(_) => Ok(true),
            Err(e) => Err(NoAnswer::from(&e)),
        }
    }
    let closed = || NoAnswer::from("the connection closed before the response ended");
    // The head; interim 1xx answers are skipped.
    let (status, mut at, framing) = loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(n)) => {
                let status = response.code.unwrap_or(0);
                if (100..200).contains(&status) {
                    buf.drain(..n);
                    continue;
                }
                break (status, n, Framing::of(status, response.headers)?);
            }
            Ok(httparse::Status::Partial) if buf.len() > MAX_HEAD => {
                return Err("response head over 64 KiB".into())
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(format!("bad HTTP response: {e}").into()),
        }
        if !more(&mut stream, &mut buf).await? {
            return Err(if buf.is_empty() {
                "the connection closed without a response".into()
            } else {
                closed()
            });
        }
    };
    let body = match framing {
        Framing::Empty => Vec::new(),
        Framing::Length(n) if n > MAX_BODY => return Ok((status, None)),
        Framing::Length(n) => {
            while buf.len() < at + n {
                if !more(&mut stream, &mut buf).await? {
                    return Err(closed());
                }
            }
            buf[at..at + n].to_vec()
        }
        Framing::Close => {
            while more(&mut stream, &mut buf).await? {
                if buf.len() - at > MAX_BODY {
                    return Ok((status, None));
                }
            }
            buf.split_off(at)
        }
        Framing::Chunked => {
            let mut body = Vec::new();
            loop {
                match httparse::parse_chunk_size(&buf[at..]) {
                    Ok(httparse::Status::Complete((_, 0))) => break body,
                    Ok(httparse::Status::Complete((used, size))) => {
                        let size = usize::try_from(size).unwrap_or(usize::MAX);
                        if body.len().saturating_add(size) > MAX_BODY {
                            return Ok((status, None));
                        }
                        let end = at + used + size + 2; // the data and its CRLF
                        while buf.len() < end {
                            if !more(&mut stream, &mut buf).await? {
                                return Err(closed());
                            }
                        }
                        body.extend_from_slice(&buf[at + used..at + used + size]);
                        at = end;
                    }
                    Ok(httparse::Status::Partial) => {
                        if !more(&mut stream, &mut buf).await? {
                            return Err(closed());
                        }
                    }
                    Err(_) => return Err("bad chunked body".into()),
                }
            }
        }
    };
    Ok((status, Some(Bytes::from(body))))
}

/// Plain HTTP/1.1 through hyper's connection API: one connection per probe,
/// one request with `Connection: close`, and no pool, proxy or redirect
/// machinery.
const PROBE_READ_BUF: usize = 4096;

async fn plain(url: &str) -> Result<(u16, Option<Bytes>), NoAnswer> {
    use http_body_util::{BodyExt, Empty, Limited};

    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL {url}: {e}"))?;
    let Target {
        host,
        port,
        authority,
        path,
    } = target(url, &uri)?;
    let stream = TcpStream::connect((host, port))
        .await
        .map_err(|e| NoAnswer::from(&e))?;
    // No TCP_NODELAY: the request is one write on a fresh connection, which
    // Nagle never delays; a setsockopt per probe would be wasted.
    // A health answer is small: a 4 KiB read buffer (hyper starts at 8 KiB
    // and grows) keeps a round of many probes at once light on memory.
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .read_buf_exact_size(Some(PROBE_READ_BUF))
        .handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
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
    let done = tokio::select! {
        biased;
        done = &mut exchange => done,
        ended = &mut conn => match ended {
            Err(e) => Err(e.to_string()),
            Ok(()) => exchange.await,
        },
    };
    done.map_err(NoAnswer::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server on a free port that answers one request with `answer`,
    /// written in pieces of `piece` bytes (so the client reads in several
    /// steps), then closes, or holds the connection open when `hold`.
    async fn serve(answer: &'static [u8], piece: usize, hold: bool) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = vec![0u8; 4096];
            let mut got = 0;
            while !req[..got].ends_with(b"\r\n\r\n") {
                got += s.read(&mut req[got..]).await.unwrap();
            }
            let req = String::from_utf8_lossy(&req[..got]).to_string();
            assert!(req.starts_with("GET /health?x=1 HTTP/1.1\r\n"), "{req}");
            assert!(
                req.contains(&format!("\r\nHost: 127.0.0.1:{port}\r\n")),
                "{req}"
            );
            for chunk in answer.chunks(piece) {
                s.write_all(chunk).await.unwrap();
                s.flush().await.unwrap();
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            if hold {
                tokio::time::sleep(Duration::from_secs(30)).await;
            }
        });
        format!("http://127.0.0.1:{port}/health?x=1")
    }

    async fn get_lean(
        answer: &'static [u8],
        piece: usize,
        hold: bool,
    ) -> Result<(u16, Option<Bytes>), NoAnswer> {
        let url = serve(answer, piece, hold).await;
        tokio::time::timeout(Duration::from_secs(5), lean(&url))
            .await
            .expect("the probe ended by itself")
    }

    fn body(r: &(u16, Option<Bytes>)) -> &[u8] {
        r.1.as_deref().expect("a body")
    }

    use std::time::Duration;

    #[tokio::test]
    async fn content_length_ends_the_body_even_on_a_connection_kept_open() {
        let r = get_lean(
            b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
            3,
            true,
        )
        .await
        .unwrap();
        assert_eq!((r.0, body(&r)), (200, &b"hello"[..]));
    }

    #[tokio::test]
    async fn chunked_bodies_are_decoded() {
        let answer = b"HTTP/1.1 503 Service Unavailable\r\nTransfer-Encoding: chunked\r\n\r\n\
            7\r\n{\"statu\r\n9;ext=1\r\ns\":\"down\"\r\n1\r\n}\r\n0\r\nX-Trailer: y\r\n\r\n";
        for piece in [1, 5, 4096] {
            let r = get_lean(answer, piece, true).await.unwrap();
            assert_eq!(
                (r.0, body(&r)),
                (503, &b"{\"status\":\"down\"}"[..]),
                "piece {piece}"
            );
        }
    }

    #[tokio::test]
    async fn without_length_the_body_ends_with_the_connection() {
        let r = get_lean(b"HTTP/1.0 200 OK\r\n\r\nall of it", 4, false)
            .await
            .unwrap();
        assert_eq!((r.0, body(&r)), (200, &b"all of it"[..]));
    }

    #[tokio::test]
    async fn interim_answers_are_skipped_and_204_has_no_body() {
        let r = get_lean(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
            7,
            true,
        )
        .await
        .unwrap();
        assert_eq!((r.0, body(&r)), (204, &b""[..]));
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_not_kept() {
        let r = get_lean(
            b"HTTP/1.1 200 OK\r\nContent-Length: 2000000\r\n\r\n",
            64,
            true,
        )
        .await
        .unwrap();
        assert_eq!(r, (200, None));
    }

    #[tokio::test]
    async fn an_answer_cut_short_is_an_error_not_a_hang() {
        let e = get_lean(
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhal",
            64,
            false,
        )
        .await
        .unwrap_err()
        .text;
        assert!(e.contains("closed before the response ended"), "{e}");
        let e = get_lean(b"", 1, false).await.unwrap_err().text;
        assert!(e.contains("without a response"), "{e}");
        let e = get_lean(b"SSH-2.0-OpenSSH\r\n\r\n", 64, false)
            .await
            .unwrap_err()
            .text;
        assert!(e.contains("bad HTTP response"), "{e}");
    }

    #[tokio::test]
    async fn a_closed_port_says_connection_refused() {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let e = lean(&format!("http://127.0.0.1:{port}/"))
            .await
            .unwrap_err();
        assert_eq!(e.text, "connection refused");
        assert!(!e.ours);
    }
}

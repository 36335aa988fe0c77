//! `GET /api/v1/stream`: a WebSocket that first sends a full snapshot
//! (status, probe histories, recent events), then every change of a
//! service's status (`service`), probe result and event as the supervisor
//! publishes them, and, for the service a client subscribes to with
//! `{"logs": "NAME"}`, new lines of its log.

use std::io::{Read, Seek, SeekFrom};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use futures_util::SinkExt;
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::view::{graph_model, recent_events, snapshot};
use super::Shared;
use crate::control::{Request, Response as Reply, Update};

/// How often a subscribed log is read for new lines.
const LOG_POLL: Duration = Duration::from_millis(250);
/// Lines of a log sent when a client subscribes to it.
const LOG_BACKLOG: usize = 50;

/// The largest message (and frame) a client may send: what it sends is
/// `{"logs": "NAME"}`. A bigger one closes the connection.
pub const MAX_INBOUND: usize = 4 * 1024;
/// What a connection may hold of messages not yet written to a client
/// that is slow to read: a snapshot of a large stack fits, and then the
/// sender waits for the client.
const MAX_OUTBOUND: usize = 32 << 20;

pub async fn upgrade(State(shared): State<Arc<Shared>>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(MAX_INBOUND)
        .max_frame_size(MAX_INBOUND)
        .read_buffer_size(MAX_INBOUND)
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(MAX_OUTBOUND)
        .on_upgrade(move |socket| serve(shared, socket))
}

#[derive(Deserialize)]
struct ClientMsg {
    /// Follow this service's log; null to stop.
    logs: Option<String>,
}

/// A log being followed: which service, and how far it was read.
struct Follow {
    service: String,
    path: std::path::PathBuf,
    offset: u64,
}

async fn serve(shared: Arc<Shared>, mut socket: WebSocket) {
    // Subscribe before the snapshot, so nothing falls between the two.
    let mut updates = shared.updates.subscribe();
    if !send_snapshot(&shared, &mut socket).await {
        return;
    }
    let mut follow: Option<Follow> = None;
    let mut poll = tokio::time::interval(LOG_POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            update = updates.recv() => {
                let ok = match update {
                    Ok(u) => forward(&shared, &mut socket, u, &mut updates).await,
                    // Too slow to keep up: start again from a full picture.
                    Err(RecvError::Lagged(_)) => send_snapshot(&shared, &mut socket).await,
                    Err(RecvError::Closed) => false,
                };
                if !ok {
                    break;
                }
            }
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    if let Ok(msg) = serde_json::from_str::<ClientMsg>(&text) {
                        follow = match msg.logs {
                            Some(name) if shared.config().service(&name).is_some() => {
                                let path = shared.config().log_path(&name);
                                let backlog = crate::service_log::last_lines(&path, LOG_BACKLOG);
                                let offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
                                let (lines, times) = crate::service_log::texts_and_times(backlog.lines());
                                if !send(&mut socket, &json!({"type": "log", "service": name, "lines": lines, "times": times})).await {
                                    break;
                                }
                                Some(Follow { service: name, path, offset })
                            }
                            _ => None,
                        };
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                Some(Ok(_)) => {}
            },
            _ = poll.tick(), if follow.is_some() => {
                let Some(f) = follow.as_mut() else { continue };
                let raw = new_lines(f);
                let (lines, times) = crate::service_log::texts_and_times(raw.iter().map(String::as_str));
                if !lines.is_empty()
                    && !send(&mut socket, &json!({"type": "log", "service": f.service, "lines": lines, "times": times})).await
                {
                    break;
                }
            }
        }
    }
}

/// Everything a client needs to draw the whole page.
async fn send_snapshot(shared: &Shared, socket: &mut WebSocket) -> bool {
    let Ok(status) = snapshot(shared).await else {
        return false;
    };
    let histories = match shared.ask(Request::History { services: vec![] }).await {
        Some(a) => match a.last {
            Reply::History { histories } => histories,
            _ => Default::default(),
        },
        None => return false,
    };
    let snapshot = json!({
        "type": "snapshot",
        "project": shared.config().project.name,
        "read_only": shared.config().project.api.read_only,
        "status": status,
        "history": histories,
        "events": recent_events(&shared.config(), None, 100).await,
        "graph": graph_model(&shared.config()),
    });
    send(socket, &snapshot).await
}

/// Send `first` and every update already waiting (probes of one grid tick
/// come together), with one flush for all of them.
async fn forward(
    shared: &Shared,
    socket: &mut WebSocket,
    first: Update,
    updates: &mut tokio::sync::broadcast::Receiver<Update>,
) -> bool {
    let mut next = Some(first);
    while let Some(u) = next {
        let text = serde_json::to_string(&u).unwrap_or_default();
        if socket.feed(Message::Text(text.into())).await.is_err() {
            return false;
        }
        next = match updates.try_recv() {
            Ok(u) => Some(u),
            Err(TryRecvError::Lagged(_)) => return send_snapshot(shared, socket).await,
            Err(_) => None,
        };
    }
    socket.flush().await.is_ok()
}

async fn send(socket: &mut WebSocket, value: &Value) -> bool {
    socket
        .send(Message::Text(value.to_string().into()))
        .await
        .is_ok()
}

/// Whole lines appended to a followed log since the last read; a log that
/// shrank (rotated) is read from its start.
fn new_lines(f: &mut Follow) -> Vec<String> {
    let Ok(mut file) = std::fs::File::open(&f.path) else {
        return Vec::new();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    if len < f.offset {
        f.offset = 0;
    }
    if len == f.offset || file.seek(SeekFrom::Start(f.offset)).is_err() {
        return Vec::new();
    }
    let mut buf = Vec::new();
    let _ = file.take(1 << 20).read_to_end(&mut buf);
    let Some(end) = buf.iter().rposition(|&b| b == b'\n') else {
        return Vec::new();
    };
    f.offset += end as u64 + 1;
    String::from_utf8_lossy(&buf[..end])
        .lines()
        .map(str::to_string)
        .collect()
}

//! What the API shows of the supervisor: its snapshot of the status model,
//! the event history, the graph, and the error answer. Shared by the JSON
//! endpoints (`routes`), the stream and `/metrics`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::Json;
use serde_json::{json, Value};

use super::Shared;
use crate::config::Config;
use crate::control::{Request, Response};
use crate::status::Snapshot;
use crate::{events, graph};

/// An error answer: `{"error": message}` with a status code.
pub struct Failure(pub StatusCode, pub String);

impl IntoResponse for Failure {
    fn into_response(self) -> HttpResponse {
        (self.0, Json(json!({ "error": self.1 }))).into_response()
    }
}

/// The supervisor is gone, or going.
pub fn gone() -> Failure {
    Failure(
        StatusCode::SERVICE_UNAVAILABLE,
        "the supervisor is shutting down".into(),
    )
}

/// The supervisor's snapshot of every service, in file order.
pub async fn snapshot(shared: &Shared) -> Result<Snapshot, Failure> {
    match shared.ask(Request::Status).await.map(|a| a.last) {
        Some(Response::Status { snapshot, .. }) => Ok(snapshot),
        Some(Response::Error { message, .. }) => {
            Err(Failure(StatusCode::SERVICE_UNAVAILABLE, message))
        }
        _ => Err(gone()),
    }
}

/// The newest `limit` events (of one service, or of every instance of a
/// replicated one), oldest first.
pub async fn recent_events(
    config: &Config,
    service: Option<String>,
    limit: usize,
) -> Vec<events::Event> {
    let path = events::path(config);
    let wanted = service.map(|s| config.expand_names(&[s]));
    tokio::task::spawn_blocking(move || {
        let mut all: Vec<events::Event> = events::read_all(&path)
            .into_iter()
            .filter(|e| wanted.as_ref().is_none_or(|w| w.contains(&e.service)))
            .collect();
        all.drain(..all.len().saturating_sub(limit));
        all
    })
    .await
    .unwrap_or_default()
}

/// Tiers, start levels and dependencies.
pub fn graph_model(config: &Config) -> Value {
    let all = (0..config.services.len()).collect();
    let plan = graph::plan(config, &all);
    let name = |i: usize| config.services[i].name.clone();
    let tiers: Vec<Value> = plan
        .tiers
        .iter()
        .map(|tp| {
            let tier = &config.tiers[tp.tier];
            json!({
                "name": tier.name,
                "title": tier.title,
                "levels": tp.levels.iter().map(|l| l.iter().map(|&i| name(i)).collect::<Vec<_>>()).collect::<Vec<_>>(),
            })
        })
        .collect();
    let services: serde_json::Map<String, Value> = config
        .services
        .iter()
        .map(|s| {
            let deps: Vec<String> = s.depends_on.iter().map(|&d| name(d)).collect();
            (
                s.name.clone(),
                json!({ "tier": config.tiers[s.tier].name, "port": s.port, "depends_on": deps }),
            )
        })
        .collect();
    json!({ "tiers": tiers, "services": services })
}

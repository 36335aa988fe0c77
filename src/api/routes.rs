//! The JSON endpoints under `/api/v1/`, and the router that puts every
//! part of the API behind the guard.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response as HttpResponse};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::view::{gone, graph_model, recent_events, snapshot, Failure};
use super::{assets, auth, prom, stream, Shared};
use crate::config::{Config, Probe};
use crate::control::{ErrorKind, Request, Response};
use crate::status::{ServiceStatus, Snapshot};

type St = State<Arc<Shared>>;

pub fn router(shared: Arc<Shared>, guard: auth::Guard) -> Router {
    let session = post(auth::session).with_state((Arc::clone(&shared.codes), guard.clone()));
    Router::new()
        .route("/", get(assets::page))
        .route(auth::SESSION, session)
        .route("/api/v1/openapi.json", get(assets::openapi))
        .route("/api/v1/status", get(status))
        .route("/api/v1/services", get(services))
        .route("/api/v1/services/{name}", get(service))
        .route("/api/v1/services/{name}/history", get(history))
        .route("/api/v1/services/{name}/logs", get(logs))
        .route("/api/v1/services/{name}/{action}", post(action))
        .route("/api/v1/reload", post(reload))
        .route("/api/v1/events", get(events))
        .route("/api/v1/graph", get(graph))
        .route("/api/v1/stream", get(stream::upgrade))
        .route("/metrics", get(prom::metrics))
        .route("/mcp", crate::mcp::route(Arc::clone(&shared)))
        .layer(axum::middleware::from_fn_with_state(guard, auth::check))
        .with_state(shared)
}

fn index(config: &Config, name: &str) -> Result<usize, Failure> {
    config.service(name).map(|(i, _)| i).ok_or_else(|| {
        Failure(
            StatusCode::NOT_FOUND,
            format!("no service named \"{name}\""),
        )
    })
}

/// The services a name in a path means: the service, or every instance of
/// a replicated service (as `fpctl logs worker` means all of them).
fn instances(config: &Config, name: &str) -> Result<Vec<String>, Failure> {
    let names = config.expand_names(&[name.to_string()]);
    if names.iter().all(|n| config.service(n).is_some()) {
        Ok(names)
    } else {
        index(config, name).map(|_| names)
    }
}

/// `GET /api/v1/status`: the snapshot `check --json` prints, and whether
/// the API is read-only.
#[derive(Serialize)]
struct StatusAnswer {
    #[serde(flatten)]
    snapshot: Snapshot,
    read_only: bool,
}

async fn status(State(shared): St) -> Result<Json<StatusAnswer>, Failure> {
    let snapshot = snapshot(&shared).await?;
    let read_only = shared.config().project.api.read_only;
    Ok(Json(StatusAnswer {
        snapshot,
        read_only,
    }))
}

async fn services(State(shared): St) -> Result<Json<Vec<ServiceStatus>>, Failure> {
    Ok(Json(snapshot(&shared).await?.services))
}

/// One service's status with what the file says about it.
#[derive(Serialize)]
struct ServiceAnswer {
    #[serde(flatten)]
    status: ServiceStatus,
    settings: Value,
}

async fn service(State(shared): St, Path(name): Path<String>) -> Result<HttpResponse, Failure> {
    let names = instances(&shared.config(), &name)?;
    let snapshot = snapshot(&shared).await?;
    if names.first() != Some(&name) {
        // A replicated service: its instances, as `check worker` shows them.
        let mine = Snapshot::new(
            snapshot.project,
            snapshot.supervisor_pid,
            mine(snapshot.services, &names),
        );
        return Ok(Json(json!({
            "name": name,
            "instances": mine.services,
            "summary": mine.summary,
        }))
        .into_response());
    }
    let i = index(&shared.config(), &name)?;
    let status = mine(snapshot.services, &names)
        .into_iter()
        .next()
        .ok_or_else(gone)?;
    let settings = settings(&shared.config(), i);
    Ok(Json(ServiceAnswer { status, settings }).into_response())
}

/// The statuses of `names`, in the order of the snapshot.
fn mine(services: Vec<ServiceStatus>, names: &[String]) -> Vec<ServiceStatus> {
    services
        .into_iter()
        .filter(|s| names.contains(&s.name))
        .collect()
}

/// What the file says about a service, secrets redacted.
pub(crate) fn settings(config: &Config, i: usize) -> Value {
    let svc = &config.services[i];
    let names = |idx: &mut dyn Iterator<Item = usize>| -> Vec<String> {
        idx.map(|d| config.services[d].name.clone()).collect()
    };
    let health = svc.health.as_ref().map(|h| {
        let (kind, target) = match &h.probe {
            Probe::Http { url, .. } => ("http", url.clone()),
            Probe::Tcp { port } => ("tcp", port.to_string()),
            Probe::Exec { argv } => ("exec", shell_words::join(argv)),
            Probe::Log { pattern, .. } => ("log", pattern.as_str().to_string()),
            Probe::Container => ("container", "HEALTHCHECK".to_string()),
        };
        json!({
            "kind": kind,
            "target": svc.redact(&target),
            "interval_s": h.interval.as_secs_f64(),
            "timeout_s": h.timeout.as_secs_f64(),
            "retries": h.retries,
        })
    });
    // A container service: its image and container (the id is in the
    // service's `spawned` event and `check --json`).
    let container = svc.in_container().map(|c| {
        json!({
            "image": c.tag,
            "name": c.name,
            "network": format!("{:?}", c.network).to_lowercase(),
            "command": svc.redact(&svc.container_line()),
        })
    });
    json!({
        "command": svc.redact(&shell_words::join(&svc.argv)),
        "container": container,
        "depends_on": names(&mut svc.depends_on.iter().copied()),
        "dependents": names(&mut (0..config.services.len()).filter(|&j| config.services[j].depends_on.contains(&i))),
        "health": health,
        "start_timeout_s": svc.start_timeout.as_secs_f64(),
        "restart": svc.restart,
        "max_restarts": svc.max_restarts,
        "oneshot": svc.oneshot,
        "disabled": svc.disabled,
    })
}

async fn history(State(shared): St, Path(name): Path<String>) -> Result<Json<Value>, Failure> {
    let names = instances(&shared.config(), &name)?;
    let request = Request::History {
        services: names.clone(),
    };
    match shared.ask(request).await.map(|a| a.last) {
        Some(Response::History { mut histories }) if names.first() == Some(&name) => {
            Ok(Json(json!({
                "service": name,
                "probes": histories.remove(&name).unwrap_or_default(),
            })))
        }
        // A replicated service: each instance's probes.
        Some(Response::History { histories }) => Ok(Json(json!({
            "service": name,
            "instances": histories,
        }))),
        _ => Err(gone()),
    }
}

#[derive(Deserialize)]
struct LogsQuery {
    n: Option<usize>,
}

async fn logs(
    State(shared): St,
    Path(name): Path<String>,
    Query(q): Query<LogsQuery>,
) -> Result<Json<Value>, Failure> {
    let names = instances(&shared.config(), &name)?;
    let n = q.n.unwrap_or(100).min(10_000);
    if names.first() != Some(&name) {
        // A replicated service: every instance's last `n` lines, merged in
        // time order as `fpctl logs worker` shows them, each line with the
        // instance that wrote it.
        let paths: Vec<std::path::PathBuf> =
            names.iter().map(|n| shared.config().log_path(n)).collect();
        let merged = tokio::task::spawn_blocking(move || {
            let logs = paths
                .iter()
                .map(|p| {
                    let end = std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
                    crate::service_log::history_of(p, end, Some(n), None)
                        .map(|h| h.lines)
                        .unwrap_or_default()
                })
                .collect();
            crate::service_log::merge(logs)
        })
        .await
        .unwrap_or_default();
        let services: Vec<&str> = merged.iter().map(|(k, _)| names[*k].as_str()).collect();
        let lines: Vec<String> = merged
            .iter()
            .map(|(_, l)| String::from_utf8_lossy(&l.text).into_owned())
            .collect();
        let times: Vec<Option<String>> = merged
            .iter()
            .map(|(_, l)| {
                l.time
                    .map(|t| humantime::format_rfc3339_millis(t).to_string())
            })
            .collect();
        return Ok(Json(json!({
            "service": name,
            "lines": lines,
            "times": times,
            "services": services,
        })));
    }
    let path = shared.config().log_path(&name);
    let text = tokio::task::spawn_blocking(move || crate::service_log::last_lines(&path, n))
        .await
        .unwrap_or_default();
    let (lines, times) = crate::service_log::texts_and_times(text.lines());
    Ok(Json(json!({
        "service": name,
        "lines": lines,
        "times": times,
    })))
}

#[derive(Deserialize)]
struct EventsQuery {
    service: Option<String>,
    limit: Option<usize>,
}

async fn events(State(shared): St, Query(q): Query<EventsQuery>) -> Result<Json<Value>, Failure> {
    if let Some(name) = &q.service {
        instances(&shared.config(), name)?;
    }
    let limit = q.limit.unwrap_or(100);
    Ok(Json(json!(
        recent_events(&shared.config(), q.service, limit).await
    )))
}

async fn graph(State(shared): St) -> Json<Value> {
    Json(graph_model(&shared.config()))
}

#[derive(Deserialize)]
struct ReloadQuery {
    #[serde(default)]
    dry_run: bool,
}

/// `POST /api/v1/reload[?dry_run=true]`: what `fpctl reload` does. The
/// answer lists the plan (one entry per added, removed or changed service)
/// and, unless a dry run, comes once what the reload started has settled.
async fn reload(State(shared): St, Query(q): Query<ReloadQuery>) -> Result<HttpResponse, Failure> {
    if shared.config().project.api.read_only && !q.dry_run {
        return Err(Failure(
            StatusCode::FORBIDDEN,
            "the API is read-only (api_read_only = true)".into(),
        ));
    }
    let request = Request::Reload { dry_run: q.dry_run };
    let answer = shared.ask(request).await.ok_or_else(gone)?;
    let (ok, failures) = match answer.last {
        Response::Done { ok, failures } => (ok, failures),
        Response::Error { kind, message } => return Err(refused(kind, message)),
        _ => return Err(gone()),
    };
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let body = json!({
        "ok": ok,
        "dry_run": q.dry_run,
        "changes": answer.changes,
        "api": answer.api,
        "progress": answer.progress,
        "failures": failures,
    });
    Ok((code, Json(body)).into_response())
}

/// `POST /api/v1/services/{name}/start|stop|restart`: answered once the
/// supervisor is done, with the outcome and the service's status after.
async fn action(
    State(shared): St,
    Path((name, action)): Path<(String, String)>,
) -> Result<HttpResponse, Failure> {
    if shared.config().project.api.read_only {
        return Err(Failure(
            StatusCode::FORBIDDEN,
            "the API is read-only (api_read_only = true)".into(),
        ));
    }
    let names = instances(&shared.config(), &name)?;
    let services = vec![name.clone()];
    let request = match action.as_str() {
        "start" => Request::Start {
            services,
            profiles: Vec::new(),
            replace: false,
        },
        "stop" => Request::Stop { services },
        "restart" => Request::Restart { services },
        other => {
            return Err(Failure(
                StatusCode::NOT_FOUND,
                format!("no action \"{other}\" (start, stop or restart)"),
            ))
        }
    };
    let answer = shared.ask(request).await.ok_or_else(gone)?;
    let (ok, failures) = match answer.last {
        Response::Done { ok, failures } => (ok, failures),
        Response::Error { kind, message } => return Err(refused(kind, message)),
        _ => return Err(gone()),
    };
    let now = mine(snapshot(&shared).await?.services, &names);
    // One service's status, or a replicated service's instances.
    let after = if names.first() == Some(&name) {
        json!(now.first())
    } else {
        json!({ "name": name, "instances": now })
    };
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::UNPROCESSABLE_ENTITY
    };
    let body = json!({
        "ok": ok,
        "action": action,
        "service": after,
        "progress": answer.progress,
        "failures": failures,
    });
    Ok((code, Json(body)).into_response())
}

/// The supervisor's refusal, with the status its kind maps to.
fn refused(kind: ErrorKind, message: String) -> Failure {
    let code = StatusCode::from_u16(kind.http_status()).unwrap_or(StatusCode::CONFLICT);
    Failure(code, message)
}

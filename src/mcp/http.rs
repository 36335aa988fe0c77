//! `POST /mcp`: the MCP handler as rmcp's Streamable HTTP service, inside
//! the API's router, so the API's guard (token, Host, Origin) and its
//! connection limits come first. Stateless: every request is answered on
//! its own (no session to keep), as JSON, or as an event stream while a
//! long call sends progress. At most [`MAX_STREAMS`] are open at once.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use futures_util::StreamExt;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::sync::Semaphore;

use super::Server;
use crate::api::Shared;

/// MCP requests answered at once (a waiting call holds its stream open).
pub const MAX_STREAMS: usize = 16;

/// The `/mcp` route.
pub(crate) fn route<S: Clone + Send + Sync + 'static>(shared: Arc<Shared>) -> MethodRouter<S> {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        // The API's guard checks Host and Origin, for every route alike.
        .disable_allowed_hosts()
        .disable_allowed_origins()
        .with_max_request_body_bytes(crate::control::MAX_LINE);
    let service = StreamableHttpService::new(
        move || Ok(Server::in_process(Arc::clone(&shared))),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    let slots = Arc::new(Semaphore::new(MAX_STREAMS));
    axum::routing::any_service(service).layer(axum::middleware::from_fn_with_state(slots, cap))
}

/// Past [`MAX_STREAMS`] open answers, 503; an answer holds its slot until
/// its body is done (an event stream, until the call ends).
async fn cap(State(slots): State<Arc<Semaphore>>, request: Request, next: Next) -> Response {
    let Ok(permit) = slots.try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "error": format!("too many MCP requests at once (at most {MAX_STREAMS})")
            })),
        )
            .into_response();
    };
    let (parts, body) = next.run(request).await.into_parts();
    let body = body.into_data_stream().map(move |chunk| {
        let _held = &permit;
        chunk
    });
    Response::from_parts(parts, Body::from_stream(body))
}

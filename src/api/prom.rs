//! `GET /metrics`: every service's state, restarts, probe latency, memory
//! and CPU for Prometheus-style scrapers (OpenMetrics text).

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::text::encode;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::view::snapshot;
use super::Shared;
use crate::status::ServiceState;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Svc {
    service: String,
    tier: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SvcState {
    service: String,
    state: String,
}

type FloatGauge = Gauge<f64, AtomicU64>;

pub async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    let services = match snapshot(&shared).await {
        Ok(s) => s.services,
        Err(e) => return e.into_response(),
    };
    let mut registry = Registry::with_prefix("fpctl_service");
    let up = Family::<Svc, Gauge>::default();
    let state = Family::<SvcState, Gauge>::default();
    let restarts = Family::<Svc, Counter>::default();
    let latency = Family::<Svc, FloatGauge>::default();
    let rss = Family::<Svc, Gauge>::default();
    let cpu = Family::<Svc, FloatGauge>::default();
    registry.register(
        "up",
        "1 when online (or completed; a scheduled job as check counts it)",
        up.clone(),
    );
    registry.register("state", "1 for the service's current state", state.clone());
    registry.register(
        "restarts",
        "restarts under this supervisor",
        restarts.clone(),
    );
    registry.register(
        "probe_latency_seconds",
        "latency of the last health probe",
        latency.clone(),
    );
    registry.register(
        "memory_rss_bytes",
        "resident memory of the process group",
        rss.clone(),
    );
    registry.register(
        "cpu_percent",
        "CPU use of the process group, % of one core",
        cpu.clone(),
    );
    for st in &services {
        let labels = Svc {
            service: st.name.clone(),
            tier: st.tier.clone(),
        };
        up.get_or_create(&labels).set(i64::from(st.is_ok()));
        for s in ServiceState::ALL {
            let l = SvcState {
                service: st.name.clone(),
                state: s.as_str().into(),
            };
            state.get_or_create(&l).set(i64::from(s == st.state));
        }
        restarts
            .get_or_create(&labels)
            .inc_by(u64::from(st.restarts_total));
        if let Some(ms) = st.latency_ms {
            latency.get_or_create(&labels).set(ms / 1000.0);
        }
        if let Some(b) = st.rss_bytes {
            rss.get_or_create(&labels)
                .set(i64::try_from(b).unwrap_or(i64::MAX));
        }
        if let Some(c) = st.cpu_percent {
            cpu.get_or_create(&labels).set(c);
        }
    }
    let mut body = String::new();
    if let Err(e) = encode(&mut body, &registry) {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

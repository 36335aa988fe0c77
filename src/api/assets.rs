//! What the API serves from the binary itself: the dashboard page and the
//! OpenAPI document.

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

const PAGE: &str = include_str!("dashboard.html");
const OPENAPI: &str = include_str!("openapi.json");

pub async fn page() -> Html<&'static str> {
    Html(PAGE)
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

//! What the API serves from the binary itself: the dashboard page and the
//! OpenAPI document.

use axum::http::header;
use axum::response::{Html, IntoResponse, Response};

const PAGE: &str = include_str!("dashboard.html");
const OPENAPI: &str = include_str!("openapi.json");

/// The page, which may not be framed by another site (its buttons act)
/// nor load anything from elsewhere.
pub async fn page() -> Response {
    (
        [
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                 img-src data:; connect-src 'self'; frame-ancestors 'none'",
            ),
            (header::X_FRAME_OPTIONS, "DENY"),
            (header::REFERRER_POLICY, "no-referrer"),
        ],
        Html(PAGE),
    )
        .into_response()
}

pub async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document()).into_response()
}

/// The OpenAPI document: the paths as written, and the schemas of the
/// status model generated from its types, so that they cannot drift.
fn document() -> &'static str {
    static DOC: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DOC.get_or_init(|| {
        let mut doc: serde_json::Value =
            serde_json::from_str(OPENAPI).expect("openapi.json is JSON");
        let mut settings = schemars::generate::SchemaSettings::draft2020_12();
        settings.definitions_path = "/components/schemas".into();
        let mut generator = settings.into_generator();
        generator.subschema_for::<crate::status::Snapshot>();
        generator.subschema_for::<crate::status::ServiceStatus>();
        generator.subschema_for::<crate::status::Event>();
        let schemas = &mut doc["components"]["schemas"];
        for (name, schema) in generator.take_definitions(true) {
            schemas[name] = schema;
        }
        doc.to_string()
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_openapi_schemas_are_the_models_own() {
        let doc: serde_json::Value = serde_json::from_str(super::document()).unwrap();
        let schemas = &doc["components"]["schemas"];
        let status = &schemas["ServiceStatus"]["properties"];
        for field in ["state", "reason", "activity", "restarts_total"] {
            assert!(status[field].is_object(), "no {field} in {status}");
        }
        assert!(schemas["Snapshot"]["properties"]["supervisor_pid"].is_object());
        // Every reference resolves inside the document.
        let text = doc.to_string();
        for r in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &r[..r.find('"').unwrap()];
            assert!(schemas[name].is_object(), "dangling $ref to {name}");
        }
    }
}

//! The MCP server: tools, resources and a prompt for coding agents, over
//! stdio (`fpctl mcp`, a client of the supervisor's socket) or Streamable
//! HTTP (`POST /mcp` on the API's listener, inside the supervisor). One
//! handler serves both; it renders the status model (`status`) and never
//! keeps a model of its own. Every answer is bounded ([`MAX_ANSWER`]) and
//! says when it was cut.

mod backend;
mod bound;
mod http;
mod tools;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, GetPromptRequestParams,
    GetPromptResponse, GetPromptResult, Implementation, ListPromptsResult,
    ListResourceTemplatesResult, ListResourcesResult, ListToolsResult, PaginatedRequestParams,
    Prompt, PromptArgument, PromptMessage, ReadResourceRequestParams, ReadResourceResponse,
    ReadResourceResult, Resource, ResourceContents, ResourceTemplate, Role, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::{RequestContext, RoleServer};
use rmcp::{ErrorData, ServerHandler, ServiceExt};

use backend::Backend;
pub use bound::MAX_ANSWER;
pub(crate) use http::route;

use crate::{Error, Outcome, Result};

/// One MCP session's handler.
#[derive(Clone)]
pub(crate) struct Server {
    backend: Backend,
    /// Only the tools that change nothing.
    read_only: bool,
}

impl Server {
    fn new(backend: Backend, read_only: bool) -> Server {
        Server { backend, read_only }
    }

    /// The handler of `POST /mcp`, inside the supervisor.
    pub(crate) fn in_process(shared: Arc<crate::api::Shared>) -> Server {
        let read_only = shared.config().project.api.read_only;
        Server::new(Backend::InProcess(shared), read_only)
    }

    fn tools(&self) -> Vec<Tool> {
        tools::catalog()
            .into_iter()
            .filter(|t| !self.read_only || tools::is_read_only(t))
            .collect()
    }
}

/// `fpctl mcp [--read-only]`: serve MCP on stdin and stdout as a client of
/// the project's supervisor, started in the background when none runs, so
/// the stack outlives the agent's session.
pub fn serve_stdio(file: Option<&Path>, read_only: bool) -> Result<Outcome> {
    let path = services_toml(file)?;
    // A broken services.toml must not keep an agent from the stack (or
    // from `fpctl_validate`): the supervisor starts at the first call that
    // can start it.
    let socket = backend::SocketBackend::new(path);
    if let Err(e) = socket.connect_now() {
        crate::output::print_warning(&e.to_string());
    }
    let server = Server::new(Backend::Socket(Arc::new(socket)), read_only);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::other("cannot start the async runtime", e))?;
    rt.block_on(async move {
        crate::process::init();
        let running = server
            .serve(rmcp::transport::stdio())
            .await
            .map_err(|e| Error::Other(format!("MCP session: {e}")))?;
        running
            .waiting()
            .await
            .map_err(|e| Error::Other(format!("MCP session: {e}")))?;
        Ok(Outcome::Success)
    })
}

/// The services.toml in scope: `-f`/`FPCTL_FILE`, else found upwards from
/// here. It need not validate.
fn services_toml(file: Option<&Path>) -> Result<PathBuf> {
    let cwd = std::env::current_dir().map_err(|e| Error::other("the current folder", e))?;
    match file {
        Some(f) => Ok(cwd.join(f)),
        None => Ok(crate::config::discover(&cwd)?),
    }
}

const INSTRUCTIONS: &str =
    "fpctl supervises this project's stack of local services (services.toml). \
Start with fpctl_status. fpctl_start/fpctl_restart wait until the services are online and say why \
one is not; fpctl_wait waits on the live status without polling and never answers ok for a failed \
or blocked service. Logs and events come in time order, oldest first. Answers are capped at 64 KiB \
and say `truncated` when cut. Service names are checked: an unknown one is an error that lists \
close matches.";

impl ServerHandler for Server {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .enable_prompts()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(Implementation::new("fpctl", env!("CARGO_PKG_VERSION")))
            .with_instructions(INSTRUCTIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> std::result::Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools().into_iter().find(|t| t.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> std::result::Result<CallToolResponse, ErrorData> {
        let name = request.name.to_string();
        let known = self.tools();
        if !known.iter().any(|t| t.name == name) {
            let message = if self.read_only && tools::catalog().iter().any(|t| t.name == name) {
                format!("{name} changes the stack, and this server is read-only")
            } else {
                let hint = crate::config::suggest(&name, known.iter().map(|t| t.name.as_ref()))
                    .map(|n| format!(" (did you mean \"{n}\"?)"))
                    .unwrap_or_default();
                format!("no tool named \"{name}\"{hint}")
            };
            return Ok(CallToolResult::error(vec![ContentBlock::text(message)]).into());
        }
        let args = serde_json::Value::Object(request.arguments.unwrap_or_default());
        let call = tools::Call {
            backend: &self.backend,
            context: &context,
        };
        Ok(call.run(&name, args).await.into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> std::result::Result<ListResourcesResult, ErrorData> {
        let json = |r: Resource| r.with_mime_type("application/json");
        let mut all = vec![
            json(
                Resource::new("fpctl://status", "status")
                    .with_description("Every service's status and the summary (as fpctl_status)"),
            ),
            json(
                Resource::new("fpctl://events", "events")
                    .with_description("The newest 50 events, oldest first (as fpctl_events)"),
            ),
            json(Resource::new("fpctl://graph", "graph").with_description(
                "Tiers, start levels and edges with each service's state (as fpctl_graph)",
            )),
        ];
        if let Ok(config) = self.backend.config().await {
            for s in &config.services {
                all.push(json(
                    Resource::new(format!("fpctl://services/{}", s.name), s.name.clone())
                        .with_description("The service's status, settings and probes"),
                ));
            }
        }
        Ok(ListResourcesResult::with_all_items(all))
    }

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> std::result::Result<ListResourceTemplatesResult, ErrorData> {
        let json = |r: ResourceTemplate| r.with_mime_type("application/json");
        Ok(ListResourceTemplatesResult::with_all_items(vec![
            json(
                ResourceTemplate::new("fpctl://services/{name}", "service")
                    .with_description("A service's status, settings and probes"),
            ),
            json(
                ResourceTemplate::new("fpctl://services/{name}/logs", "service logs")
                    .with_description("The last 100 lines of a service's log, oldest first"),
            ),
        ]))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> std::result::Result<ReadResourceResponse, ErrorData> {
        let uri = request.uri;
        let (tool, args) = match uri.strip_prefix("fpctl://") {
            Some("status") => ("fpctl_status", serde_json::json!({})),
            Some("events") => ("fpctl_events", serde_json::json!({})),
            Some("graph") => ("fpctl_graph", serde_json::json!({})),
            Some(rest) => match rest.strip_prefix("services/") {
                Some(name) => match name.strip_suffix("/logs") {
                    Some(name) => ("fpctl_logs", serde_json::json!({ "name": name })),
                    None => ("fpctl_service", serde_json::json!({ "name": name })),
                },
                None => {
                    return Err(ErrorData::resource_not_found(
                        format!("no resource {uri}"),
                        None,
                    ))
                }
            },
            None => {
                return Err(ErrorData::resource_not_found(
                    format!("no resource {uri}"),
                    None,
                ))
            }
        };
        let call = tools::Call {
            backend: &self.backend,
            context: &context,
        };
        let result = call.run(tool, args).await;
        if result.is_error == Some(true) {
            let text = tools::text_of(&result);
            return Err(ErrorData::resource_not_found(text, None));
        }
        let body = result
            .structured_content
            .map(|v| serde_json::to_string(&v).unwrap_or_default())
            .unwrap_or_default();
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(body, uri).with_mime_type("application/json")
        ])
        .into())
    }

    async fn list_prompts(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> std::result::Result<ListPromptsResult, ErrorData> {
        Ok(ListPromptsResult::with_all_items(vec![Prompt::new(
            DIAGNOSE,
            Some("Find out why a service is not online: status, probe, events, logs, dependencies"),
            Some(vec![PromptArgument::new("name")
                .with_description("The service")
                .with_required(true)]),
        )]))
    }

    async fn get_prompt(
        &self,
        request: GetPromptRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> std::result::Result<GetPromptResponse, ErrorData> {
        if request.name != DIAGNOSE {
            return Err(ErrorData::invalid_params(
                format!(
                    "no prompt named \"{}\" (there is \"{DIAGNOSE}\")",
                    request.name
                ),
                None,
            ));
        }
        let name = request
            .arguments
            .as_ref()
            .and_then(|a| a.get("name"))
            .and_then(|n| n.as_str())
            .ok_or_else(|| ErrorData::invalid_params("diagnose-service needs a name", None))?
            .to_string();
        let config = self
            .backend
            .config()
            .await
            .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
        if let Err(e) = tools::check_names(&config, std::slice::from_ref(&name)) {
            return Err(ErrorData::invalid_params(e.to_string(), None));
        }
        let text = format!(
            "Diagnose the service \"{name}\" of this fpctl stack, step by step:\n\
             1. fpctl_status with services [\"{name}\"]: its state, reason and detail.\n\
             2. fpctl_probe with name \"{name}\": what its health check answers now.\n\
             3. fpctl_events with name \"{name}\": its recent starts, exits, health changes and restarts.\n\
             4. fpctl_logs with name \"{name}\" (tail 100): the last lines it wrote.\n\
             5. fpctl_service with name \"{name}\": its dependencies and dependents; if one of them \
             is not online, diagnose that one first (a blocked service waits on its dependency).\n\
             Then say what is wrong, with the evidence, and what to change. Restart it \
             (fpctl_restart) only once the cause is fixed."
        );
        Ok(
            GetPromptResult::new(vec![PromptMessage::new_text(Role::User, text)])
                .with_description(format!("Diagnose {name}"))
                .into(),
        )
    }
}

const DIAGNOSE: &str = "diagnose-service";

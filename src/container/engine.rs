//! The engine's client, asked and answered: which engine answers, a
//! project's containers, stop and remove, images, health, the bridge's
//! gateway. Each call is one run of the client with a deadline.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;
use std::time::Duration;

use super::{client_dir, LABEL_HASH, LABEL_PROJECT, LABEL_SERVICE};
use crate::config::ContainerRuntime;
use crate::process::{self, Exit, SpawnSpec};

/// How long a quick question to the engine may take (a loaded machine
/// answers `docker ps` in well under a second).
const ASK: Duration = Duration::from_secs(20);

/// A container engine's client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    /// `docker` or `podman`.
    pub program: String,
    podman: bool,
}

static RUNTIMES: Mutex<Option<HashMap<String, Runtime>>> = Mutex::new(None);

fn cache_key(choice: ContainerRuntime) -> String {
    format!("{choice:?}")
}

/// What went wrong in a talk with the container engine.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// No engine answers (each client tried, and what it said).
    #[error("no container engine answers ({0}); start Docker (or Podman), or set [project] container_runtime")]
    Unavailable(String),
    /// The client exited with an error: its last line (or its exit).
    #[error("{0}")]
    Refused(String),
    #[error("no answer within {0}s")]
    Silent(u64),
    /// The client could not be run.
    #[error("{0}")]
    Run(String),
}

impl EngineError {
    /// The engine said that the container does not exist.
    pub fn no_such_container(&self) -> bool {
        matches!(self, EngineError::Refused(said) if said.to_ascii_lowercase().contains("no such container"))
    }
}

/// The engine that `choice` names and that answers; found once per process
/// (a failure is not remembered: the engine may be started meanwhile).
pub async fn runtime(choice: ContainerRuntime) -> Result<Runtime, EngineError> {
    if let Some(rt) = RUNTIMES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .get(&cache_key(choice))
    {
        return Ok(rt.clone());
    }
    let candidates: &[&str] = match choice {
        ContainerRuntime::Auto => &["docker", "podman"],
        ContainerRuntime::Docker => &["docker"],
        ContainerRuntime::Podman => &["podman"],
    };
    let mut why = Vec::new();
    for &program in candidates {
        let rt = Runtime {
            program: program.to_string(),
            podman: program == "podman",
        };
        match ask(&rt, &["version", "--format", "{{.Server.Version}}"]).await {
            Ok(_) => {
                RUNTIMES
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get_or_insert_with(HashMap::new)
                    .insert(cache_key(choice), rt.clone());
                return Ok(rt);
            }
            Err(e) => why.push(format!("`{program} version`: {e}")),
        }
    }
    Err(EngineError::Unavailable(why.join("; ")))
}

impl Runtime {
    /// The engine a generated unit file calls, without asking it anything:
    /// Podman when the project says so, else Docker, by its absolute path
    /// where this `PATH` has it (systemd looks no program up in a `PATH`).
    pub fn for_export(choice: ContainerRuntime) -> Runtime {
        let name = match choice {
            ContainerRuntime::Podman => "podman",
            ContainerRuntime::Auto | ContainerRuntime::Docker => "docker",
        };
        let program = crate::process::program_path(name)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| format!("/usr/bin/{name}"));
        Runtime {
            program,
            podman: name == "podman",
        }
    }
}

/// The engine found earlier in this process, if any.
fn known_runtime() -> Option<Runtime> {
    RUNTIMES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()?
        .values()
        .next()
        .cloned()
}

/// Forget the engines found (a test that stops the engine).
pub fn forget_runtime() {
    *RUNTIMES.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

/// Run the client with `args`; its output when it exits 0, else what it
/// said (its last line), or why it could not run.
async fn ask(rt: &Runtime, args: &[&str]) -> Result<String, EngineError> {
    ask_within(rt, args, ASK).await
}

async fn ask_within(rt: &Runtime, args: &[&str], limit: Duration) -> Result<String, EngineError> {
    let mut argv = vec![rt.program.clone()];
    argv.extend(args.iter().map(|a| a.to_string()));
    let spec = SpawnSpec {
        argv: &argv,
        dir: client_dir(),
        shared: crate::process::no_shared_env(),
        env: &[],
        marker: None,
    };
    match process::run_captured(&spec, limit).await {
        Ok(Some((Exit::Code(0), out))) => Ok(out),
        Ok(Some((exit, out))) => {
            let last = out
                .lines()
                .map(str::trim)
                .rfind(|l| !l.is_empty())
                .unwrap_or_default()
                .to_string();
            Err(EngineError::Refused(if last.is_empty() {
                exit.to_string()
            } else {
                last
            }))
        }
        Ok(None) => Err(EngineError::Silent(limit.as_secs())),
        Err(e) => Err(EngineError::Run(e.to_string())),
    }
}

/// A container of the project, as `ps` lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub id: String,
    pub name: String,
    pub running: bool,
    /// Its settings hash label.
    pub hash: String,
    /// Its service label.
    pub service: String,
}

/// Every container (running or not) with the project's label, and with
/// `service`'s label when given.
pub async fn find(
    rt: &Runtime,
    project: &str,
    service: Option<&str>,
) -> Result<Vec<Found>, EngineError> {
    let label = |k: &str| {
        if rt.podman {
            format!("{{{{index .Labels \"{k}\"}}}}")
        } else {
            format!("{{{{.Label \"{k}\"}}}}")
        }
    };
    let format = format!(
        "{{{{.ID}}}}\t{{{{.Names}}}}\t{{{{.State}}}}\t{}\t{}",
        label(LABEL_HASH),
        label(LABEL_SERVICE)
    );
    let project_filter = format!("label={LABEL_PROJECT}={project}");
    let service_filter = service.map(|s| format!("label={LABEL_SERVICE}={s}"));
    let mut args = vec!["ps", "-a", "--no-trunc", "--filter", &project_filter];
    if let Some(f) = &service_filter {
        args.extend(["--filter", f]);
    }
    args.extend(["--format", &format]);
    let out = ask(rt, &args).await?;
    Ok(out
        .lines()
        .filter_map(|line| {
            let mut f = line.split('\t');
            Some(Found {
                id: f.next()?.to_string(),
                name: f.next()?.to_string(),
                running: f.next()? == "running",
                hash: f.next().unwrap_or_default().to_string(),
                service: f.next().unwrap_or_default().to_string(),
            })
        })
        .collect())
}

/// `rm -f`: kill and remove. A container that is already gone is no error.
pub async fn remove(rt: &Runtime, names: &[String]) -> Result<(), EngineError> {
    if names.is_empty() {
        return Ok(());
    }
    let mut args = vec!["rm", "-f"];
    args.extend(names.iter().map(String::as_str));
    match ask(rt, &args).await {
        Ok(_) => Ok(()),
        Err(e) if e.no_such_container() => Ok(()),
        Err(e) => Err(e),
    }
}

/// `stop -t SECS`: the stop signal, then SIGKILL after `grace`.
pub async fn stop(rt: &Runtime, name: &str, grace: Duration) -> Result<(), EngineError> {
    let secs = grace.as_millis().div_ceil(1000).to_string();
    let limit = grace + Duration::from_secs(15);
    match ask_within(rt, &["stop", "-t", &secs, name], limit).await {
        Ok(_) => Ok(()),
        Err(e) if e.no_such_container() => Ok(()),
        Err(e) => Err(e),
    }
}

/// The id of the container `name` once the engine has created it (a
/// client just started), asked every 100 ms for up to 20 s.
pub async fn id_when_created(rt: &Runtime, name: &str) -> Option<String> {
    for _ in 0..200 {
        if let Ok(out) = ask(rt, &["inspect", "--format", "{{.Id}}", name]).await {
            let id = out.trim();
            if !id.is_empty() {
                return Some(id.to_string());
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Whether the image is on this machine.
pub async fn image_present(rt: &Runtime, image: &str) -> bool {
    ask(rt, &["image", "inspect", "--format", "{{.Id}}", image])
        .await
        .is_ok()
}

/// The image's own HEALTHCHECK as the engine reports it: `healthy`,
/// `unhealthy`, `starting`, or `none` when the image has none.
pub async fn health_status(rt: &Runtime, name: &str) -> Result<String, EngineError> {
    let format = "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}";
    let out = ask(rt, &["inspect", "--format", format, name]).await?;
    Ok(out.trim().to_string())
}

/// Main processes of running containers, by name: a process id with its
/// start time, so a container that was replaced is asked about again.
static MAIN_PIDS: Mutex<Option<HashMap<String, (i32, u64)>>> = Mutex::new(None);

/// The host's process id of a running container's first process (`None`
/// while it is not running).
pub async fn main_pid(rt: &Runtime, name: &str) -> Option<i32> {
    let known = MAIN_PIDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .get(name)
        .copied();
    if let Some((pid, ticks)) = known {
        if process::is_same_process(pid, ticks) {
            return Some(pid);
        }
    }
    let out = ask(rt, &["inspect", "--format", "{{.State.Pid}}", name])
        .await
        .ok()?;
    let pid: i32 = out.trim().parse().ok().filter(|&p| p > 0)?;
    let ticks = process::start_ticks(pid)?;
    MAIN_PIDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(name.to_string(), (pid, ticks));
    Some(pid)
}

static GATEWAY: Mutex<Option<Option<IpAddr>>> = Mutex::new(None);

/// The address of the host on the engine's default bridge network (where
/// `host-gateway` points), found once per process.
pub async fn gateway(rt: &Runtime) -> Option<IpAddr> {
    if let Some(found) = *GATEWAY.lock().unwrap_or_else(|e| e.into_inner()) {
        return found;
    }
    let (network, format) = if rt.podman {
        (
            "podman",
            "{{range .Subnets}}{{.Gateway}},{{.Subnet}};{{end}}",
        )
    } else {
        (
            "bridge",
            "{{range .IPAM.Config}}{{.Gateway}},{{.Subnet}};{{end}}",
        )
    };
    let found = ask(rt, &["network", "inspect", network, "--format", format])
        .await
        .ok()
        .and_then(|out| parse_gateway(&out));
    *GATEWAY.lock().unwrap_or_else(|e| e.into_inner()) = Some(found);
    found
}

/// `GATEWAY,SUBNET;…`: the first IPv4 gateway, or the first address of an
/// IPv4 subnet (where the engine puts the gateway unless told otherwise).
fn parse_gateway(out: &str) -> Option<IpAddr> {
    for entry in out.trim().split(';').filter(|e| !e.is_empty()) {
        let (gw, subnet) = entry.split_once(',').unwrap_or((entry, ""));
        if let Ok(IpAddr::V4(ip)) = gw.trim().parse::<IpAddr>() {
            return Some(IpAddr::V4(ip));
        }
        if let Some((base, _)) = subnet.trim().split_once('/') {
            if let Ok(ip) = base.parse::<Ipv4Addr>() {
                return Some(IpAddr::V4(Ipv4Addr::from(u32::from(ip) + 1)));
            }
        }
    }
    None
}

/// Remove every container with the project's label, at once (the last
/// sweep of an exiting supervisor, which owns its thread then: the client
/// runs directly, with a deadline).
pub fn remove_project_now(project: &str) {
    // None found yet (a supervisor that ends before it asked): the first
    // client that answers.
    let Some(rt) = known_runtime().or_else(|| {
        ["docker", "podman"].into_iter().find_map(|program| {
            let rt = Runtime {
                program: program.to_string(),
                podman: program == "podman",
            };
            run_now(&rt, &["version", "--format", "{{.Server.Version}}"]).map(|_| rt)
        })
    }) else {
        return;
    };
    let filter = format!("label={LABEL_PROJECT}={project}");
    let Some(ids) = run_now(&rt, &["ps", "-aq", "--filter", &filter]) else {
        return;
    };
    let ids: Vec<&str> = ids.split_whitespace().collect();
    if ids.is_empty() {
        return;
    }
    tracing::info!(count = ids.len(), "removing the project's containers left");
    let mut args = vec!["rm", "-f"];
    args.extend(ids);
    let _ = run_now(&rt, &args);
}

fn run_now(rt: &Runtime, args: &[&str]) -> Option<String> {
    let mut child = std::process::Command::new(&rt.program)
        .args(args)
        .current_dir(client_dir())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let deadline = std::time::Instant::now() + ASK;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => {
                let mut out = String::new();
                use std::io::Read;
                child.stdout.take()?.read_to_string(&mut out).ok()?;
                return status.success().then_some(out);
            }
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gateway_is_given_or_the_subnets_first_address() {
        assert_eq!(
            parse_gateway("172.18.0.1,172.18.0.0/16;\n"),
            Some("172.18.0.1".parse().unwrap())
        );
        assert_eq!(
            parse_gateway(",172.17.0.0/16;"),
            Some("172.17.0.1".parse().unwrap())
        );
        assert_eq!(parse_gateway(",fd00::/64;"), None);
        assert_eq!(parse_gateway(""), None);
    }
}

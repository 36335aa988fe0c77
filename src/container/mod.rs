//! Containers as services: what fpctl asks of a container engine (Docker,
//! or Podman, best effort) through its command-line client.
//!
//! A container service runs as `docker run --rm --init --sig-proxy=false …`,
//! attached: the client is the service's process, so the container's output
//! goes to the service's log and its exit is the service's exit. This
//! module owns the words of those command lines (run, attach, stop, rm,
//! build, pull, exec), the labels and the settings hash by which a later
//! supervisor recognises a container, and finding and removing a project's
//! containers. It decides nothing about a service's life: the unit does
//! (`supervisor/unit.rs`), and the image step is part of setup
//! (`setup.rs`).
//!
//! Every call goes through `process::run_captured`, so the supervisor's
//! reaper sees the client's exit; only the last sweep of an exiting
//! supervisor, which owns its thread by then, runs a client directly.

mod engine;

use std::path::Path;

use sha2::{Digest, Sha256};

use crate::config::{ContainerRuntime, Network, Service};

pub use engine::{
    find, forget_runtime, gateway, health_status, id_when_created, image_present, main_pid, remove,
    remove_project_now, runtime, stop, EngineError, Found, Runtime,
};

/// The labels every container fpctl starts carries.
pub const LABEL_PROJECT: &str = "fpctl.project";
pub const LABEL_SERVICE: &str = "fpctl.service";
pub const LABEL_HASH: &str = "fpctl.hash";

/// The project part of a service's marker (`PROJECT:SERVICE`).
pub fn project_of(marker: &str) -> &str {
    marker.split_once(':').map_or(marker, |(p, _)| p)
}

/// `docker run …` for a service, with the environment its client needs.
#[derive(Debug, Clone)]
pub struct RunSpec {
    pub name: String,
    /// The client's command line. Variables are passed by name (`-e NAME`)
    /// and their values through the client's environment, so no value is
    /// on a command line that `ps` shows.
    pub argv: Vec<String>,
    pub env: Vec<(String, String)>,
    /// The hash of everything the container was started with.
    pub hash: String,
}

/// The variables a container gets: every `FPCTL_PORT_*`/`FPCTL_HOST_*` (as
/// seen from inside it), `PORT`, `FPCTL_REPLICA`, `env_file`, `[project]
/// env` and its `env`; not fpctl's own environment, which is the host's.
pub fn container_env(svc: &Service) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    for (k, v) in svc.port_env.iter().chain(svc.env.iter()) {
        env.retain(|(x, _)| x != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

/// The run command of `svc` (which must run in a container), published on
/// 127.0.0.1 and, when the bridge's gateway is known, on the gateway too:
/// there other bridge containers of the stack reach it.
pub fn run_spec(
    rt: &Runtime,
    svc: &Service,
    project: &str,
    gateway: Option<std::net::IpAddr>,
) -> RunSpec {
    let c = svc
        .in_container()
        .expect("run_spec is for container services");
    let name = c.name.clone();
    let env = container_env(svc);
    let mut args: Vec<String> = vec![
        "run".into(),
        "--rm".into(),
        "--sig-proxy=false".into(),
        "--pull".into(),
        "never".into(),
        "--name".into(),
        name.clone(),
        "--label".into(),
        format!("{LABEL_PROJECT}={project}"),
        "--label".into(),
        format!("{LABEL_SERVICE}={}", svc.name),
    ];
    if c.init {
        args.push("--init".into());
    }
    args.extend(["--stop-signal".into(), svc.stop_signal.as_str().into()]);
    match c.network {
        Network::Host => args.extend(["--network".into(), "host".into()]),
        Network::Bridge => {
            if let Some(port) = svc.port {
                let inner = c.container_port.unwrap_or(port);
                args.extend(["-p".into(), format!("127.0.0.1:{port}:{inner}")]);
                if let Some(gw) = gateway {
                    args.extend(["-p".into(), format!("{gw}:{port}:{inner}")]);
                }
            }
            args.extend([
                "--add-host".into(),
                format!("{}:host-gateway", crate::config::BRIDGE_HOST),
            ]);
        }
    }
    for v in &c.volumes {
        args.extend(["-v".into(), v.clone()]);
    }
    if let Some(bytes) = svc.max_memory {
        args.extend(["--memory".into(), bytes.to_string()]);
    }
    for (k, _) in &env {
        args.extend(["-e".into(), k.clone()]);
    }
    // `--entrypoint` takes one program; the rest of its words go first in
    // the command, as compose does with a list.
    let entry = c.entrypoint.as_deref();
    if let Some(e) = entry {
        args.extend([
            "--entrypoint".into(),
            e.first().cloned().unwrap_or_default(),
        ]);
    }
    args.push(c.tag.clone());
    args.extend(entry.unwrap_or_default().iter().skip(1).cloned());
    args.extend(svc.container_command().iter().cloned());
    let hash = settings_hash(&args, &env);
    // The hash label goes before the image: everything after it is the
    // container's own command.
    let at = args.iter().position(|a| a == &c.tag).unwrap_or(args.len());
    args.splice(
        at..at,
        ["--label".to_string(), format!("{LABEL_HASH}={hash}")],
    );
    let mut argv = vec![rt.program.clone()];
    argv.extend(args);
    RunSpec {
        name,
        argv,
        env,
        hash,
    }
}

/// A short hash of a container's command line and environment values.
fn settings_hash(args: &[String], env: &[(String, String)]) -> String {
    let mut h = Sha256::new();
    for a in args {
        h.update(a.as_bytes());
        h.update(b"\0");
    }
    h.update(b"\x01");
    for (k, v) in env {
        h.update(k.as_bytes());
        h.update(b"=");
        h.update(v.as_bytes());
        h.update(b"\0");
    }
    let digest = h.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

/// Attach to a running container (one a supervisor that died left
/// running): output from now on, and its exit code at its end.
pub fn attach_argv(rt: &Runtime, name: &str) -> Vec<String> {
    vec![
        rt.program.clone(),
        "attach".into(),
        "--no-stdin".into(),
        "--sig-proxy=false".into(),
        name.into(),
    ]
}

/// Whether a command line is the engine's client running or attached to
/// the container `name` (what a supervisor that died may have left).
pub fn is_client_of(argv: &[String], name: &str) -> bool {
    let program = argv
        .first()
        .and_then(|p| Path::new(p).file_name())
        .and_then(|p| p.to_str());
    matches!(program, Some("docker" | "podman"))
        && matches!(argv.get(1).map(String::as_str), Some("run" | "attach"))
        && argv.iter().any(|a| a == name)
}

/// A health `exec` run inside the container.
pub fn exec_argv(rt: &Runtime, name: &str, argv: &[String]) -> Vec<String> {
    let mut out = vec![rt.program.clone(), "exec".into(), name.into()];
    out.extend(argv.iter().cloned());
    out
}

/// `docker build` of a service's image (it must have `build`).
pub fn build_argv(rt: &Runtime, svc: &Service) -> Option<Vec<String>> {
    let c = svc.container.as_ref()?;
    let context = c.build.as_ref()?;
    // --force-rm: a failed or cut-short step leaves no intermediate
    // container behind.
    let mut argv = vec![
        rt.program.clone(),
        "build".into(),
        "--force-rm".into(),
        "-t".into(),
        c.tag.clone(),
    ];
    if let Some(t) = &c.target {
        argv.extend(["--target".into(), t.clone()]);
    }
    argv.push(context.display().to_string());
    Some(argv)
}

/// `docker pull IMAGE`.
pub fn pull_argv(rt: &Runtime, image: &str) -> Vec<String> {
    vec![rt.program.clone(), "pull".into(), image.into()]
}

/// What a build depends on: its settings and every file of its context
/// (path, size, modification time), as `.dockerignore` leaves them. A
/// build runs again only when this changes or the image is gone.
pub fn build_inputs_hash(svc: &Service) -> Option<String> {
    let c = svc.container.as_ref()?;
    let context = c.build.as_ref()?;
    let mut h = Sha256::new();
    h.update(c.tag.as_bytes());
    h.update(b"\0");
    h.update(c.target.as_deref().unwrap_or_default().as_bytes());
    h.update(b"\0");
    let mut files: Vec<(String, u64, i128)> = Vec::new();
    let walk = ignore::WalkBuilder::new(context)
        .standard_filters(false)
        .hidden(false)
        .add_custom_ignore_filename(".dockerignore")
        .filter_entry(|e| e.file_name() != ".fpctl" && e.file_name() != ".git")
        .build();
    for entry in walk.flatten().take(100_000) {
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        let rel = entry
            .path()
            .strip_prefix(context)
            .unwrap_or(entry.path())
            .display()
            .to_string();
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as i128);
        files.push((rel, meta.len(), mtime));
    }
    files.sort();
    for (rel, len, mtime) in files {
        h.update(format!("{rel}\0{len}\0{mtime}\n").as_bytes());
    }
    Some(format!("{:x}", h.finalize()))
}

/// Which engine a config asks for, in words.
pub fn runtime_choice_text(choice: ContainerRuntime) -> &'static str {
    match choice {
        ContainerRuntime::Auto => "docker or podman",
        ContainerRuntime::Docker => "docker",
        ContainerRuntime::Podman => "podman",
    }
}

/// Whether any service of the project may have a container running: the
/// last sweep of a supervisor then asks the engine for leftovers.
static IN_USE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

pub fn mark_in_use() {
    IN_USE.store(true, std::sync::atomic::Ordering::SeqCst);
}

pub fn in_use() -> bool {
    IN_USE.load(std::sync::atomic::Ordering::SeqCst)
}

/// A folder to run the client in: it needs none in particular.
fn client_dir() -> &'static Path {
    Path::new("/")
}

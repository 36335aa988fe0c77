//! How the services found relate: infrastructure named in `.env` files
//! (redis), which service names another's address (`depends_on`), and the
//! tiers that follow (infrastructure first, then apps by dependency depth).

use std::collections::HashMap;

use crate::config::{host_var_name, port_var_name};
use crate::draft::{inline, Draft, DraftService, PortPlan};

use super::{Found, Report};

/// Programs that make a service infrastructure (its own first tier).
const INFRA_PROGRAMS: &[&str] = &[
    "redis-server",
    "valkey-server",
    "postgres",
    "mysqld",
    "memcached",
];

/// A local URL: `scheme://[user@]host[:port][rest]`.
struct Url<'a> {
    scheme: &'a str,
    port: Option<u16>,
    rest: &'a str,
}

fn local_url(value: &str) -> Option<Url<'_>> {
    let (scheme, after) = value.split_once("://")?;
    let end = after.find(['/', '?']).unwrap_or(after.len());
    let (authority, rest) = after.split_at(end);
    let hostport = authority.rsplit('@').next()?;
    let (host, port) = match hostport.rsplit_once(':') {
        Some((h, p)) => (h, Some(p.parse().ok()?)),
        None => (hostport, None),
    };
    matches!(host, "localhost" | "127.0.0.1" | "0.0.0.0").then_some(Url { scheme, port, rest })
}

/// Redis named by a `redis://localhost…` URL in a `.env` becomes a service
/// (one for the whole stack), and the URL is rewritten to its host and port
/// variables (`${FPCTL_HOST_REDIS}` is 127.0.0.1 here, and the service's
/// name once exported to compose or Kubernetes).
pub fn infrastructure(
    draft: &mut Draft,
    found: &mut [Found],
    ports: &mut PortPlan,
    report: &mut Report,
) {
    for f in found.iter_mut() {
        for (key, value) in f.env.clone() {
            let Some(url) = local_url(&value) else {
                continue;
            };
            match url.scheme {
                "redis" => {
                    let name = redis_service(draft, url.port.unwrap_or(6379), ports, report, &key);
                    let rewritten = format!(
                        "redis://${{{}}}:${{{}}}{}",
                        host_var_name(&name),
                        port_var_name(&name),
                        url.rest
                    );
                    f.svc.set_env(&key, &rewritten);
                    f.svc.add_dependency(&name);
                    report.found.push(format!(
                        "{}: uses {name} ({key} in its .env; now {rewritten})",
                        f.svc.name
                    ));
                }
                "postgres" | "postgresql" | "mysql" => report.undecided.push(format!(
                    "{}: {key} names a local {} server; not added (it needs a one-time \
                     initialisation): run it yourself, or add it to services.toml",
                    f.svc.name, url.scheme
                )),
                _ => {}
            }
        }
    }
}

fn redis_service(
    draft: &mut Draft,
    written: u16,
    ports: &mut PortPlan,
    report: &mut Report,
    key: &str,
) -> String {
    if let Some(existing) = draft
        .services
        .iter()
        .find(|s| !s.stub && program(s) == Some("redis-server"))
    {
        return existing.name.clone();
    }
    let port = ports.claim(written);
    let mut svc = DraftService::new("redis");
    svc.note(format!("redis, named by {key} in a .env file"));
    svc.set(
        "command",
        "redis-server --port ${PORT} --save '' --appendonly no",
    );
    svc.set("port", i64::from(port));
    svc.set(
        "health",
        inline([("exec", "redis-cli -p ${PORT} ping".into())]),
    );
    if port != written {
        report
            .guessed
            .push(format!("redis: port {written} is in use now; given {port}"));
    }
    draft.services.push(svc);
    "redis".into()
}

fn program(s: &DraftService) -> Option<&str> {
    s.get_str("command")?.split_whitespace().next()
}

/// `A` depends on `B` when A's `.env` has a `B_URL`-like key or a local URL
/// on B's port, or A's code names `localhost:PORT` of B. Env URLs are
/// rewritten to B's port variable; a link that would close a cycle is left
/// out and reported.
pub fn dependencies(found: &mut [Found], draft: &Draft, report: &mut Report) {
    // (name, port as the project's files wrote it) of everything with a port.
    let mut targets: Vec<(String, u16)> = found
        .iter()
        .filter_map(|f| Some((f.svc.name.clone(), f.written_port?)))
        .collect();
    targets.extend(
        draft
            .services
            .iter()
            .filter(|s| !s.stub)
            .filter_map(|s| Some((s.name.clone(), s.port()?))),
    );
    let mut count: HashMap<u16, usize> = HashMap::new();
    for (_, p) in &targets {
        *count.entry(*p).or_default() += 1;
    }
    for i in 0..found.len() {
        for (target, written) in &targets {
            if *target == found[i].svc.name || found[i].svc.depends_on().contains(target) {
                continue;
            }
            let unique_port = count.get(written) == Some(&1);
            let Some(why) = link(&mut found[i], target, *written, unique_port) else {
                continue;
            };
            let deps = all_deps(found, draft);
            if reaches(&deps, target, &found[i].svc.name) {
                report.undecided.push(format!(
                    "{} names {target} ({why}), but {target} already depends on it; \
                     no depends_on written",
                    found[i].svc.name
                ));
                continue;
            }
            found[i].svc.add_dependency(target);
            report
                .found
                .push(format!("{} depends on {target}: {why}", found[i].svc.name));
        }
    }
}

/// Why `f` needs `target`, rewriting its `.env` addresses to the target's
/// port variable; None when nothing names it.
fn link(f: &mut Found, target: &str, written: u16, unique_port: bool) -> Option<String> {
    let var = port_var_name(target);
    let prefix = var.trim_start_matches("FPCTL_PORT_").to_string();
    let mut why = None;
    for (key, value) in f.env.clone() {
        let named = key.starts_with(&format!("{prefix}_"))
            && ["_URL", "_HOST", "_ADDR", "_PORT", "_ENDPOINT"]
                .iter()
                .any(|s| key.ends_with(s));
        let url = local_url(&value);
        let on_port = url.as_ref().is_some_and(|u| u.port == Some(written));
        if !(named || unique_port && on_port) {
            continue;
        }
        if let Some(u) = url.filter(|u| u.port == Some(written)) {
            let host = host_var_name(target);
            let rewritten = format!("{}://${{{host}}}:${{{var}}}{}", u.scheme, u.rest);
            f.svc.set_env(&key, &rewritten);
        } else if key.ends_with("_PORT") && value == written.to_string() {
            f.svc.set_env(&key, &format!("${{{var}}}"));
        }
        why = Some(format!("{key} in its .env"));
    }
    if why.is_none() && unique_port {
        let named = ["localhost", "127.0.0.1"]
            .iter()
            .any(|h| f.code.contains(&format!("{h}:{written}")));
        if named {
            why = Some(format!(
                "its code names port {written}; pass it ${{{var}}} if that port changed"
            ));
        }
    }
    why
}

fn all_deps(found: &[Found], draft: &Draft) -> HashMap<String, Vec<String>> {
    found
        .iter()
        .map(|f| &f.svc)
        .chain(draft.services.iter())
        .map(|s| (s.name.clone(), s.depends_on()))
        .collect()
}

fn reaches(deps: &HashMap<String, Vec<String>>, from: &str, to: &str) -> bool {
    let mut stack = vec![from.to_string()];
    let mut seen = Vec::new();
    while let Some(n) = stack.pop() {
        if n == to {
            return true;
        }
        if seen.contains(&n) {
            continue;
        }
        if let Some(d) = deps.get(&n) {
            stack.extend(d.iter().cloned());
        }
        seen.push(n);
    }
    false
}

/// Infrastructure first, then one tier per dependency depth among apps;
/// services are reordered to match.
pub fn tiers(draft: &mut Draft) {
    let infra: Vec<String> = draft
        .services
        .iter()
        .filter(|s| program(s).is_some_and(|p| INFRA_PROGRAMS.contains(&p)))
        .map(|s| s.name.clone())
        .collect();
    let deps: HashMap<String, Vec<String>> = draft
        .services
        .iter()
        .map(|s| (s.name.clone(), s.depends_on()))
        .collect();
    let mut depth: HashMap<String, usize> = HashMap::new();
    for s in &draft.services {
        app_depth(&s.name, &deps, &infra, &mut depth, 0);
    }
    let levels = draft
        .services
        .iter()
        .filter(|s| !infra.contains(&s.name))
        .map(|s| depth[&s.name])
        .max();
    let mut names: Vec<(String, String)> = Vec::new();
    if !infra.is_empty() {
        names.push((super::ranges::INFRA_TIER.into(), "Infrastructure".into()));
    }
    match levels {
        Some(0) => names.push(("apps".into(), "Applications".into())),
        Some(max) => {
            for d in 0..=max {
                names.push((
                    format!("apps-{}", d + 1),
                    format!("Applications, level {}", d + 1),
                ));
            }
        }
        None => {}
    }
    let tier_of = |name: &str| -> usize {
        if infra.iter().any(|n| n == name) {
            0
        } else {
            usize::from(!infra.is_empty()) + depth[name]
        }
    };
    for s in &mut draft.services {
        let t = tier_of(&s.name);
        s.set_first("tier", names[t].0.as_str());
    }
    draft.services.sort_by_key(|s| tier_of(&s.name));
    draft.tiers = names;
}

fn app_depth(
    name: &str,
    deps: &HashMap<String, Vec<String>>,
    infra: &[String],
    depth: &mut HashMap<String, usize>,
    guard: usize,
) -> usize {
    if let Some(&d) = depth.get(name) {
        return d;
    }
    let d = if guard > deps.len() {
        0
    } else {
        deps.get(name)
            .into_iter()
            .flatten()
            .filter(|d| !infra.contains(d) && deps.contains_key(*d))
            .map(|d| 1 + app_depth(d, deps, infra, depth, guard + 1))
            .max()
            .unwrap_or(0)
    };
    depth.insert(name.to_string(), d);
    d
}

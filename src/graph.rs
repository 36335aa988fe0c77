//! The dependency graph: selection, start order (tiers, then levels inside a
//! tier) and stop order. Pure functions over a validated [`Config`], which
//! already guarantees no cycles and no dependency on a later tier.

use std::collections::BTreeSet;

use crate::config::Config;

/// The start order of a selection: tiers in declared order, and inside each
/// tier, levels whose services may start in parallel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub tiers: Vec<TierPlan>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierPlan {
    /// Index into `Config::tiers`.
    pub tier: usize,
    /// Service indices; every same-tier dependency is in an earlier level.
    pub levels: Vec<Vec<usize>>,
}

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error("no service named \"{0}\" in {1}{2}")]
    Unknown(String, String, String),
    #[error("no profile named \"{name}\" in {file}{hint}; {known}")]
    UnknownProfile {
        name: String,
        file: String,
        hint: String,
        known: String,
    },
}

/// Every profile asked for must be one that some service names: a typo
/// would otherwise select nothing of it, silently.
pub fn check_profiles(config: &Config, profiles: &[String]) -> Result<(), SelectError> {
    let known: BTreeSet<&str> = config
        .services
        .iter()
        .flat_map(|s| s.profiles.iter().map(String::as_str))
        .collect();
    for p in profiles.iter().filter(|p| !p.is_empty()) {
        if known.contains(p.as_str()) {
            continue;
        }
        let hint = crate::config::suggest(p, known.iter().copied())
            .map(|n| format!(" (did you mean \"{n}\"?)"))
            .unwrap_or_default();
        let known = if known.is_empty() {
            "it defines no profiles".to_string()
        } else {
            let names: Vec<&str> = known.iter().copied().collect();
            format!("its profiles: {}", names.join(", "))
        };
        return Err(SelectError::UnknownProfile {
            name: p.clone(),
            file: config.path.display().to_string(),
            hint,
            known,
        });
    }
    Ok(())
}

/// The services to start: the named ones (or every enabled one whose profiles
/// match) and, transitively, everything they depend on.
pub fn select(
    config: &Config,
    names: &[String],
    profiles: &[String],
) -> Result<BTreeSet<usize>, SelectError> {
    check_profiles(config, profiles)?;
    let mut roots = Vec::new();
    if names.is_empty() {
        for (i, s) in config.services.iter().enumerate() {
            let in_profile =
                s.profiles.is_empty() || s.profiles.iter().any(|p| profiles.contains(p));
            if in_profile && !s.disabled {
                roots.push(i);
            }
        }
    } else {
        for name in &config.expand_names(names) {
            let (i, _) = config.service(name).ok_or_else(|| {
                let hint =
                    crate::config::suggest(name, config.services.iter().map(|s| s.name.as_str()))
                        .map(|n| format!(" (did you mean \"{n}\"?)"))
                        .unwrap_or_default();
                SelectError::Unknown(name.clone(), config.path.display().to_string(), hint)
            })?;
            roots.push(i);
        }
    }
    Ok(with_dependencies(config, roots))
}

/// `roots` and everything they depend on, transitively.
pub fn with_dependencies(
    config: &Config,
    roots: impl IntoIterator<Item = usize>,
) -> BTreeSet<usize> {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<usize> = roots.into_iter().collect();
    while let Some(i) = stack.pop() {
        if seen.insert(i) {
            stack.extend(config.services[i].depends_on.iter().copied());
        }
    }
    seen
}

/// `roots` and everything that depends on them, transitively.
pub fn with_dependents(config: &Config, roots: impl IntoIterator<Item = usize>) -> BTreeSet<usize> {
    // Who depends on whom, once: a walk that scanned every service for each
    // one it reached would be quadratic.
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); config.services.len()];
    for (j, s) in config.services.iter().enumerate() {
        for &d in &s.depends_on {
            dependents[d].push(j);
        }
    }
    let mut seen = BTreeSet::new();
    let mut stack: Vec<usize> = roots.into_iter().collect();
    while let Some(i) = stack.pop() {
        if seen.insert(i) {
            stack.extend(dependents[i].iter().copied());
        }
    }
    seen
}

/// Start order of `selected`: linear in services and dependencies.
pub fn plan(config: &Config, selected: &BTreeSet<usize>) -> Plan {
    let services = &config.services;
    // Each tier's members in file order.
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); config.tiers.len()];
    for &i in selected {
        members[services[i].tier].push(i);
    }
    // A service's level is the length of the longest chain of selected
    // same-tier dependencies below it: found depth first, each service once.
    const UNSEEN: usize = usize::MAX;
    const ON_PATH: usize = usize::MAX - 1;
    let mut level = vec![UNSEEN; services.len()];
    let counts = |d: usize, t: usize| services[d].tier == t && selected.contains(&d);
    let mut tiers = Vec::new();
    for (t, members) in members.into_iter().enumerate() {
        if members.is_empty() {
            continue;
        }
        for &root in &members {
            if level[root] != UNSEEN {
                continue;
            }
            // (service, next dependency to look at)
            let mut stack = vec![(root, 0)];
            level[root] = ON_PATH;
            while let Some(&mut (i, ref mut next)) = stack.last_mut() {
                let deps = &services[i].depends_on;
                if let Some(&d) = deps.get(*next) {
                    *next += 1;
                    if counts(d, t) && level[d] == UNSEEN {
                        level[d] = ON_PATH;
                        stack.push((d, 0));
                    } else {
                        assert!(level[d] != ON_PATH, "validated config has no cycles");
                    }
                    continue;
                }
                level[i] = deps
                    .iter()
                    .filter(|&&d| counts(d, t))
                    .map(|&d| level[d] + 1)
                    .max()
                    .unwrap_or(0);
                stack.pop();
            }
        }
        let depth = members.iter().map(|&i| level[i]).max().unwrap_or(0);
        let mut levels: Vec<Vec<usize>> = vec![Vec::new(); depth + 1];
        for &i in &members {
            levels[level[i]].push(i);
        }
        tiers.push(TierPlan { tier: t, levels });
    }
    Plan { tiers }
}

impl Plan {
    /// Every service in start order.
    pub fn start_order(&self) -> Vec<usize> {
        self.tiers
            .iter()
            .flat_map(|t| t.levels.iter().flatten().copied())
            .collect()
    }

    /// Every service in stop order: the reverse of the start order.
    pub fn stop_order(&self) -> Vec<usize> {
        let mut order = self.start_order();
        order.reverse();
        order
    }
}

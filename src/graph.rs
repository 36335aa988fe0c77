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
}

/// The services to start: the named ones (or every enabled one whose profiles
/// match) and, transitively, everything they depend on.
pub fn select(
    config: &Config,
    names: &[String],
    profiles: &[String],
) -> Result<BTreeSet<usize>, SelectError> {
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
    let mut seen = BTreeSet::new();
    let mut stack: Vec<usize> = roots.into_iter().collect();
    while let Some(i) = stack.pop() {
        if seen.insert(i) {
            stack.extend(
                config
                    .services
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.depends_on.contains(&i))
                    .map(|(j, _)| j),
            );
        }
    }
    seen
}

/// Start order of `selected`.
pub fn plan(config: &Config, selected: &BTreeSet<usize>) -> Plan {
    let mut level = vec![usize::MAX; config.services.len()];
    let mut tiers = Vec::new();
    for t in 0..config.tiers.len() {
        let members: Vec<usize> = selected
            .iter()
            .copied()
            .filter(|&i| config.services[i].tier == t)
            .collect();
        if members.is_empty() {
            continue;
        }
        // Levels by repeated relaxation: a validated config has no cycles, so
        // at most members.len() rounds settle every level.
        let mut levels: Vec<Vec<usize>> = Vec::new();
        let mut placed = 0;
        while placed < members.len() {
            let ready: Vec<usize> = members
                .iter()
                .copied()
                .filter(|&i| level[i] == usize::MAX)
                .filter(|&i| {
                    config.services[i].depends_on.iter().all(|&d| {
                        config.services[d].tier != t
                            || !selected.contains(&d)
                            || level[d] < levels.len()
                    })
                })
                .collect();
            assert!(!ready.is_empty(), "validated config has no cycles");
            for &i in &ready {
                level[i] = levels.len();
            }
            placed += ready.len();
            levels.push(ready);
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

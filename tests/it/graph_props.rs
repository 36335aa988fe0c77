//! Property tests for the dependency graph: random DAGs spread over tiers are
//! rendered to services.toml text, loaded with `fpctl::config::load_str`, and
//! the plan, selection and cycle detection are checked against a model.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;

use fpctl::config::{load_str, Config, ConfigError};
use fpctl::graph::{plan, select, with_dependencies};
use proptest::prelude::*;

/// A generated stack: service `i` is in tier `tiers[i]` and depends on
/// `deps[i]` (indices, in file order).
#[derive(Debug, Clone)]
struct Stack {
    tier_count: usize,
    tiers: Vec<usize>,
    deps: Vec<Vec<usize>>,
}

/// Names with the characters a service name may use, all distinct.
fn name(i: usize) -> String {
    match i % 4 {
        0 => format!("svc{i}"),
        1 => format!("api-{i}"),
        2 => format!("db_{i}"),
        _ => format!("w.{i}"),
    }
}

impl Stack {
    fn len(&self) -> usize {
        self.tiers.len()
    }

    fn to_toml(&self) -> String {
        let mut out = String::from("[project]\nname = \"props\"\n\n");
        for t in 0..self.tier_count {
            out.push_str(&format!("[[tier]]\nname = \"tier{t}\"\n\n"));
        }
        for i in 0..self.len() {
            out.push_str(&format!(
                "[services.\"{}\"]\ntier = \"tier{}\"\ncommand = \"run {i}\"\n",
                name(i),
                self.tiers[i]
            ));
            if !self.deps[i].is_empty() {
                let deps: Vec<String> = self.deps[i]
                    .iter()
                    .map(|&d| format!("\"{}\"", name(d)))
                    .collect();
                out.push_str(&format!("depends_on = [{}]\n", deps.join(", ")));
            }
            out.push('\n');
        }
        out
    }

    /// `root` and everything it depends on, transitively.
    fn reachable(&self, root: usize) -> BTreeSet<usize> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![root];
        while let Some(i) = todo.pop() {
            if seen.insert(i) {
                todo.extend(&self.deps[i]);
            }
        }
        seen
    }

    /// Pairs (from, to) with `to` reachable from `from` through same-tier
    /// edges only, `from != to`: adding the edge to -> from closes a cycle
    /// that breaks no tier rule.
    fn same_tier_paths(&self) -> Vec<(usize, usize)> {
        let mut pairs = Vec::new();
        for from in 0..self.len() {
            let mut seen = BTreeSet::new();
            let mut todo = vec![from];
            while let Some(i) = todo.pop() {
                if seen.insert(i) {
                    todo.extend(
                        self.deps[i]
                            .iter()
                            .filter(|&&d| self.tiers[d] == self.tiers[from]),
                    );
                }
            }
            pairs.extend(
                seen.into_iter()
                    .filter(|&to| to != from)
                    .map(|to| (from, to)),
            );
        }
        pairs
    }
}

/// N services (1..40) over T tiers (1..5). A random permutation is the
/// topological numbering; a service may depend only on services that come
/// earlier in it and sit in the same or an earlier tier, so there is no cycle.
fn stack() -> impl Strategy<Value = Stack> {
    (1usize..40, 1usize..5).prop_flat_map(|(n, t)| {
        (
            Just(t),
            proptest::collection::vec(0..t, n),
            Just((0..n).collect::<Vec<usize>>()).prop_shuffle(),
            proptest::collection::vec(any::<u64>(), n),
            // Edge density: from sparse to dense.
            0u32..4,
        )
            .prop_map(|(tier_count, tiers, topo, masks, density)| {
                let n = tiers.len();
                let mut rank = vec![0; n];
                for (r, &i) in topo.iter().enumerate() {
                    rank[i] = r;
                }
                let deps = (0..n)
                    .map(|i| {
                        (0..n)
                            .filter(|&j| rank[j] < rank[i] && tiers[j] <= tiers[i])
                            // Keep a candidate when `density + 1` random bits
                            // agree, so the graph is often sparse.
                            .filter(|&j| {
                                (0..=density)
                                    .all(|k| masks[i].rotate_left(j as u32 + 7 * k) & 1 == 1)
                            })
                            .collect()
                    })
                    .collect();
                Stack {
                    tier_count,
                    tiers,
                    deps,
                }
            })
    })
}

fn config_path() -> PathBuf {
    std::env::temp_dir()
        .join("fpctl-graph-props")
        .join("services.toml")
}

fn load(stack: &Stack) -> Result<Config, ConfigError> {
    load_str(&config_path(), stack.to_toml())
}

/// The config indices of the generated services (by name, not assuming order).
fn indices(config: &Config, stack: &Stack) -> Vec<usize> {
    (0..stack.len())
        .map(|i| {
            config
                .service(&name(i))
                .unwrap_or_else(|| panic!("{} missing", name(i)))
                .0
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn plan_respects_dependencies_and_tiers(stack in stack()) {
        let config = match load(&stack) {
            Ok(c) => c,
            Err(e) => return Err(TestCaseError::fail(format!("{e}\n{}", stack.to_toml()))),
        };
        prop_assert_eq!(config.services.len(), stack.len());
        prop_assert_eq!(config.tiers.len(), stack.tier_count);
        let idx = indices(&config, &stack);
        for i in 0..stack.len() {
            let s = &config.services[idx[i]];
            prop_assert_eq!(s.tier, stack.tiers[i]);
            let want: BTreeSet<usize> = stack.deps[i].iter().map(|&d| idx[d]).collect();
            let got: BTreeSet<usize> = s.depends_on.iter().copied().collect();
            prop_assert_eq!(got, want, "dependencies of {}", s.name);
        }

        let all: BTreeSet<usize> = (0..config.services.len()).collect();
        let p = plan(&config, &all);
        let order = p.start_order();

        // Every service exactly once.
        prop_assert_eq!(order.len(), config.services.len());
        let mut position = HashMap::new();
        for (k, &i) in order.iter().enumerate() {
            prop_assert!(position.insert(i, k).is_none(), "{} twice", config.services[i].name);
        }
        prop_assert_eq!(position.keys().copied().collect::<BTreeSet<_>>(), all);

        // Dependencies first.
        for (i, s) in config.services.iter().enumerate() {
            for &d in &s.depends_on {
                prop_assert!(
                    position[&d] < position[&i],
                    "{} starts before its dependency {}", s.name, config.services[d].name
                );
            }
        }

        // Tiers never go back.
        for w in order.windows(2) {
            prop_assert!(config.services[w[0]].tier <= config.services[w[1]].tier);
        }

        // Each tier plan holds exactly its own services, in tier order, and a
        // same-tier dependency is in a strictly earlier level.
        let mut level = HashMap::new();
        let mut last_tier = None;
        for tp in &p.tiers {
            prop_assert!(last_tier < Some(tp.tier), "tier plans out of order");
            last_tier = Some(tp.tier);
            prop_assert!(!tp.levels.is_empty());
            for (l, members) in tp.levels.iter().enumerate() {
                prop_assert!(!members.is_empty(), "empty level");
                for &i in members {
                    prop_assert_eq!(config.services[i].tier, tp.tier);
                    level.insert(i, l);
                }
            }
        }
        for (i, s) in config.services.iter().enumerate() {
            for &d in &s.depends_on {
                if config.services[d].tier == s.tier {
                    prop_assert!(
                        level[&d] < level[&i],
                        "{} (level {}) is not after {} (level {})",
                        s.name, level[&i], config.services[d].name, level[&d]
                    );
                }
            }
        }

        // Stopping is the exact reverse of starting.
        let mut reversed = order.clone();
        reversed.reverse();
        prop_assert_eq!(p.stop_order(), reversed);
    }

    #[test]
    fn select_is_the_transitive_closure(stack in stack(), pick in any::<prop::sample::Index>()) {
        let config = load(&stack).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let idx = indices(&config, &stack);
        let root = pick.index(stack.len());
        let want: BTreeSet<usize> = stack.reachable(root).into_iter().map(|i| idx[i]).collect();

        let got = select(&config, &[name(root)], &[]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert!(got.contains(&idx[root]));
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(&with_dependencies(&config, [idx[root]]), &want);

        // The plan of a selection holds exactly the selection.
        let ordered: BTreeSet<usize> = plan(&config, &got).start_order().into_iter().collect();
        prop_assert_eq!(&ordered, &want);

        // With no names and no profiles, everything is selected.
        let everything = select(&config, &[], &[]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(everything.len(), stack.len());
    }

    #[test]
    fn a_back_edge_is_reported_as_a_cycle(
        stack in stack().prop_filter("needs two services", |s| s.len() >= 2),
        pick in any::<prop::sample::Index>(),
        fresh_tier in any::<prop::sample::Index>(),
    ) {
        let mut stack = stack;
        let pairs = stack.same_tier_paths();
        let (from, to) = if pairs.is_empty() {
            // No same-tier path yet: add two services that form one.
            let tier = fresh_tier.index(stack.tier_count);
            let a = stack.len();
            stack.tiers.extend([tier, tier]);
            stack.deps.push(vec![a + 1]);
            stack.deps.push(Vec::new());
            (a, a + 1)
        } else {
            pairs[pick.index(pairs.len())]
        };
        // `from` reaches `to`; now `to` depends on `from` too.
        stack.deps[to].push(from);

        let text = stack.to_toml();
        let err = match load_str(&config_path(), text.clone()) {
            Ok(_) => return Err(TestCaseError::fail(format!("cycle accepted:\n{text}"))),
            Err(e) => e,
        };
        let shown = err.to_string();
        prop_assert!(shown.contains("dependency cycle"), "{}", shown);

        let ConfigError::Invalid { diagnostics, .. } = &err else {
            return Err(TestCaseError::fail(format!("not an Invalid error: {err}")));
        };
        let by_name: HashMap<String, usize> = (0..stack.len()).map(|i| (name(i), i)).collect();
        for d in diagnostics {
            // Only cycles are wrong with this file, and each one printed is real.
            let cycle = d.message.strip_prefix("dependency cycle: ");
            prop_assert!(cycle.is_some(), "unexpected error: {}", d.message);
            let names: Vec<&str> = cycle.unwrap().split(" -> ").collect();
            prop_assert!(names.len() >= 3, "{}", d.message);
            prop_assert_eq!(names.first(), names.last(), "{}", d.message);
            let distinct: BTreeSet<&str> = names[1..].iter().copied().collect();
            prop_assert_eq!(distinct.len(), names.len() - 1, "{}", d.message);
            for w in names.windows(2) {
                let (a, b) = (by_name[w[0]], by_name[w[1]]);
                prop_assert!(stack.deps[a].contains(&b), "no edge {} -> {}", w[0], w[1]);
            }
            // It points at the first edge of the cycle, in the first service's
            // depends_on.
            let span = d.span.clone().expect("a cycle has a location");
            prop_assert_eq!(&text[span.clone()], format!("\"{}\"", names[1]));
            let table = text.find(&format!("[services.\"{}\"]", names[0])).unwrap();
            prop_assert!(span.start > table);
            let next_table = text[table + 1..].find("[services.").map_or(text.len(), |k| table + 1 + k);
            prop_assert!(span.end < next_table);
        }
    }
}

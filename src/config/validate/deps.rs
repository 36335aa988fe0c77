//! `depends_on` between services: cycles.

use std::ops::Range;

use super::Validator;
use crate::config::Service;

impl Validator<'_> {
    /// Report every dependency cycle once, as `a -> b -> c -> a`.
    pub(super) fn cycles(&mut self, services: &[Service], dep_spans: &[Vec<Range<usize>>]) {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        let n = services.len();
        let mut mark = vec![Mark::New; n];
        let mut reported: Vec<Vec<usize>> = Vec::new();
        // Iterative DFS: stack of (node, next edge index).
        for start in 0..n {
            if mark[start] != Mark::New {
                continue;
            }
            let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
            mark[start] = Mark::Active;
            while let Some(&mut (node, ref mut edge)) = stack.last_mut() {
                if let Some(&next) = services[node].depends_on.get(*edge) {
                    *edge += 1;
                    match mark[next] {
                        Mark::New => {
                            mark[next] = Mark::Active;
                            stack.push((next, 0));
                        }
                        Mark::Active => {
                            let from = stack
                                .iter()
                                .position(|(x, _)| *x == next)
                                .expect("active node is on the stack");
                            let cycle: Vec<usize> = stack[from..].iter().map(|(x, _)| *x).collect();
                            let mut key = cycle.clone();
                            key.sort_unstable();
                            if !reported.contains(&key) {
                                reported.push(key);
                                let mut names: Vec<&str> =
                                    cycle.iter().map(|&x| services[x].name.as_str()).collect();
                                names.push(&services[next].name);
                                let (first, first_edge) = stack[from];
                                let span = dep_spans[first][first_edge - 1].clone();
                                self.error(
                                    span,
                                    format!("dependency cycle: {}", names.join(" -> ")),
                                );
                            }
                        }
                        Mark::Done => {}
                    }
                } else {
                    mark[node] = Mark::Done;
                    stack.pop();
                }
            }
        }
    }
}

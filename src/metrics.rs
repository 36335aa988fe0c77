//! What fpctl measures about services beyond their state: resident memory
//! and CPU use summed over each service's process group (read from /proc
//! when someone looks: a status request, a live watcher, a `max_memory`
//! limit), and the last probe results of each service.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use crate::health::Verdict;
use crate::status::ProbeSample;

/// How many probe results are kept per service.
pub const HISTORY_LEN: usize = 100;

/// One process group's use at a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub rss_bytes: u64,
    /// % of one core since the previous sample (at the first one, since
    /// the group's leader started).
    pub cpu_percent: Option<f64>,
}

/// Turns CPU time into a rate between consecutive samples.
pub struct Sampler {
    /// Per group: CPU ticks and when they were read.
    prev: HashMap<i32, (u64, Instant)>,
    page: u64,
    hz: f64,
}

impl Default for Sampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Sampler {
    pub fn new() -> Self {
        // SAFETY: sysconf has no preconditions.
        let (page, hz) = unsafe {
            (
                libc::sysconf(libc::_SC_PAGESIZE),
                libc::sysconf(libc::_SC_CLK_TCK),
            )
        };
        Sampler {
            prev: HashMap::new(),
            page: page.max(1) as u64,
            hz: hz.max(1) as f64,
        }
    }

    /// Measure the groups led by `pgids`. Only this process's descendants
    /// (which include orphans re-parented to it, a subreaper) are read, plus
    /// any group leader found nowhere under it (a process adopted from an
    /// earlier supervisor), so the cost follows the number of supervised
    /// processes, not of processes on the machine.
    pub fn sample(&mut self, pgids: &[i32]) -> HashMap<i32, Usage> {
        let now = Instant::now();
        let mut groups: HashMap<i32, (u64, u64)> = HashMap::new();
        let mut seen = std::collections::HashSet::new();
        walk(std::process::id() as i32, &mut groups, &mut seen);
        for &pgid in pgids {
            if !seen.contains(&pgid) {
                walk(pgid, &mut groups, &mut seen);
            }
        }
        let mut out = HashMap::with_capacity(pgids.len());
        let mut prev = HashMap::with_capacity(pgids.len());
        for &pgid in pgids {
            let Some(&(pages, ticks)) = groups.get(&pgid) else {
                continue;
            };
            // Since the previous sample; for a group seen the first time,
            // since its leader started (as `ps` shows it).
            let cpu_percent = match self.prev.get(&pgid) {
                Some(&(before, at)) => {
                    let secs = now.duration_since(at).as_secs_f64();
                    (ticks >= before && secs > 0.0)
                        .then(|| (ticks - before) as f64 / self.hz / secs * 100.0)
                }
                None => self.lifetime(pgid, ticks),
            };
            prev.insert(pgid, (ticks, now));
            out.insert(
                pgid,
                Usage {
                    rss_bytes: pages * self.page,
                    cpu_percent,
                },
            );
        }
        self.prev = prev;
        out
    }
}

/// Add `pid` and its descendants to `groups` (pgrp -> rss pages, CPU ticks).
impl Sampler {
    /// CPU % of a group since its leader started.
    fn lifetime(&self, leader: i32, ticks: u64) -> Option<f64> {
        let started = read_stat(leader)?.started;
        let uptime: f64 = std::fs::read_to_string("/proc/uptime")
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        let secs = uptime - started as f64 / self.hz;
        (secs > 0.0).then(|| ticks as f64 / self.hz / secs * 100.0)
    }
}

fn walk(
    pid: i32,
    groups: &mut HashMap<i32, (u64, u64)>,
    seen: &mut std::collections::HashSet<i32>,
) {
    let mut stack = vec![pid];
    while let Some(pid) = stack.pop() {
        if !seen.insert(pid) {
            continue;
        }
        let Some(stat) = read_stat(pid) else {
            continue;
        };
        let g = groups.entry(stat.pgrp).or_insert((0, 0));
        g.0 += stat.pages;
        g.1 += stat.ticks;
        stack.extend(children(pid, stat.threads));
    }
}

struct Stat {
    pgrp: i32,
    pages: u64,
    ticks: u64,
    threads: u64,
    /// Clock ticks after boot when it started.
    started: u64,
}

/// pgrp, resident pages, CPU ticks (user + system) and thread count.
fn read_stat(pid: i32) -> Option<Stat> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the command: state ppid pgrp ... utime (11) stime (12) ...
    // num_threads (17) ... rss (21).
    let fields: Vec<&str> = stat.get(stat.rfind(')')? + 2..)?.split(' ').collect();
    let num = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
    Some(Stat {
        pgrp: fields.get(2)?.parse().ok()?,
        pages: num(21)?,
        ticks: num(11)? + num(12)?,
        threads: num(17)?,
        started: num(19)?,
    })
}

/// Direct children of every thread of `pid` (one read for a
/// single-threaded process, which most services are).
fn children(pid: i32, threads: u64) -> Vec<i32> {
    let parse = |s: String| -> Vec<i32> {
        s.split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    };
    if threads == 1 {
        return std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
            .map(parse)
            .unwrap_or_default();
    }
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(parse)
        .collect()
}

/// The last [`HISTORY_LEN`] probe results of one service, oldest first.
#[derive(Debug, Clone, Default)]
pub struct History(VecDeque<Kept>);

/// A probe result as kept: 16 bytes, where a [`ProbeSample`] with its
/// verdict as a string takes 40 and an allocation. A hundred of them per
/// service adds up at a thousand services.
#[derive(Debug, Clone, Copy)]
struct Kept {
    ts: f64,
    latency_ms: f32,
    verdict: Verdict,
}

impl History {
    pub fn push(&mut self, ts: f64, verdict: Verdict, latency_ms: f64) {
        if self.0.capacity() == 0 {
            self.0.reserve_exact(HISTORY_LEN);
        }
        if self.0.len() == HISTORY_LEN {
            self.0.pop_front();
        }
        self.0.push_back(Kept {
            ts,
            latency_ms: latency_ms as f32,
            verdict,
        });
    }

    pub fn to_vec(&self) -> Vec<ProbeSample> {
        self.0
            .iter()
            .map(|k| ProbeSample {
                ts: k.ts,
                verdict: k.verdict.as_str().into(),
                latency_ms: f64::from(k.latency_ms),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_keeps_the_newest_hundred() {
        let mut h = History::default();
        for i in 0..150 {
            h.push(i as f64, Verdict::Healthy, 1.0);
        }
        let v = h.to_vec();
        assert_eq!(v.len(), HISTORY_LEN);
        assert_eq!(v[0].ts, 50.0);
        assert_eq!(v[99].ts, 149.0);
    }
}

//! Tier port ranges for a drafted file, as teams with a port registry write
//! them (`ports = "8000-8099"`). Each tier of apps with ports gets a range
//! around the port its services hold most firmly, within that port's block
//! of 100 and overlapping no other tier's; a port outside its tier's range
//! moves into it when its service takes its port from `PORT`. The
//! infrastructure tier gets none: its programs keep their well-known ports.

use std::collections::HashMap;

use super::{Found, Report};
use crate::draft::{Draft, PortPlan};

/// How firmly a service holds its port, weakest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Hold {
    /// Made up here (a Procfile's, from 5000 up): any other will do.
    Invented,
    /// Handed out here next to the one its files name, which was taken.
    Given,
    /// As its own files write it; it reads `PORT`, so it could move.
    Written,
    /// Written into its code or command, not read from `PORT`.
    Fixed,
}

const BLOCK: u16 = 100;

/// The tier `links::tiers` puts infrastructure in.
pub const INFRA_TIER: &str = "infra";

/// Where tiers of only automatic ports look for a block of their own.
const FIRST_FREE_BLOCK: u16 = 8000;

/// How firmly each service holds its port: the drafted ones (compose,
/// infrastructure) and the apps found.
pub fn holds(draft: &Draft, found: &[Found]) -> HashMap<String, Hold> {
    let mut holds = HashMap::new();
    for s in draft.services.iter().filter(|s| !s.stub) {
        let reads_port = s.get_str("command").is_some_and(|c| c.contains("PORT"));
        let hold = if reads_port { Hold::Given } else { Hold::Fixed };
        holds.insert(s.name.clone(), hold);
    }
    for f in found {
        let kept = f.written_port.is_some() && f.written_port == f.svc.port();
        let hold = match (f.movable, f.port_settled, kept) {
            (false, ..) => Hold::Fixed,
            (true, true, _) => Hold::Invented,
            (true, false, true) => Hold::Written,
            (true, false, false) => Hold::Given,
        };
        holds.insert(f.svc.name.clone(), hold);
    }
    holds
}

/// Give each tier with ports a range, and move the ports that can move into
/// their tier's. A tier whose fixed ports cannot all fit gets no range (and
/// its automatic ports become fixed ones), as the report says.
pub fn assign(
    draft: &mut Draft,
    holds: &HashMap<String, Hold>,
    ports: &mut PortPlan,
    report: &mut Report,
) {
    let tiers: Vec<String> = draft.tiers.iter().map(|(n, _)| n.clone()).collect();
    let tier_of = |s: &crate::draft::DraftService| {
        let name = s.get_str("tier")?;
        tiers.iter().position(|t| t == name)
    };
    let hold = |name: &str| holds.get(name).copied().unwrap_or(Hold::Fixed);

    // Each tier's anchor: the port held most firmly (the first of equals).
    let mut best: Vec<Option<(Hold, u16)>> = vec![None; tiers.len()];
    let mut has_ports = vec![false; tiers.len()];
    for s in draft.services.iter().filter(|s| !s.stub) {
        let Some(t) = tier_of(s) else { continue };
        // Infrastructure keeps its programs' well-known ports (redis 6379,
        // postgres 5432…), which no block of 100 holds: no range for it, so
        // that adding one more never clashes with a range.
        if tiers[t] == INFRA_TIER {
            continue;
        }
        has_ports[t] |= s.port().is_some() || is_auto(s);
        if let Some(p) = s.port() {
            let h = hold(&s.name);
            if best[t].is_none_or(|(b, _)| h > b) {
                best[t] = Some((h, p));
            }
        }
    }
    let mut anchors: Vec<(u16, usize)> = best
        .iter()
        .enumerate()
        .filter_map(|(t, b)| b.map(|(_, p)| (p, t)))
        .collect();
    anchors.sort_unstable();

    // The anchor's block of 100, cut halfway to the neighbouring anchors.
    let mut ranges: Vec<Option<(u16, u16)>> = vec![None; tiers.len()];
    for (k, &(a, t)) in anchors.iter().enumerate() {
        let block = a - a % BLOCK;
        let mut lo = block.max(1);
        let mut hi = block.saturating_add(BLOCK - 1);
        if let Some(&(prev, _)) = k.checked_sub(1).and_then(|j| anchors.get(j)) {
            lo = lo.max(prev + (a - prev) / 2 + 1);
        }
        if let Some(&(next, _)) = anchors.get(k + 1) {
            hi = hi.min(a + (next - a) / 2);
        }
        ranges[t] = Some((lo, hi));
    }
    // Tiers of only automatic ports: a free block of their own.
    for t in 0..tiers.len() {
        if has_ports[t] && ranges[t].is_none() {
            let free = (FIRST_FREE_BLOCK..u16::MAX - BLOCK)
                .step_by(usize::from(BLOCK))
                .find(|&lo| {
                    !ranges
                        .iter()
                        .flatten()
                        .any(|&(a, b)| lo <= b && a < lo + BLOCK)
                });
            ranges[t] = free.map(|lo| (lo, lo + BLOCK - 1));
        }
    }

    for (t, tier) in tiers.iter().enumerate() {
        let Some((lo, hi)) = ranges[t] else { continue };
        let members: Vec<usize> = (0..draft.services.len())
            .filter(|&i| !draft.services[i].stub && tier_of(&draft.services[i]) == Some(t))
            .collect();
        let outside = |i: usize| {
            draft.services[i]
                .port()
                .is_some_and(|p| !(lo..=hi).contains(&p))
        };
        if let Some(&i) = members
            .iter()
            .filter(|&&i| outside(i))
            .find(|&&i| hold(&draft.services[i].name) == Hold::Fixed)
        {
            let s = &draft.services[i];
            report.undecided.push(format!(
                "tier {tier}: no port range written: {}'s port {} is written into its code or command, outside {lo}-{hi}",
                s.name,
                s.port().unwrap_or_default()
            ));
            ranges[t] = None;
            continue;
        }
        // Moves first, then a port held back for each automatic one.
        let moving: Vec<usize> = members.iter().copied().filter(|&i| outside(i)).collect();
        let autos = members
            .iter()
            .filter(|&&i| is_auto(&draft.services[i]))
            .count();
        let mut claimed = Vec::new();
        for _ in 0..moving.len() + autos {
            match ports.claim_in(lo, hi) {
                Some(p) => claimed.push(p),
                None => break,
            }
        }
        if claimed.len() < moving.len() + autos {
            report.undecided.push(format!(
                "tier {tier}: no port range written: {lo}-{hi} has no room for all its services"
            ));
            ranges[t] = None;
            continue;
        }
        for (&i, &port) in moving.iter().zip(&claimed) {
            let s = &mut draft.services[i];
            let old = s.port().unwrap_or_default();
            s.set("port", i64::from(port));
            report.guessed.push(format!(
                "{}: port {old} moved to {port}, into the range {lo}-{hi} of tier {tier}",
                s.name
            ));
        }
        draft.tier_ports.insert(tier.clone(), format!("{lo}-{hi}"));
    }

    // An automatic port needs a range: where there is none, a fixed one.
    for s in draft.services.iter_mut().filter(|s| !s.stub && is_auto(s)) {
        let ranged = s
            .get_str("tier")
            .is_some_and(|t| draft.tier_ports.contains_key(t));
        if !ranged {
            let port = ports.claim(FIRST_FREE_BLOCK);
            s.set_noted("port", i64::from(port), "guess: a free port");
            report
                .guessed
                .push(format!("{}: port {port}, a free one", s.name));
        }
    }
}

fn is_auto(s: &crate::draft::DraftService) -> bool {
    s.get_str("port") == Some("auto")
}

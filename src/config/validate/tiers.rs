//! `[[tier]]` tables and ports: fixed, automatic, per instance, and the
//! `FPCTL_PORT_*` variables every service sees.

use std::ops::Range;
use std::sync::Arc;

use crate::env_block::SharedEnv;

use toml::Spanned;

use super::values::describe;
use super::{Declared, Validator};
use crate::config::raw::Scalar;
use crate::config::{
    defaults, host_var_name, port_var_name, ports_var_name, Hosts, PortRange, Tier,
};

/// What a service's `port` says.
pub(super) enum PortSpec {
    Fixed(u16),
    Auto(PortRange),
    Invalid,
}

impl Validator<'_> {
    pub(super) fn tiers(&mut self, raw: Vec<Spanned<crate::config::raw::RawTier>>) -> Vec<Tier> {
        let mut tiers: Vec<Tier> = Vec::with_capacity(raw.len().max(1));
        self.tier_index.clear();
        for t in raw {
            let t = t.into_inner();
            let name = t.name.get_ref();
            if name.trim().is_empty() {
                self.error(t.name.span(), "tier name must not be empty");
            } else if self.tier_index.contains_key(name) {
                self.error(t.name.span(), format!("tier \"{name}\" is declared twice"));
            } else {
                self.tier_index.insert(name.clone(), tiers.len());
            }
            let ports = t.ports.as_ref().and_then(|r| {
                let range = parse_port_range(r.get_ref());
                if range.is_none() {
                    self.error(
                        r.span(),
                        format!(
                            "ports of tier \"{name}\" must be a range like \"8000-8099\" (first-last, within 1-65535), found {:?}",
                            r.get_ref()
                        ),
                    );
                }
                range
            });
            tiers.push(Tier {
                name: name.clone(),
                title: t.title,
                ports,
            });
        }
        if tiers.is_empty() {
            self.tier_index.insert(defaults::TIER_NAME.into(), 0);
            tiers.push(Tier {
                name: defaults::TIER_NAME.into(),
                title: None,
                ports: None,
            });
        }
        tiers
    }

    /// A service's `port`: a number in 1-65535 inside its tier's range, or
    /// "auto" where the tier has a range. `tier` is None when the service's
    /// tier is unknown (reported already): no range is checked then.
    pub(super) fn port(
        &mut self,
        p: &Spanned<Scalar>,
        name: &str,
        tier: Option<&Tier>,
    ) -> PortSpec {
        let fixed = match p.get_ref() {
            Scalar::Int(n) if (1..=65535).contains(n) => *n as u16,
            Scalar::Int(n) => {
                self.error(
                    p.span(),
                    format!("port {n} of service \"{name}\" is out of range (1-65535)"),
                );
                return PortSpec::Invalid;
            }
            Scalar::Str(s) if s == "auto" => {
                let Some(tier) = tier else {
                    return PortSpec::Invalid;
                };
                return match tier.ports {
                    Some(range) => PortSpec::Auto(range),
                    None => {
                        self.error(
                            p.span(),
                            format!(
                                "port = \"auto\" of service \"{name}\" needs a port range on its tier: add ports = \"8000-8099\" to [[tier]] \"{}\"",
                                tier.name
                            ),
                        );
                        PortSpec::Invalid
                    }
                };
            }
            other => {
                self.error(
                    p.span(),
                    format!(
                        "port of service \"{name}\" must be an integer from 1 to 65535 or \"auto\", found {}",
                        describe(other)
                    ),
                );
                return PortSpec::Invalid;
            }
        };
        if let Some((tier, range)) =
            tier.and_then(|t| Some((t, t.ports.filter(|r| !r.contains(fixed))?)))
        {
            self.error(
                p.span(),
                format!(
                    "port {fixed} of service \"{name}\" is outside the range {range} of its tier \"{}\": {}",
                    tier.name,
                    widen(range, fixed, &tier.name)
                ),
            );
        }
        PortSpec::Fixed(fixed)
    }

    /// The port of a service's instance `offset` (0 for the first): the
    /// written port plus the offset, which must stay a port in the tier.
    pub(super) fn instance_port(
        &mut self,
        base: u16,
        offset: u32,
        span: &Range<usize>,
        instance: &str,
        tier: Option<&Tier>,
    ) -> Option<u16> {
        if offset == 0 {
            return Some(base);
        }
        let port = u32::from(base) + offset;
        let outside = match tier.and_then(|t| Some((t, t.ports?))) {
            _ if port > 65535 => Some("1-65535".to_string()),
            Some((tier, range)) if !range.contains(port as u16) => Some(format!(
                "{range} of its tier \"{}\": {}",
                tier.name,
                widen(range, port as u16, &tier.name)
            )),
            _ => None,
        };
        match outside {
            Some(range) => {
                self.error(
                    span.clone(),
                    format!("port {port} of replica \"{instance}\" (port + {offset}) is outside the range {range}"),
                );
                None
            }
            None => Some(port as u16),
        }
    }

    /// `FPCTL_PORT_<NAME>` and `FPCTL_HOST_<NAME>` of every service and
    /// instance with a port; for a replicated service, also its first
    /// instance's under its own name and `FPCTL_PORTS_<NAME>`, every
    /// instance's port separated by commas.
    /// `FPCTL_PORT_*`, `FPCTL_HOST_*` and `FPCTL_PORTS_*` of every service
    /// with a port, as seen from where a service runs: on this machine
    /// (127.0.0.1, or with `bridge` from inside a bridge container: the name
    /// of the host's gateway), or under compose or Kubernetes (each
    /// service's name, and the port it listens on there).
    pub(super) fn port_vars(&self, declared: &[Declared], bridge: bool) -> Arc<SharedEnv> {
        let host = |name: &str| match self.hosts {
            Hosts::Loopback if bridge => crate::config::BRIDGE_HOST.to_string(),
            Hosts::Loopback => "127.0.0.1".to_string(),
            Hosts::ServiceNames => crate::config::dns_name(name),
        };
        let seen = |d: &Declared| match self.hosts {
            Hosts::Loopback => d.port,
            Hosts::ServiceNames => d.port.and(d.inner_port.or(d.port)),
        };
        let mut vars = Vec::new();
        let mut groups: indexmap::IndexMap<&str, Vec<u16>> = indexmap::IndexMap::new();
        for d in declared {
            let Some(port) = seen(d) else { continue };
            vars.push((port_var_name(&d.name), port.to_string()));
            // An instance of a replicated service is reached by the
            // service's name under compose or Kubernetes.
            let reached_as = match (&d.group, self.hosts) {
                (Some((group, _)), Hosts::ServiceNames) => group.as_str(),
                _ => d.name.as_str(),
            };
            vars.push((host_var_name(&d.name), host(reached_as)));
            if let Some((group, _)) = &d.group {
                groups.entry(group.as_str()).or_default().push(port);
            }
        }
        for (group, ports) in groups {
            vars.push((port_var_name(group), ports[0].to_string()));
            vars.push((host_var_name(group), host(group)));
            let mut list: Vec<String> = ports.iter().map(u16::to_string).collect();
            list.dedup();
            vars.push((ports_var_name(group), list.join(",")));
        }
        Arc::new(vars.into())
    }
}

/// How to make room for `port`: a range of the tier that holds it too, or
/// no range at all (ranges are for `port = "auto"`; fixed ports need none).
fn widen(range: PortRange, port: u16, tier: &str) -> String {
    format!(
        "widen the range to ports = \"{}-{}\", or remove `ports` from [[tier]] \"{tier}\" if none of its services uses port = \"auto\"",
        range.first.min(port),
        range.last.max(port)
    )
}

/// `"8000-8099"` (or a single port `"8000"`).
pub(super) fn parse_port_range(s: &str) -> Option<PortRange> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let first: u16 = a.trim().parse().ok()?;
    let last: u16 = b.trim().parse().ok()?;
    (first >= 1 && first <= last).then_some(PortRange { first, last })
}

//! `health`: http, tcp, exec and log probes with their timings.

use std::time::Duration;

use toml::Spanned;

use super::Validator;
use crate::config::raw::{IntOrList, RawHealth, Scalar, ScalarOrList, StringOrList};
use crate::config::{defaults, Health, Probe};

impl Validator<'_> {
    /// `port`: the service's, and whether a port written for it is wrong
    /// (reported: a check that needs it says nothing more). `kind_dropped`:
    /// one of http, tcp, exec or log was left out for its type.
    pub(super) fn health(
        &mut self,
        raw: Option<&Spanned<RawHealth>>,
        (port, port_broken): (Option<u16>, bool),
        name: &str,
        env: &[(String, String)],
        (oneshot, kind_dropped): (bool, bool),
    ) -> (Option<Health>, Duration) {
        let Some(raw) = raw else {
            return (None, defaults::START_TIMEOUT);
        };
        let span = raw.span();
        let h = raw.get_ref();
        let start_timeout = self.duration(
            h.start_timeout.as_ref(),
            "start_timeout",
            name,
            defaults::START_TIMEOUT,
        );
        if oneshot {
            self.error(span, format!("service \"{name}\" is a oneshot: it is done when it exits 0 and takes no health check"));
            return (None, start_timeout);
        }
        if let Some(c) = &h.container {
            if !*c.get_ref() {
                self.error(
                    c.span(),
                    format!("health container of service \"{name}\" can only be true (the image's HEALTHCHECK); leave it out for another check"),
                );
            }
        }
        let kinds = [
            h.http.is_some(),
            h.tcp.is_some(),
            h.exec.is_some(),
            h.log.is_some(),
            h.container.is_some(),
        ];
        let count = kinds.iter().filter(|k| **k).count();
        if count == 0 && kind_dropped {
            return (None, start_timeout);
        }
        if count != 1 {
            let what = if count == 0 {
                "needs one of"
            } else {
                "takes only one of"
            };
            self.error(
                span.clone(),
                format!("health of service \"{name}\" {what} http, tcp, exec, log or container"),
            );
            return (None, start_timeout);
        }
        if h.http.is_none() && (h.expect_status.is_some() || h.expect_json.is_some()) {
            self.error(span.clone(), format!("health of service \"{name}\": expect_status and expect_json apply only to http"));
        }
        if h.http.is_none() && h.insecure {
            self.error(
                span.clone(),
                format!("health of service \"{name}\": insecure applies only to https"),
            );
        }
        let probe = if let Some(http) = &h.http {
            self.http_probe(http, h, (port, port_broken), name, env)
        } else if let Some(tcp) = &h.tcp {
            match tcp.get_ref() {
                Scalar::Bool(true) => match port {
                    Some(port) => Some(Probe::Tcp { port }),
                    None if port_broken => None,
                    None => {
                        self.error(
                            tcp.span(),
                            format!("tcp = true needs a port, but service \"{name}\" has none"),
                        );
                        None
                    }
                },
                Scalar::Int(p) if (1..=65535).contains(p) => Some(Probe::Tcp { port: *p as u16 }),
                _ => {
                    self.error(
                        tcp.span(),
                        format!("tcp of service \"{name}\" must be a port (1-65535) or true"),
                    );
                    None
                }
            }
        } else if h.container.is_some() {
            Some(Probe::Container)
        } else if let Some(log) = &h.log {
            match regex::Regex::new(log.get_ref()) {
                Ok(pattern) => Some(Probe::Log {
                    pattern,
                    log: self.log_dir.join(format!("{name}.log")),
                }),
                Err(e) => {
                    let why = e.to_string();
                    let why = why.lines().last().unwrap_or_default().trim();
                    let why = why.trim_start_matches("error: ");
                    self.error(
                        log.span(),
                        format!("health log of service \"{name}\" is not a valid regular expression: {why}"),
                    );
                    None
                }
            }
        } else {
            let exec = h.exec.as_ref().expect("one kind is set");
            let argv = match exec.get_ref() {
                StringOrList::One(s) => self.split(s, exec.span(), env, name, "health exec"),
                StringOrList::Many(v) if v.is_empty() => {
                    self.error(
                        exec.span(),
                        format!("health exec of service \"{name}\" is empty"),
                    );
                    Vec::new()
                }
                StringOrList::Many(v) => v
                    .iter()
                    .map(|a| self.expand_at(a, exec.span(), env, name))
                    .collect(),
            };
            Some(Probe::Exec { argv })
        };
        let interval = self.duration(
            h.interval.as_ref(),
            "interval",
            name,
            defaults::HEALTH_INTERVAL,
        );
        let timeout = self.duration(
            h.timeout.as_ref(),
            "timeout",
            name,
            defaults::HEALTH_TIMEOUT,
        );
        let retries = match &h.retries {
            None => defaults::HEALTH_RETRIES,
            Some(r) => self.count(r, "retries", &format!("service \"{name}\""), 1),
        };
        (
            probe.map(|probe| Health {
                probe,
                interval,
                timeout,
                retries,
            }),
            start_timeout,
        )
    }

    pub(super) fn http_probe(
        &mut self,
        http: &Spanned<String>,
        h: &RawHealth,
        (port, port_broken): (Option<u16>, bool),
        name: &str,
        env: &[(String, String)],
    ) -> Option<Probe> {
        let target = self.expand_at(http.get_ref(), http.span(), env, name);
        let url = if target.starts_with('/') {
            match port {
                Some(p) => format!("http://127.0.0.1:{p}{target}"),
                None if port_broken => return None,
                None => {
                    self.error(http.span(), format!("health http path of service \"{name}\" needs a port; give the service a port or a full URL"));
                    return None;
                }
            }
        } else if target.starts_with("http://") || target.starts_with("https://") {
            target
        } else {
            self.error(http.span(), format!("health http of service \"{name}\" must be a path starting with '/' or an http:// or https:// URL"));
            return None;
        };
        if url
            .parse::<hyper::Uri>()
            .map_or(true, |u| u.host().is_none())
        {
            self.error(
                http.span(),
                format!("health http of service \"{name}\" is not a valid URL: {url}"),
            );
            return None;
        }
        let mut expect_status = Vec::new();
        if let Some(s) = &h.expect_status {
            let codes = match s.get_ref() {
                IntOrList::One(c) => vec![*c],
                IntOrList::Many(v) => v.clone(),
            };
            for c in codes {
                if (100..=599).contains(&c) {
                    expect_status.push(c as u16);
                } else {
                    self.error(s.span(), format!("expect_status {c} of service \"{name}\" is not an HTTP status (100-599)"));
                }
            }
        }
        let mut expect_json = Vec::new();
        if let Some(fields) = &h.expect_json {
            for (field, values) in fields.get_ref() {
                let accepted = match values.get_ref() {
                    ScalarOrList::One(v) => vec![v.to_json()],
                    ScalarOrList::Many(v) => v.iter().map(Scalar::to_json).collect(),
                };
                if accepted.is_empty() {
                    self.error(
                        values.span(),
                        format!(
                            "expect_json field \"{field}\" of service \"{name}\" accepts no value"
                        ),
                    );
                }
                expect_json.push((field.clone(), accepted));
            }
        }
        if h.insecure && !url.starts_with("https://") {
            self.error(
                http.span(),
                format!("health of service \"{name}\": insecure applies only to https:// URLs"),
            );
        }
        Some(Probe::Http {
            url,
            expect_status,
            expect_json,
            insecure: h.insecure,
        })
    }
}

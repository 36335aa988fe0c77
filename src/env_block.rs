//! The environment a spawn hands to `exec`, built once per config.
//!
//! Every service gets `FPCTL_PORT_*` and `FPCTL_HOST_*` for every service
//! with a port: two thousand variables at a thousand services. Building
//! them into a fresh environment for each spawn (as `std::process::Command`
//! does, a map entry and a copy of each) made a spawn's cost grow with the
//! size of the config. Here the supervisor's own variables with the shared
//! ones over them are made into `KEY=VALUE` strings once, on first use, and
//! a spawn only puts its service's few variables over that block.

use std::collections::HashMap;
use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::ops::Deref;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::sync::OnceLock;

/// Variables shared by every service of a config, in order (a later one
/// wins), with the block built from them on first use.
#[derive(Default)]
pub struct SharedEnv {
    vars: Vec<(String, String)>,
    block: OnceLock<Block>,
}

impl std::fmt::Debug for SharedEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.vars).finish()
    }
}

impl From<Vec<(String, String)>> for SharedEnv {
    fn from(vars: Vec<(String, String)>) -> Self {
        SharedEnv {
            vars,
            block: OnceLock::new(),
        }
    }
}

impl Deref for SharedEnv {
    type Target = [(String, String)];

    fn deref(&self) -> &Self::Target {
        &self.vars
    }
}

/// `KEY=VALUE` strings, each key once, and where each key is.
struct Block {
    entries: Vec<CString>,
    at: HashMap<Vec<u8>, usize>,
}

impl Block {
    fn new() -> Block {
        Block {
            entries: Vec::new(),
            at: HashMap::new(),
        }
    }

    fn set(&mut self, key: &[u8], value: &[u8]) {
        // A variable with a NUL byte cannot be passed on: std leaves those
        // of its own environment out too.
        let Some(entry) = entry(key, value) else {
            return;
        };
        match self.at.get(key) {
            Some(&i) => self.entries[i] = entry,
            None => {
                self.at.insert(key.to_vec(), self.entries.len());
                self.entries.push(entry);
            }
        }
    }
}

fn entry(key: &[u8], value: &[u8]) -> Option<CString> {
    let mut bytes = Vec::with_capacity(key.len() + value.len() + 1);
    bytes.extend_from_slice(key);
    bytes.push(b'=');
    bytes.extend_from_slice(value);
    CString::new(bytes).ok()
}

impl SharedEnv {
    /// The supervisor's environment with these variables over it.
    fn block(&self) -> &Block {
        self.block.get_or_init(|| {
            let mut block = Block::new();
            for (k, v) in std::env::vars_os() {
                block.set(k.as_bytes(), v.as_bytes());
            }
            for (k, v) in &self.vars {
                block.set(k.as_bytes(), v.as_bytes());
            }
            block
        })
    }

    /// The environment of one spawn: `own` (a later one wins) over the
    /// block. A key or value that cannot be passed on is an error.
    pub fn with<'a>(
        &'a self,
        own: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> io::Result<Env<'a>> {
        let base = self.block();
        let mut env = Env {
            base,
            own: Vec::new(),
        };
        for (k, v) in own {
            if k.is_empty() || k.contains('=') {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("the variable name {k:?} cannot be passed to a process"),
                ));
            }
            let Some(e) = entry(k.as_bytes(), v.as_bytes()) else {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("the variable {k} holds a NUL byte"),
                ));
            };
            match env
                .own
                .iter_mut()
                .find(|(key, _)| key.as_bytes() == k.as_bytes())
            {
                Some(slot) => slot.1 = e,
                None => env.own.push((k, e)),
            }
        }
        Ok(env)
    }
}

/// One spawn's environment: the shared block and the service's own.
pub struct Env<'a> {
    base: &'a Block,
    own: Vec<(&'a str, CString)>,
}

impl Env<'_> {
    /// The value of `key`, as the process will see it.
    pub fn get(&self, key: &str) -> Option<&OsStr> {
        let e = match self.own.iter().find(|(k, _)| *k == key) {
            Some((_, e)) => e.as_c_str(),
            None => self.base.entries[*self.base.at.get(key.as_bytes())?].as_c_str(),
        };
        Some(OsStr::from_bytes(&e.to_bytes()[key.len() + 1..]))
    }

    /// Every `KEY=VALUE`, each key once, for `exec`.
    pub fn entries(&self) -> Vec<&CStr> {
        let mut out: Vec<&CStr> = self.base.entries.iter().map(CString::as_c_str).collect();
        for (k, e) in &self.own {
            match self.base.at.get(k.as_bytes()) {
                Some(&i) => out[i] = e,
                None => out.push(e),
            }
        }
        out
    }
}

/// A path or argument as `exec` takes it.
pub fn c_string(s: impl Into<std::ffi::OsString>) -> io::Result<CString> {
    CString::new(s.into().into_vec())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "an argument holds a NUL byte"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> SharedEnv {
        SharedEnv::from(vec![
            ("FPCTL_PORT_A".to_string(), "1".to_string()),
            ("FPCTL_PORT_B".to_string(), "2".to_string()),
            ("FPCTL_PORT_A".to_string(), "3".to_string()),
        ])
    }

    #[test]
    fn a_services_own_variables_win_and_each_key_is_passed_once() {
        let s = shared();
        let env = s
            .with([
                ("FPCTL_PORT_B", "own"),
                ("X_ONLY_OWN", "a"),
                ("X_ONLY_OWN", "b"),
            ])
            .unwrap();
        let all: Vec<String> = env
            .entries()
            .iter()
            .map(|c| c.to_string_lossy().into_owned())
            .collect();
        let count = |k: &str| {
            all.iter()
                .filter(|e| e.starts_with(&format!("{k}=")))
                .count()
        };
        assert_eq!(count("FPCTL_PORT_A"), 1);
        assert_eq!(count("FPCTL_PORT_B"), 1);
        assert_eq!(count("X_ONLY_OWN"), 1);
        assert_eq!(env.get("FPCTL_PORT_A"), Some(OsStr::new("3")));
        assert_eq!(env.get("FPCTL_PORT_B"), Some(OsStr::new("own")));
        assert_eq!(env.get("X_ONLY_OWN"), Some(OsStr::new("b")));
        assert!(all.contains(&"X_ONLY_OWN=b".to_string()));
        // The supervisor's own environment is under it all.
        if let Some(path) = std::env::var_os("PATH") {
            assert_eq!(env.get("PATH"), Some(path.as_os_str()));
        }
    }

    #[test]
    fn a_name_or_value_that_exec_cannot_take_is_an_error() {
        let s = shared();
        assert!(s.with([("A=B", "x")]).is_err());
        assert!(s.with([("", "x")]).is_err());
        assert!(s.with([("A", "x\0y")]).is_err());
    }
}

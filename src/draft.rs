//! A services.toml being written by `init` or `import`: services with the
//! notes that explain them, rendered through toml_edit so that guesses keep
//! their comments. It only builds text; checking it is `config`'s job.

use toml_edit::{Array, ArrayOfTables, DocumentMut, InlineTable, Item, Table, Value};

/// A whole file: header comments, tiers, services.
#[derive(Debug, Default)]
pub struct Draft {
    pub header: Vec<String>,
    /// `[project]` settings (none: no table).
    pub project: Table,
    /// `(name, title)`, in start order. None at all: one implicit tier.
    pub tiers: Vec<(String, String)>,
    /// A tier's port range (`ports = "8000-8099"`), by tier name.
    pub tier_ports: std::collections::BTreeMap<String, String>,
    pub services: Vec<DraftService>,
}

/// One `[services.NAME]` table.
#[derive(Debug)]
pub struct DraftService {
    pub name: String,
    /// Comment lines written above the table.
    pub notes: Vec<String>,
    /// Written entirely commented out (something fpctl cannot run as is).
    pub stub: bool,
    pub table: Table,
}

impl DraftService {
    pub fn new(name: &str) -> Self {
        DraftService {
            name: name.to_string(),
            notes: Vec::new(),
            stub: false,
            table: Table::new(),
        }
    }

    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.table.insert(key, Item::Value(value.into()));
    }

    /// Set `key` as the table's first entry (where `tier` reads best).
    pub fn set_first(&mut self, key: &str, value: impl Into<Value>) {
        let mut table = Table::new();
        table.insert(key, Item::Value(value.into()));
        for (k, item) in self.table.iter() {
            if k != key {
                if let Some((full, _)) = self.table.get_key_value(k) {
                    table.insert_formatted(full, item.clone());
                }
            }
        }
        table.decor_mut().clone_from(self.table.decor());
        self.table = table;
    }

    /// Set `key` with a comment line above it (a guess says so here).
    pub fn set_noted(&mut self, key: &str, value: impl Into<Value>, comment: &str) {
        self.set(key, value);
        if let Some(mut k) = self.table.key_mut(key) {
            k.leaf_decor_mut().set_prefix(format!("# {comment}\n"));
        }
    }

    pub fn get_str(&self, key: &str) -> Option<&str> {
        self.table.get(key).and_then(Item::as_str)
    }

    pub fn port(&self) -> Option<u16> {
        self.table
            .get("port")
            .and_then(Item::as_integer)
            .and_then(|p| u16::try_from(p).ok())
    }

    pub fn depends_on(&self) -> Vec<String> {
        self.table
            .get("depends_on")
            .and_then(Item::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(String::from))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn add_dependency(&mut self, name: &str) {
        let mut deps = self.depends_on();
        if !deps.iter().any(|d| d == name) {
            deps.push(name.to_string());
            self.set("depends_on", strings(deps));
        }
    }

    /// Set one `env` entry (an inline table, in insertion order).
    pub fn set_env(&mut self, key: &str, value: &str) {
        let env = self
            .table
            .entry("env")
            .or_insert(Item::Value(Value::InlineTable(InlineTable::new())));
        if let Some(t) = env.as_inline_table_mut() {
            t.insert(key, value.into());
        }
    }

    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }
}

/// An array of strings, as a TOML value.
pub fn strings<S: AsRef<str>>(items: impl IntoIterator<Item = S>) -> Value {
    let mut a = Array::new();
    for s in items {
        a.push(s.as_ref());
    }
    Value::Array(a)
}

/// An inline table `{ key = value, … }`.
pub fn inline<'a>(pairs: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
    let mut t = InlineTable::new();
    for (k, v) in pairs {
        t.insert(k, v);
    }
    Value::InlineTable(t)
}

impl Draft {
    pub fn service(&self, name: &str) -> Option<&DraftService> {
        self.services.iter().find(|s| s.name == name)
    }

    pub fn service_mut(&mut self, name: &str) -> Option<&mut DraftService> {
        self.services.iter_mut().find(|s| s.name == name)
    }

    /// The file's text: live services through toml_edit, then the stubs,
    /// each line commented out.
    pub fn render(&self) -> String {
        let mut doc = DocumentMut::new();
        let header: String = self.header.iter().map(|l| comment_line(l)).collect();
        if !self.project.is_empty() {
            doc.insert("project", Item::Table(self.project.clone()));
        }
        if !self.tiers.is_empty() {
            let mut tiers = ArrayOfTables::new();
            for (name, title) in &self.tiers {
                let mut t = Table::new();
                t.insert("name", Item::Value(name.as_str().into()));
                t.insert("title", Item::Value(title.as_str().into()));
                if let Some(range) = self.tier_ports.get(name) {
                    t.insert("ports", Item::Value(range.as_str().into()));
                }
                tiers.push(t);
            }
            doc.insert("tier", Item::ArrayOfTables(tiers));
        }
        let mut services = Table::new();
        services.set_implicit(true);
        for s in self.services.iter().filter(|s| !s.stub) {
            services.insert(&s.name, Item::Table(noted_table(s)));
        }
        doc.insert("services", Item::Table(services));
        let mut out = header;
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(doc.to_string().trim_start_matches('\n'));
        for s in self.services.iter().filter(|s| s.stub) {
            let mut one = DocumentMut::new();
            let mut services = Table::new();
            services.set_implicit(true);
            services.insert(&s.name, Item::Table(noted_table(s)));
            one.insert("services", Item::Table(services));
            out.push('\n');
            for line in one.to_string().trim_start_matches('\n').lines() {
                if line.starts_with('#') || line.is_empty() {
                    out.push_str(line);
                    out.push('\n');
                } else {
                    out.push_str(&comment_line(line));
                }
            }
        }
        out
    }
}

fn comment_line(text: &str) -> String {
    if text.is_empty() {
        "#\n".to_string()
    } else {
        format!("# {text}\n")
    }
}

fn noted_table(s: &DraftService) -> Table {
    let mut t = s.table.clone();
    let notes: String = s.notes.iter().map(|n| comment_line(n)).collect();
    t.decor_mut().set_prefix(format!("\n{notes}"));
    t
}

/// Ports handed out so far: none twice, and none that something listens on
/// (or holds) right now.
#[derive(Debug, Default)]
pub struct PortPlan {
    taken: std::collections::HashSet<u16>,
}

impl PortPlan {
    /// `wanted` when it is free, else the next free port above it.
    pub fn claim(&mut self, wanted: u16) -> u16 {
        let port = (wanted.max(1)..=u16::MAX)
            .find(|&p| !self.taken.contains(&p) && bindable(p))
            .unwrap_or(wanted);
        self.taken.insert(port);
        port
    }

    /// The lowest free port of `lo..=hi`; None when none is left.
    pub fn claim_in(&mut self, lo: u16, hi: u16) -> Option<u16> {
        let port = (lo..=hi).find(|&p| !self.taken.contains(&p) && bindable(p))?;
        self.taken.insert(port);
        Some(port)
    }

    /// `port` as written, unless another service here has it already; then
    /// the next free one. Unlike [`PortPlan::claim`], a port some process
    /// holds now is kept: the file says what it should be.
    pub fn reserve(&mut self, port: u16) -> u16 {
        if self.taken.insert(port) {
            port
        } else {
            self.claim(port)
        }
    }
}

fn bindable(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// What a folder needs before its program runs, from the files it holds.
pub fn setup_for(dir: &std::path::Path) -> Option<&'static str> {
    if dir.join("requirements.txt").is_file() {
        Some("venv")
    } else if dir.join("package.json").is_file() {
        Some("npm")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_services_notes_and_commented_stubs() {
        let mut d = Draft::default();
        let mut api = DraftService::new("api");
        api.set("command", "python app.py");
        api.set("port", 8000i64);
        api.set_noted(
            "health",
            inline([("http", "/health".into())]),
            "guess: an HTTP check",
        );
        api.note("found in api/");
        api.add_dependency("db");
        api.add_dependency("db");
        api.set_env("A", "1");
        d.services.push(api);
        let mut db = DraftService::new("db");
        db.stub = true;
        db.note("image only");
        db.set("command", "postgres");
        d.services.push(db);
        let text = d.render();
        let expected = r#"# found in api/
[services.api]
command = "python app.py"
port = 8000
# guess: an HTTP check
health = { http = "/health" }
depends_on = ["db"]
env = { A = "1" }

# image only
# [services.db]
# command = "postgres"
"#;
        assert_eq!(text, expected);
    }

    #[test]
    fn claimed_ports_differ_and_skip_ports_in_use() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = held.local_addr().unwrap().port();
        let mut plan = PortPlan::default();
        let a = plan.claim(busy);
        let b = plan.claim(busy);
        assert_ne!(a, busy);
        assert_ne!(a, b);
    }
}

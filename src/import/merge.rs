//! YAML merge keys (`<<: *base`, `<<: [*a, *b]`), resolved everywhere,
//! anchors included, before a converter reads the document: a merge inside
//! a merged anchor (`x-sentry: &sentry { <<: *restart, … }`) counts like
//! any other, so no `<<` is ever left to be taken for a field.

use serde_yaml_ng::{Mapping, Value};

/// Resolve every merge in `v`, innermost first. Keys written in a mapping
/// win over merged ones; among merged mappings, the first to name a key wins
/// (the YAML merge rule).
pub fn resolve(v: &mut Value) -> Result<(), NotAMapping> {
    match v {
        Value::Mapping(m) => {
            for (_, child) in m.iter_mut() {
                resolve(child)?;
            }
            let Some(sources) = m.remove("<<") else {
                return Ok(());
            };
            let sources: Vec<Mapping> = match sources {
                Value::Mapping(s) => vec![s],
                Value::Sequence(items) => items
                    .into_iter()
                    .map(|i| match i {
                        Value::Mapping(s) => Ok(s),
                        other => Err(not_a_mapping(&other)),
                    })
                    .collect::<Result<_, _>>()?,
                Value::Null => Vec::new(),
                other => return Err(not_a_mapping(&other)),
            };
            let own = std::mem::take(m);
            for source in sources {
                for (k, val) in source {
                    if !m.contains_key(&k) {
                        m.insert(k, val);
                    }
                }
            }
            // Inserting a key already there keeps its place, so merged keys
            // come first, in their order, as they read in the anchor.
            for (k, val) in own {
                m.insert(k, val);
            }
            Ok(())
        }
        Value::Sequence(items) => items.iter_mut().try_for_each(resolve),
        Value::Tagged(t) => resolve(&mut t.value),
        _ => Ok(()),
    }
}

/// A `<<` that merges what is not a mapping.
#[derive(Debug, thiserror::Error)]
#[error("`<<` merges {0}; it must name a mapping (`<<: *anchor`) or a list of them")]
pub struct NotAMapping(&'static str);

fn not_a_mapping(v: &Value) -> NotAMapping {
    NotAMapping(match v {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => "a scalar",
        Value::Sequence(_) => "a list of lists",
        _ => "something other than a mapping",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(yaml: &str) -> Value {
        let mut v: Value = serde_yaml_ng::from_str(yaml).unwrap();
        resolve(&mut v).unwrap();
        v
    }

    #[test]
    fn merges_inside_merged_anchors_are_resolved() {
        let v = resolved(
            "x-restart: &restart\n  restart: unless-stopped\n\
             x-base: &base\n  <<: *restart\n  image: app\n\
             x-more: &more\n  <<: *base\n  command: run\n\
             services:\n  web:\n    <<: *more\n    command: web\n",
        );
        let web = &v["services"]["web"];
        assert_eq!(web["restart"].as_str(), Some("unless-stopped"));
        assert_eq!(web["image"].as_str(), Some("app"));
        assert_eq!(web["command"].as_str(), Some("web"), "own keys win");
        let text = serde_yaml_ng::to_string(&v).unwrap();
        assert!(!text.contains("<<"), "{text}");
    }

    #[test]
    fn a_list_of_merges_takes_the_first_to_name_a_key() {
        let v = resolved("a: &a {x: 1, y: 1}\nb: &b {y: 2, z: 2}\nc:\n  <<: [*a, *b]\n  z: 3\n");
        let c = &v["c"];
        assert_eq!(
            (c["x"].as_i64(), c["y"].as_i64(), c["z"].as_i64()),
            (Some(1), Some(1), Some(3))
        );
    }

    #[test]
    fn a_merge_of_a_scalar_is_an_error() {
        let mut v: Value = serde_yaml_ng::from_str("a:\n  <<: 3\n").unwrap();
        assert!(resolve(&mut v)
            .unwrap_err()
            .to_string()
            .contains("a scalar"));
    }
}

//! Answers that fit an agent's budget: at most [`MAX_ANSWER`] bytes of JSON
//! and text together. What does not fit is cut from the long lists (the
//! oldest lines and events, the last rows of the others), and the answer
//! says so with `truncated` and how many items were left out.

use serde_json::Value;

/// The most bytes one answer carries (its JSON and its text together).
pub const MAX_ANSWER: usize = 64 * 1024;
/// The most bytes of the short text beside the JSON.
pub const MAX_TEXT: usize = 4 * 1024;

/// Lists in time order, cut from the front (the newest stay).
const NEWEST_LAST: [&str; 2] = ["lines", "events"];

/// `value` cut to fit `budget` bytes of JSON: items of its largest list go
/// until it fits; then `truncated: true` and `omitted: N` are set.
pub fn fit(mut value: Value, budget: usize) -> Value {
    let mut omitted = 0usize;
    while size(&value) > budget {
        let Some(obj) = value.as_object_mut() else {
            break;
        };
        let largest = obj
            .iter()
            .filter(|(_, v)| v.as_array().is_some_and(|a| !a.is_empty()))
            .max_by_key(|(_, v)| size(v))
            .map(|(k, _)| k.clone());
        let Some(key) = largest else {
            // Nothing left to cut: say what happened instead.
            value = serde_json::json!({
                "truncated": true,
                "error": format!("the answer does not fit in {budget} bytes"),
            });
            return value;
        };
        let front = NEWEST_LAST.contains(&key.as_str());
        let list = obj
            .get_mut(&key)
            .and_then(Value::as_array_mut)
            .expect("an array");
        // Cut by the share that is over, at least one item.
        let over = size_of_list(list).saturating_sub(budget.saturating_sub(1024));
        let per = (size_of_list(list) / list.len()).max(1);
        let n = over.div_ceil(per).clamp(1, list.len());
        if front {
            list.drain(..n);
        } else {
            list.truncate(list.len() - n);
        }
        omitted += n;
    }
    if omitted > 0 {
        if let Some(obj) = value.as_object_mut() {
            obj.insert("truncated".into(), Value::Bool(true));
            let before = obj.get("omitted").and_then(Value::as_u64).unwrap_or(0);
            obj.insert("omitted".into(), Value::from(before + omitted as u64));
        }
    }
    value
}

/// `text` cut to [`MAX_TEXT`] bytes, marked when cut.
pub fn short(text: String) -> String {
    if text.len() <= MAX_TEXT {
        return text;
    }
    let mut end = MAX_TEXT - 40;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n… (truncated; the JSON has the rest)", &text[..end])
}

fn size(v: &Value) -> usize {
    serde_json::to_string(v).map(|s| s.len()).unwrap_or(0)
}

fn size_of_list(list: &[Value]) -> usize {
    list.iter().map(size).sum::<usize>() + list.len()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_long_log_keeps_its_newest_lines_and_says_it_was_cut() {
        let lines: Vec<Value> = (0..5000)
            .map(|i| json!({"service": "a", "text": format!("line {i} {}", "x".repeat(40))}))
            .collect();
        let v = fit(json!({"lines": lines, "truncated": false}), MAX_ANSWER);
        assert!(size(&v) <= MAX_ANSWER);
        assert_eq!(v["truncated"], true);
        let kept = v["lines"].as_array().unwrap();
        assert!(kept.len() > 100, "cut too much: {}", kept.len());
        assert!(kept.last().unwrap()["text"]
            .as_str()
            .unwrap()
            .starts_with("line 4999 "));
        assert_eq!(v["omitted"].as_u64().unwrap() as usize + kept.len(), 5000);
    }

    #[test]
    fn rows_are_cut_from_the_end_and_a_small_answer_is_left_alone() {
        let rows: Vec<Value> = (0..3000)
            .map(|i| json!({"name": format!("s{i}")}))
            .collect();
        let v = fit(json!({"services": rows}), 4096);
        assert!(size(&v) <= 4096);
        assert_eq!(v["services"][0]["name"], "s0");
        assert_eq!(v["truncated"], true);
        let small = json!({"services": [{"name": "a"}]});
        assert_eq!(fit(small.clone(), 4096), small);
    }

    #[test]
    fn a_long_text_is_cut_on_a_character_boundary() {
        let t = short("é".repeat(MAX_TEXT));
        assert!(t.len() <= MAX_TEXT);
        assert!(t.ends_with("(truncated; the JSON has the rest)"));
    }
}

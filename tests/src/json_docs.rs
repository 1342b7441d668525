//! docs/json.md as a test oracle: each `## `COMMAND --json`` section lists
//! the fields of that output; [`check`] holds an output to its section.

use serde_json::Value;
use std::collections::BTreeMap;

/// docs/json.md: command heading → documented field paths.
pub fn documented() -> BTreeMap<String, Vec<String>> {
    let text = std::fs::read_to_string(crate::workspace_root().join("docs/json.md")).unwrap();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut current = None;
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("## `") {
            current = Some(h.trim_end_matches('`').to_string());
            out.insert(current.clone().unwrap(), Vec::new());
        } else if let (Some(c), Some(rest)) = (&current, line.strip_prefix("| `")) {
            let field = rest.split('`').next().unwrap().to_string();
            out.get_mut(c).unwrap().push(field);
        }
    }
    out
}

/// The values at `path` ("a.b", "a[].b") in `v`: none if absent.
fn values<'a>(v: &'a Value, path: &str) -> Vec<&'a Value> {
    let mut current = vec![v];
    for part in path.split('.') {
        let (key, each) = match part.strip_suffix("[]") {
            Some(k) => (k, true),
            None => (part, false),
        };
        let mut next = Vec::new();
        for c in current {
            if let Some(x) = c.get(key) {
                if each {
                    next.extend(x.as_array().into_iter().flatten());
                } else {
                    next.push(x);
                }
            }
        }
        current = next;
    }
    current
}

pub fn check(docs: &BTreeMap<String, Vec<String>>, heading: &str, output: &str) {
    let fields = docs
        .get(heading)
        .unwrap_or_else(|| panic!("docs/json.md has no section {heading:?}"));
    let v: Value = serde_json::from_str(output.lines().next().unwrap_or(""))
        .unwrap_or_else(|e| panic!("{heading}: not JSON ({e}): {output}"));
    for f in fields {
        assert!(
            !values(&v, f).is_empty(),
            "{heading}: documented field {f} missing in {v}"
        );
    }
    let top: Vec<&str> = fields
        .iter()
        .map(|f| f.split(['.', '[']).next().unwrap())
        .collect();
    for k in v.as_object().unwrap().keys() {
        assert!(
            top.contains(&k.as_str()),
            "{heading}: field {k} is not documented"
        );
    }
}

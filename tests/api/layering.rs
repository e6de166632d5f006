//! The house stays without cycles: each top-level module of `src/` may import only the
//! modules its layer allows. Rules (`services`, `domain`) never import a transport (`rest`,
//! `graphql`, `http`, `caller`) or the application (`state`, `startup`); neither transport
//! imports the other's HTTP code, the state or the start-up. A new module must be placed in
//! the table below.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

/// Each module, and the modules of this crate it may import.
const LAYERS: &[(&str, &[&str])] = &[
    ("error", &[]),
    ("net", &[]),
    ("entities", &[]),
    ("config", &["net"]),
    ("telemetry", &["config"]),
    ("domain", &["error"]),
    ("db", &["config"]),
    ("auth", &["config", "domain", "error", "net"]),
    ("limits", &["config", "error", "net"]),
    ("html", &[]),
    ("monitoring", &[]),
    ("mail", &["config", "html"]),
    (
        "services",
        &[
            "auth", "config", "db", "domain", "entities", "error", "limits", "mail", "net",
        ],
    ),
    ("caller", &["auth", "net"]),
    // The transports' shared pieces know nothing of the rules.
    ("http", &["error"]),
    (
        "graphql",
        &[
            "auth",
            "caller",
            "config",
            "domain",
            "error",
            "http",
            "monitoring",
            "services",
        ],
    ),
    // REST runs GraphQL operations; GraphQL knows nothing of REST.
    (
        "rest",
        &[
            "caller",
            "error",
            "graphql",
            "html",
            "http",
            "monitoring",
            "state",
        ],
    ),
    (
        "state",
        &["auth", "caller", "config", "graphql", "http", "services"],
    ),
    ("server", &["config", "error", "http", "monitoring", "net"]),
    (
        "startup",
        &[
            "auth",
            "config",
            "db",
            "error",
            "graphql",
            "http",
            "mail",
            "monitoring",
            "rest",
            "server",
            "services",
            "state",
        ],
    ),
    (
        "cli",
        &[
            "config", "db", "domain", "error", "graphql", "rest", "services", "startup",
        ],
    ),
];

#[test]
fn modules_import_only_what_their_layer_allows() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed: BTreeMap<&str, BTreeSet<&str>> = LAYERS
        .iter()
        .map(|(module, deps)| (*module, deps.iter().copied().collect()))
        .collect();
    let mut found: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&src) {
        let top = module_of(&file, &src);
        if top == "lib" || top == "main" {
            continue;
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let imports = found.entry(top.clone()).or_default();
        for import in crate_imports(&text) {
            if import != top {
                imports.insert(import);
            }
        }
    }
    let mut problems = Vec::new();
    for (module, imports) in &found {
        let Some(allowed) = allowed.get(module.as_str()) else {
            problems.push(format!("`{module}` has no place in the layering table"));
            continue;
        };
        for import in imports {
            if !allowed.contains(import.as_str()) {
                problems.push(format!("`{module}` imports `{import}`"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layering broken:\n{}",
        problems.join("\n")
    );
    // The checker itself sees what it should.
    assert!(found["rest"].contains("state"));
    assert!(found["services"].contains("entities"));
}

/// Inside `services`, the features (each a part of the contract)…
const SERVICE_FEATURES: &[&str] = &[
    "accounts", "admin", "audit", "mail", "mfa", "oidc", "passkeys", "profiles", "sessions",
    "webhooks",
];
/// …and the leaves they share (the access check, queries, tokens, time, events, photos).
const SERVICE_LEAVES: &[&str] = &[
    "access",
    "events",
    "photos",
    "prepared",
    "query",
    "time",
    "tokens",
    "webhook_outbox",
];

/// Features use leaves, never each other's items; leaves never use a feature. (Methods of
/// `Services` that one feature calls on another are its public surface, not an import.)
#[test]
fn service_features_use_leaves_and_never_each_other() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/services");
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for file in rust_files(&dir) {
        // A module of a folder (`photos/guard.rs`) is part of that folder's module.
        let name = module_of(&file, &dir);
        if name == "mod" {
            continue;
        }
        let is_feature = SERVICE_FEATURES.contains(&name.as_str());
        if !is_feature && !SERVICE_LEAVES.contains(&name.as_str()) {
            problems.push(format!(
                "`services::{name}` is neither a feature nor a leaf"
            ));
            continue;
        }
        seen.insert(name.clone());
        // The sibling modules it names (`super::x`, `crate::services::x`).
        let text = std::fs::read_to_string(&file)
            .unwrap()
            .replace("crate::services::", "super::")
            // Inside a folder, `super::` is the folder's own module.
            .replace("super::super::", "super::")
            .replace("crate::", "other::")
            .replace("super::", "crate::");
        for import in crate_imports(&text) {
            if import == name || !SERVICE_FEATURES.contains(&import.as_str()) {
                continue;
            }
            let kind = if is_feature { "feature" } else { "leaf" };
            problems.push(format!("{kind} `{name}` uses feature `{import}`"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    assert!(seen.contains("accounts") && seen.contains("query"));
}

#[test]
fn the_import_reader_understands_nested_groups() {
    let text = "use crate::{a::b, c::{d, e::f}, g, k};\nlet x = crate::h::i();\n// crate::j\n";
    let found: BTreeSet<String> = crate_imports(text).into_iter().collect();
    let expected: BTreeSet<String> = ["a", "c", "g", "h", "k"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(found, expected);
}

/// The module directly under `root` that `file` belongs to (`server` for
/// `src/server/guard.rs`).
fn module_of(file: &Path, root: &Path) -> String {
    file.strip_prefix(root)
        .unwrap()
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy()
        .trim_end_matches(".rs")
        .to_owned()
}

fn rust_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The top-level modules named after `crate::` anywhere outside comments.
fn crate_imports(text: &str) -> Vec<String> {
    let code: String = text
        .lines()
        .map(|line| match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = Vec::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        let after = &rest[at + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            // Top-level names of the group: the first identifier of each comma-separated item.
            let mut depth = 0;
            let mut expecting = true;
            let mut name = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        if !name.is_empty() {
                            found.push(std::mem::take(&mut name));
                        }
                        expecting = true;
                    }
                    c if expecting && (c.is_alphanumeric() || c == '_') => name.push(c),
                    _ if expecting && !name.is_empty() => {
                        found.push(std::mem::take(&mut name));
                        expecting = false;
                    }
                    _ => {}
                }
            }
            if !name.is_empty() {
                found.push(name);
            }
        } else {
            let name: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                found.push(name);
            }
        }
        rest = after;
    }
    found
}

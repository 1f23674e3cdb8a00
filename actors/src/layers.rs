//! Keeps the crate's shape true: no import cycle between its modules, imports pointing down
//! the layers (domain <- config, telemetry <- store <- actors), and a domain free of I/O
//! crates. `cargo test -p podium-actors layers -- --nocapture` prints every module's imports.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Module path (`store::redis::boards`) -> the text of its file.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&root, &mut files);
    files
        .into_iter()
        .filter_map(|path| {
            let rel = path.strip_prefix(&root).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            let name = parts.join("::");
            // The crate root only declares modules; test-only files are not part of the shape.
            let skip = name == "lib" || name == "layers" || name.ends_with("tests");
            (!skip).then(|| (name, std::fs::read_to_string(&path).unwrap()))
        })
        .collect()
}

/// The podium modules `text` (the file of module `me`) refers to.
fn imports(me: &str, text: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    // Test code may reach anywhere below it; only the module's own code makes its shape.
    let code = text
        .split("#[cfg(test)]\nmod tests {")
        .next()
        .unwrap_or(text);
    let parent = me.rsplit_once("::").map_or("", |(p, _)| p);
    let mut found = BTreeSet::new();
    // A module's own children, named by relative paths (`use counters::Counters`).
    let children = known.iter().filter_map(|m| {
        let child = m.strip_prefix(me)?.strip_prefix("::")?;
        (!child.contains("::")).then(|| (format!("{child}::"), me.to_owned()))
    });
    let mut prefixes: Vec<(String, String)> = vec![
        ("crate::".into(), String::new()),
        ("super::".into(), parent.to_owned()),
    ];
    prefixes.extend(children);
    for (prefix, base) in &prefixes {
        let mut base = base.as_str();
        if !base.is_empty() && prefix != "super::" {
            // `counters::X` inside `store` is `store::counters::X`.
            base = me;
        }
        for (i, _) in code.match_indices(prefix) {
            let before = code[..i].chars().next_back();
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let rest = if prefix == "crate::" || prefix == "super::" {
                &code[i + prefix.len()..]
            } else {
                &code[i..]
            };
            let path: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            let mut segments: Vec<&str> = base.split("::").filter(|s| !s.is_empty()).collect();
            segments.extend(path.split("::").filter(|s| !s.is_empty()));
            // The longest prefix that is a module: `crate::store::redis::RedisStore` is `store::redis`.
            let target = (1..=segments.len())
                .rev()
                .map(|n| segments[..n].join("::"))
                .find(|m| known.contains(m));
            if let Some(target) = target.filter(|t| t != me) {
                found.insert(target);
            }
        }
    }
    found
}

/// 0: domain; 1: config and telemetry; 2: store; 3: the actors.
fn layer(module: &str) -> u8 {
    match module.split("::").next().unwrap() {
        "domain" => 0,
        "config" | "telemetry" => 1,
        "store" => 2,
        _ => 3,
    }
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let known: BTreeSet<String> = modules.keys().cloned().collect();
    modules
        .iter()
        .map(|(m, text)| (m.clone(), imports(m, text, &known)))
        .collect()
}

#[test]
fn imports_point_down_the_layers_and_never_in_a_circle() {
    let graph = graph();
    for (module, imports) in &graph {
        println!(
            "{module} -> {}",
            Vec::from_iter(imports.iter().cloned()).join(", ")
        );
    }
    for (module, imports) in &graph {
        let top = module.split("::").next().unwrap();
        for target in imports {
            let same_area = target.split("::").next().unwrap() == top;
            assert!(
                same_area
                    || layer(target) < layer(module)
                    || (layer(module) == 3 && layer(target) == 3),
                "{module} imports {target}, which is not below it"
            );
        }
    }
    // Depth-first search for a back edge.
    fn visit<'a>(
        m: &'a str,
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) {
        if done.contains(m) {
            return;
        }
        if let Some(at) = path.iter().position(|p| *p == m) {
            panic!("import cycle: {} -> {m}", path[at..].join(" -> "));
        }
        path.push(m);
        for next in &graph[m] {
            visit(next, graph, path, done);
        }
        path.pop();
        done.insert(m);
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut Vec::new(), &mut done);
    }
}

#[test]
fn the_domain_names_no_io_crate() {
    for (module, text) in modules() {
        if layer(&module) != 0 {
            continue;
        }
        for word in ["actix", "redis", "tokio_postgres", "deadpool"] {
            let named = text.match_indices(word).any(|(i, _)| {
                !text[..i]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_')
            });
            assert!(!named, "{module} names {word}");
        }
    }
}

#[test]
fn the_checks_can_fail() {
    let known: BTreeSet<String> = ["domain::ids", "store", "room"].map(String::from).into();
    let found = imports(
        "domain::ids",
        "use crate::store::Store;\nuse super::x;",
        &known,
    );
    assert_eq!(found, BTreeSet::from(["store".to_owned()]));
    assert!(
        layer("store") > layer("domain::ids"),
        "an upward import is seen as one"
    );
}

//! Collects every value of 32 bytes or more that appears in the repository's text files, as
//! 64-bit FNV-1a hashes, so that podium can refuse to start with a secret anyone can read here
//! (an example, a test's key, a placeholder copied from a compose file). See `src/secrets.rs`.
//!
//! A value is a run of characters between whitespace, quotes and brackets, and also what
//! follows its first `=` or `:` (so `JWT_SECRET=...` and `name:key` count by their value).
//! Directories a build makes or downloads (target, node_modules, .git) are not read.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

#[path = "src/fnv.rs"]
mod fnv;
use fnv::fnv1a;

/// The shortest secret podium accepts: shorter ones are refused for their length anyway.
const MIN: usize = 32;
const SKIP: &[&str] = &[
    "target",
    "node_modules",
    ".git",
    "artifacts",
    "corpus",
    "results",
    ".schemathesis",
];

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap());
    let mut files = Vec::new();
    walk(&root, &mut files);
    let mut hashes = BTreeSet::new();
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
        let Ok(bytes) = fs::read(file) else { continue };
        if bytes.len() > 4 << 20 || bytes.contains(&0) {
            continue;
        }
        for value in values(&String::from_utf8_lossy(&bytes)) {
            hashes.insert(fnv1a(value.as_bytes()));
        }
    }
    let list: Vec<String> = hashes.iter().map(|h| format!("{h:#x}")).collect();
    let out = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("known_values.rs");
    fs::write(
        out,
        format!(
            "/// FNV-1a hashes of the repository's values of {MIN} bytes or more, sorted.\npub static KNOWN: &[u64] = &[{}];\n",
            list.join(", ")
        ),
    )
    .unwrap();
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    // A file added or removed here changes the directory itself.
    println!("cargo:rerun-if-changed={}", dir.display());
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if !SKIP.iter().any(|s| name == *s) {
                walk(&path, files);
            }
        } else if kind.is_file() && name != ".env" {
            // `.env` holds this machine's own secrets (scripts/dev-secrets), not the repository's.
            files.push(path);
        }
    }
}

/// The values of `text` that a secret could be copied from (see the module doc).
fn values(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    for raw in text.split(|c: char| c.is_whitespace() || "\"'`,;()[]{}<>".contains(c)) {
        for token in [raw, raw.trim_end_matches(['.', '!', '?'])] {
            let mut candidates = vec![token];
            for sep in ['=', ':'] {
                if let Some((_, rest)) = token.split_once(sep) {
                    candidates.push(rest);
                }
                candidates.extend(token.split(sep));
            }
            out.extend(candidates.into_iter().filter(|c| c.len() >= MIN));
        }
    }
    out
}

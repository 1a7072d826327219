//! The architecture, checked: who may use whom inside the binary (docs/architecture.md), no
//! import cycle between its areas, protocols that never use each other, and library crates
//! that know no HTTP framework. Reads the sources and manifests; builds nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The binary's areas and the areas each may use. A protocol (`protocols::x`) is an area of its
/// own; `protocols` stands for every one of them.
const ALLOWED: &[(&str, &[&str])] = &[
    (
        "cli",
        &["app", "engine", "dali", "products", "identity", "publish"],
    ),
    (
        "app",
        &[
            "protocols",
            "products",
            "identity",
            "dali",
            "engine",
            "publish",
        ],
    ),
    (
        "protocols",
        &["products", "identity", "dali", "engine", "publish"],
    ),
    ("products", &["dali", "engine", "publish"]),
    ("dali", &["identity", "engine"]),
    ("identity", &[]),
    ("engine", &[]),
    ("publish", &[]),
];

/// The library crates: none may depend on an HTTP framework.
const LIBRARIES: &[&str] = &["adql", "votable", "storage", "catalogs", "uws", "vospace"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The area of a source file: `main` for src/main.rs, `protocols::tap` for
/// src/protocols/tap/…, else the top module (`engine`, `dali`, …).
fn area_of(rel: &Path) -> String {
    let parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().trim_end_matches(".rs").to_string())
        .collect();
    match parts.as_slice() {
        [one] => one.clone(),
        [first, second, ..] if first == "protocols" && second != "mod" => {
            format!("protocols::{second}")
        }
        [first, ..] => first.clone(),
        [] => String::new(),
    }
}

/// The area a `crate::a::b…` path names.
fn area_of_path(segments: &[&str]) -> Option<String> {
    match segments {
        ["protocols", p, ..] => Some(format!("protocols::{p}")),
        ["protocols"] => Some("protocols".into()),
        [first, ..] => Some((*first).to_string()),
        [] => None,
    }
}

/// Every `crate::…` path in the code of `text` (comments left out), as segments.
fn crate_paths(text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let before = rest[..i].chars().last();
            rest = &rest[i + "crate::".len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue; // `some_crate::` is another crate
            }
            let mut segs = Vec::new();
            let mut tail = rest;
            loop {
                let ident: String = tail
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if ident.is_empty() {
                    break;
                }
                tail = &tail[ident.len()..];
                segs.push(ident);
                match tail.strip_prefix("::") {
                    Some(t) => tail = t,
                    None => break,
                }
            }
            // `use crate::{a, b::c}`: each item of the group names an area.
            if segs.is_empty() && tail.starts_with('{') {
                let group: String = tail[1..].chars().take_while(|c| *c != '}').collect();
                for item in group.split(',') {
                    let s: Vec<String> = item
                        .split("::")
                        .map(|x| x.trim().to_string())
                        .filter(|x| {
                            !x.is_empty() && x.chars().all(|c| c.is_alphanumeric() || c == '_')
                        })
                        .collect();
                    if !s.is_empty() {
                        out.push(s);
                    }
                }
                continue;
            }
            if !segs.is_empty() {
                out.push(segs);
            }
        }
    }
    out
}

/// area → areas it uses, with one file of each use for the message.
fn dependencies() -> BTreeMap<String, BTreeMap<String, String>> {
    let src = root().join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    assert!(files.len() > 20, "no sources found under {}", src.display());
    let mut deps: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).unwrap_or(&f).to_path_buf();
        let from = area_of(&rel);
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        let entry = deps.entry(from.clone()).or_default();
        for segs in crate_paths(&text) {
            let refs: Vec<&str> = segs.iter().map(String::as_str).collect();
            if let Some(to) = area_of_path(&refs) {
                if to != from && !from.starts_with(&format!("{to}::")) {
                    entry.entry(to).or_insert_with(|| rel.display().to_string());
                }
            }
        }
    }
    deps
}

/// The rule for an area (a protocol follows `protocols`'s).
fn allowed(area: &str) -> Option<&'static [&'static str]> {
    let key = if area.starts_with("protocols::") {
        "protocols"
    } else {
        area
    };
    ALLOWED.iter().find(|(a, _)| *a == key).map(|(_, to)| *to)
}

#[test]
fn every_area_uses_only_what_it_may() {
    let mut wrong = Vec::new();
    for (from, tos) in dependencies() {
        if from == "main" {
            continue; // declares the modules
        }
        let Some(may) = allowed(&from) else {
            wrong.push(format!(
                "{from}: an area docs/architecture.md does not know"
            ));
            continue;
        };
        for (to, file) in tos {
            let to_key = if to.starts_with("protocols::") {
                "protocols"
            } else {
                to.as_str()
            };
            if from.starts_with("protocols::") && to_key == "protocols" {
                wrong.push(format!("{file}: protocol {from} uses protocol {to}"));
            } else if !may.contains(&to_key) {
                wrong.push(format!("{file}: {from} may not use {to}"));
            }
        }
    }
    assert!(wrong.is_empty(), "layout violations:\n{}", wrong.join("\n"));
}

#[test]
fn the_areas_form_no_cycle() {
    let deps = dependencies();
    let graph: BTreeMap<String, BTreeSet<String>> = deps
        .iter()
        .map(|(a, tos)| (a.clone(), tos.keys().cloned().collect()))
        .collect();
    // Depth-first search with colours: a grey node reached again closes a cycle.
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        colour: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match colour.get(n) {
            Some(1) => {
                let start = path.iter().position(|p| p == n).unwrap_or(0);
                let mut cycle = path[start..].to_vec();
                cycle.push(n.to_string());
                return Some(cycle);
            }
            Some(2) => return None,
            _ => {}
        }
        colour.insert(n.to_string(), 1);
        path.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, colour, path) {
                return Some(c);
            }
        }
        path.pop();
        colour.insert(n.to_string(), 2);
        None
    }
    let mut colour = BTreeMap::new();
    for n in graph.keys() {
        if let Some(c) = visit(n, &graph, &mut colour, &mut Vec::new()) {
            panic!("import cycle: {}", c.join(" → "));
        }
    }
}

#[test]
fn library_crates_know_no_http_framework() {
    for lib in LIBRARIES {
        let manifest = root().join(lib).join("Cargo.toml");
        let text = std::fs::read_to_string(&manifest)
            .unwrap_or_else(|e| panic!("{}: {e}", manifest.display()));
        for line in text.lines() {
            let name = line.split('=').next().unwrap_or("").trim();
            assert!(
                !(name.starts_with("actix") || name == "axum" || name == "hyper"),
                "{lib} depends on {name}: library crates stay free of HTTP frameworks"
            );
        }
        let mut files = Vec::new();
        rust_files(&root().join(lib).join("src"), &mut files);
        for f in files {
            let text = std::fs::read_to_string(&f).unwrap_or_default();
            assert!(
                !text.contains("actix_web::"),
                "{} uses actix_web",
                f.display()
            );
        }
    }
}

#[test]
fn the_checker_sees_paths_and_groups() {
    let found = crate_paths(
        "use crate::dali::{self, Params};\nuse crate::{engine::Engine, identity};\n\
         // crate::app in a comment\nlet x = crate::protocols::tap::prepare(); my_crate::x",
    );
    let s: Vec<String> = found.iter().map(|p| p.join("::")).collect();
    assert_eq!(
        s,
        [
            "dali",
            "engine::Engine",
            "identity",
            "protocols::tap::prepare"
        ]
        .iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
    );
    assert_eq!(
        area_of(Path::new("protocols/tap/jobs.rs")),
        "protocols::tap"
    );
    assert_eq!(area_of(Path::new("protocols/scs.rs")), "protocols::scs");
    assert_eq!(area_of(Path::new("protocols/mod.rs")), "protocols");
    assert_eq!(area_of(Path::new("main.rs")), "main");
}

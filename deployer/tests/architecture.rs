//! The house's arrows point one way: no import cycle between the top-level
//! modules of `deployer/src`, and nothing in the library imports the command layer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules its non-test code names as `crate::x`.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    fn walk(dir: &Path, root: &Path, g: &mut BTreeMap<String, BTreeSet<String>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, g);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let top = first.trim_end_matches(".rs").to_string();
            if ["main", "lib", "fixtures"].contains(&top.as_str()) {
                continue;
            }
            let src = std::fs::read_to_string(&path).unwrap();
            let src = src.split("#[cfg(test)]").next().unwrap();
            let deps = g.entry(top.clone()).or_default();
            for line in src.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for (i, _) in line.match_indices("crate::") {
                    let name: String = line[i + 7..]
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() && name != top {
                        deps.insert(name);
                    }
                }
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut g = BTreeMap::new();
    walk(&root, &root, &mut g);
    g
}

fn cycle_from(
    g: &BTreeMap<String, BTreeSet<String>>,
    node: &str,
    stack: &mut Vec<String>,
) -> Option<Vec<String>> {
    if let Some(i) = stack.iter().position(|s| s == node) {
        let mut c = stack[i..].to_vec();
        c.push(node.to_string());
        return Some(c);
    }
    stack.push(node.to_string());
    for next in g.get(node).into_iter().flatten() {
        if let Some(c) = cycle_from(g, next, stack) {
            return Some(c);
        }
    }
    stack.pop();
    None
}

#[test]
fn no_import_cycles_between_modules() {
    let g = graph();
    assert!(g.len() > 10, "the scan found the modules: {g:?}");
    for node in g.keys() {
        if let Some(c) = cycle_from(&g, node, &mut Vec::new()) {
            panic!("import cycle: {}\n{g:#?}", c.join(" -> "));
        }
    }
}

#[test]
fn the_library_never_imports_the_command_layer() {
    for (module, deps) in graph() {
        if module != "commands" {
            assert!(
                !deps.contains("commands"),
                "{module} imports crate::commands"
            );
        }
    }
}

/// The shared pipeline knows no engine: only the target's own module, the front
/// door that picks a target (`deploy`), the command layer and `build` (which
/// builds an image on the engine) name the Docker target.
#[test]
fn only_the_target_and_its_chooser_know_the_docker_engine() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(&p, out);
            } else if p.extension().is_some_and(|e| e == "rs") {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    walk(&src, &mut files);
    assert!(files.len() > 30);
    for f in files {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        let allowed = [
            "target/",
            "deploy.rs",
            "commands/",
            "build.rs",
            "main.rs",
            "lib.rs",
        ];
        if allowed.iter().any(|a| rel.starts_with(a)) {
            continue;
        }
        let text = std::fs::read_to_string(&f).unwrap();
        let code: String = text
            .split("#[cfg(test)]")
            .next()
            .unwrap()
            .lines()
            .filter(|l| !l.trim_start().starts_with("//"))
            .collect();
        if code.contains("target::docker") || code.contains("bollard") {
            offenders.push(rel);
        }
    }
    assert!(
        offenders.is_empty(),
        "these name the Docker target: {offenders:?}"
    );
}

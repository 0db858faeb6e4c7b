//! The corpus of broken cluster files under tests/corpus/bad: each one is refused
//! with its specific message at its specific location, and nothing is written.

mod common;

use common::{repo, Dir};

struct Case {
    name: String,
    bytes: Vec<u8>,
    expect: String,
    hint: Option<String>,
    at: Option<(usize, usize)>,
}

fn cases() -> Vec<Case> {
    let dir = repo().join("tests/corpus/bad");
    let mut cases = Vec::new();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("toml") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        // An empty case keeps its expectations in a sidecar file.
        let header = if bytes.is_empty() {
            std::fs::read_to_string(path.with_extension("expect")).unwrap()
        } else {
            String::from_utf8_lossy(&bytes).into_owned()
        };
        let field = |key: &str| {
            header
                .lines()
                .find_map(|l| l.strip_prefix(&format!("# {key}: ")))
                .map(str::to_string)
        };
        let at = field("at").filter(|a| a != "none").map(|a| {
            let (l, c) = a.split_once(':').unwrap();
            (l.parse().unwrap(), c.parse().unwrap())
        });
        cases.push(Case {
            name: path.file_name().unwrap().to_string_lossy().into_owned(),
            expect: field("expect").unwrap_or_else(|| panic!("{path:?} has no `# expect:` line")),
            hint: field("hint"),
            at,
            bytes,
        });
    }
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    cases
}

#[test]
fn the_corpus_is_large_enough() {
    assert!(cases().len() >= 25, "only {} broken files", cases().len());
}

#[test]
fn every_broken_file_is_refused_with_its_message_and_location() {
    let mut failures = Vec::new();
    for case in cases() {
        let dir = Dir::new();
        dir.write("cluster.toml", &case.bytes);
        let run = dir.run(&["validate"]);
        let mut problems = Vec::new();
        if run.code != 1 {
            problems.push(format!("exit code {} (want 1)", run.code));
        }
        if !run.stderr.contains(&case.expect) {
            problems.push(format!("message {:?} missing", case.expect));
        }
        if let Some((l, c)) = case.at {
            let loc = format!("cluster.toml:{l}:{c}");
            if !run.stderr.contains(&loc) {
                problems.push(format!("location {loc} missing"));
            }
        }
        if let Some(h) = &case.hint {
            if !run.stderr.contains(h.as_str()) {
                problems.push(format!("hint {h:?} missing"));
            }
        }
        if run.stderr.contains("panicked") {
            problems.push("panicked".into());
        }

        // The JSON form says the same, with the location as numbers.
        let json = dir.run(&["validate", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&json.stdout)
            .unwrap_or_else(|e| panic!("{}: bad JSON {e}: {}", case.name, json.stdout));
        assert_eq!(v["ok"], false, "{}", case.name);
        let diags = v["diagnostics"].as_array().unwrap();
        let hit = diags
            .iter()
            .find(|d| d["message"].as_str().unwrap().contains(&case.expect));
        match (hit, case.at) {
            (None, _) => problems.push("no JSON diagnostic with the message".into()),
            (Some(d), Some((l, c))) if d["line"] != l || d["column"] != c => {
                problems.push(format!("JSON location {}:{}", d["line"], d["column"]));
            }
            _ => {}
        }

        // render refuses too, and writes nothing at all.
        let render = dir.run(&["render"]);
        if render.code != 1 {
            problems.push(format!("render exit code {}", render.code));
        }
        if dir.files() != vec!["cluster.toml".to_string()] {
            problems.push(format!("render wrote {:?}", dir.files()));
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{}: {}\n{}",
                case.name,
                problems.join("; "),
                run.stderr
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n\n"));
}

#[test]
fn a_five_megabyte_file_is_refused_without_reading_it_as_toml() {
    let dir = Dir::new();
    let mut big = String::from("[cluster]\nname = \"demo\"\n");
    while big.len() < 5_000_000 {
        big.push_str("# padding padding padding padding padding padding padding padding\n");
    }
    dir.write("cluster.toml", big);
    let run = dir.run(&["validate"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("the file is 5.0 MB"), "{}", run.stderr);
    assert!(run.stderr.contains("at most 1024 KiB"), "{}", run.stderr);
    let render = dir.run(&["render"]);
    assert_eq!(render.code, 1);
    assert_eq!(dir.files(), vec!["cluster.toml".to_string()]);
}

#[test]
fn a_missing_file_is_an_error_with_its_cause() {
    let dir = Dir::new();
    let run = dir.run(&["-f", "nope.toml", "validate"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("error: cannot read nope.toml"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("caused by: No such file or directory"),
        "{}",
        run.stderr
    );
}

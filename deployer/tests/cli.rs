//! The CLI contract: commands, flags, exit codes and what a user reads.

mod common;

use common::{example, repo, Dir};

#[test]
fn validate_prints_the_budget_of_the_example() {
    let dir = Dir::new();
    dir.write("cluster.toml", example());
    let run = dir.run(&["validate"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("cluster `demo`: 3 nodes × pool 10"),
        "{}",
        run.stdout
    );
    // (3 + 1) × (10 + 1) + 3 = 47 of 100 − 3 = 97.
    for row in [
        "per node",
        "10 pool + 1 listener",
        "(3 + 1 surge) × 11 + 3 reserve",
        "47",
        "100 max_connections − 3 superuser reserved",
        "97",
    ] {
        assert!(
            run.stdout.contains(row),
            "missing {row:?} in\n{}",
            run.stdout
        );
    }
    assert!(run.stderr.is_empty(), "{}", run.stderr);
}

#[test]
fn file_flag_works_before_and_after_the_command() {
    let dir = Dir::new();
    dir.write(
        "staging.toml",
        "[cluster]\nname = \"staging\"\n[app]\nnodes = 2\n",
    );
    for args in [
        &["-f", "staging.toml", "validate"][..],
        &["validate", "-f", "staging.toml"][..],
        &["validate", "--file", "staging.toml"][..],
    ] {
        let run = dir.run(args);
        assert_eq!(run.code, 0, "{args:?}: {}", run.stderr);
        assert!(
            run.stdout.contains("cluster `staging`: 2 nodes"),
            "{}",
            run.stdout
        );
    }
}

#[test]
fn validate_json_is_machine_readable() {
    let dir = Dir::new();
    dir.write("cluster.toml", example());
    let run = dir.run(&["validate", "--json"]);
    assert_eq!(run.code, 0);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert_eq!(v["budget"]["peak"], 47);
    assert_eq!(v["budget"]["limit"], 97);
    assert_eq!(v["headroom"], 50);
    assert_eq!(v["cluster"]["balancer"]["strategy"], "round_robin");
}

#[test]
fn low_headroom_warns_but_passes() {
    let dir = Dir::new();
    // peak (3 + 1) × 11 + 3 = 47; limit 50 − 0 = 50: 6% headroom.
    dir.write(
        "cluster.toml",
        "[cluster]\nname = \"tight\"\n[database]\nmax_connections = 50\nsuperuser_reserved_connections = 0\n",
    );
    let run = dir.run(&["validate"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stderr
            .contains("warning: only 3 connections (6.0%) of headroom"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("cluster.toml:4:19"), "{}", run.stderr);
    assert!(
        run.stderr.contains("consider max_connections = 53"),
        "{}",
        run.stderr
    );
}

#[test]
fn over_budget_names_both_fixes() {
    let dir = Dir::new();
    dir.write(
        "cluster.toml",
        "[cluster]\nname = \"big\"\n[app]\nnodes = 3\npool_size = 30\n",
    );
    let run = dir.run(&["validate"]);
    assert_eq!(run.code, 1);
    // (3 + 1) × 31 + 3 = 127 > 97: over by 30. Largest pool: (97 − 3) / 4 − 1 = 22.
    assert!(run.stderr.contains("over by 30"), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("lower pool_size to 22, or raise max_connections to 130"),
        "{}",
        run.stderr
    );
}

#[test]
fn twenty_nodes_pass_with_pgbouncer_and_are_refused_without() {
    let dir = Dir::new();
    let twenty = example().replace("nodes = 3 ", "nodes = 20 ");
    dir.write("direct.toml", &twenty);
    dir.write(
        "pooled.toml",
        twenty.replace("pooler = \"none\"", "pooler = \"pgbouncer\""),
    );
    let run = dir.run(&["-f", "pooled.toml", "validate"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // PostgreSQL: 20 pooled + (20 + 1) listeners + 3 = 44 of 97; PgBouncer: 21 × 10 + 3 = 213 of 1000.
    for row in [
        "server side: PostgreSQL",
        "20 + (20 + 1 surge) × 1 + 3 reserve           44",
        "client side: the pooler",
        "(20 + 1 surge) × 10 + 3 reserve              213",
        "1000 pooler_max_client_conn                 1000",
    ] {
        assert!(
            run.stdout.contains(row),
            "missing {row:?} in\n{}",
            run.stdout
        );
    }

    let run = dir.run(&["-f", "direct.toml", "validate"]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(run.stderr.contains("over by 137"), "{}", run.stderr);
    assert!(run.stderr.contains("--> direct.toml:"), "{}", run.stderr);
    assert!(
        run.stderr.contains(
            "or put PgBouncer in front (`pooler = \"pgbouncer\"` in [database]): PostgreSQL would see at most 44 of 97"
        ),
        "{}",
        run.stderr
    );
}

#[test]
fn every_command_has_help_with_an_example() {
    let dir = Dir::new();
    for args in [
        &["--help"][..],
        &["validate", "--help"][..],
        &["render", "--help"][..],
        &["logs", "--help"][..],
        &["rollback", "--help"][..],
        &["history", "--help"][..],
    ] {
        let run = dir.run(args);
        assert_eq!(run.code, 0, "{args:?}");
        assert!(run.stdout.contains("Example"), "{args:?}: {}", run.stdout);
    }
}

#[test]
fn logs_targets_are_checked_against_the_file_and_f_after_the_command_follows() {
    let dir = Dir::new();
    dir.write(
        "staging.toml",
        "[cluster]\nname = \"staging\"\n[app]\nnodes = 2\n",
    );
    // `-f PATH` before the command is the file; `-f` after `logs` is --follow.
    // Targets are checked before the engine is asked anything.
    for (args, want) in [
        (
            &["-f", "staging.toml", "logs", "web", "-f"][..],
            "unknown log target `web`",
        ),
        (
            &["logs", "--file", "staging.toml", "--follow", "app-3"][..],
            "cluster `staging` has 2 nodes (app-1 … app-2), not `app-3`",
        ),
        (
            &["-f", "staging.toml", "logs", "-f", "redis"][..],
            "[redis] enabled = false",
        ),
    ] {
        let run = dir.run(args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains(want), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains(
                "valid targets: app (every node), app-1 … app-2 (or staging-app-1 …), postgres, balancer (or lb)"
            ),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
    let run = dir.run(&["-f", "staging.toml", "logs", "--since", "ten minutes"]);
    assert_eq!(run.code, 2, "a usage error: {}", run.stderr);
    assert!(run.stderr.contains("e.g. 30s, 10m, 2h"), "{}", run.stderr);
}

#[test]
fn committed_generated_files_match_cluster_toml() {
    let file = repo().join("cluster.toml");
    let dir = Dir::new();
    let run = dir.run(&["-f", file.to_str().unwrap(), "render", "--check"]);
    assert_eq!(
        run.code, 0,
        "generated/ is stale; run `deployer render` and commit:\n{}",
        run.stderr
    );
}

#[test]
fn render_writes_files_and_secrets_outside_them() {
    let dir = Dir::new();
    dir.write("cluster.toml", example());
    let run = dir.run(&["render"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("generated/nginx.conf (written)"),
        "{}",
        run.stdout
    );
    let nginx = std::fs::read_to_string(dir.path().join("generated/nginx.conf")).unwrap();
    let compose = std::fs::read_to_string(dir.path().join("generated/docker-compose.yml")).unwrap();
    assert!(nginx.starts_with("# generated by deployer from cluster.toml — do not edit\n"));
    assert!(compose.starts_with("# generated by deployer from cluster.toml — do not edit\n"));

    // Secrets exist, are private, and appear in no generated file.
    use std::os::unix::fs::PermissionsExt;
    let secrets = dir.path().join(".deployer/secrets");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&secrets), 0o700);
    for name in ["db_password", "jwt_secret"] {
        assert_eq!(mode(&secrets.join(name)), 0o600, "{name}");
        // The copy compose mounts as /run/secrets/<name>: readable by the
        // container's user, inside a directory only the owner can enter.
        assert_eq!(
            mode(&secrets.join("compose").join(name)),
            0o444,
            "compose/{name}"
        );
    }
    assert_eq!(mode(&secrets.join("compose")), 0o700);
    // No env file with the password in a DATABASE_URL (docker inspect would show it).
    assert!(!secrets.join("app.env").exists());
    let password = std::fs::read_to_string(secrets.join("db_password")).unwrap();
    let jwt = std::fs::read_to_string(secrets.join("jwt_secret")).unwrap();
    assert!(password.len() >= 32 && jwt.len() >= 32);
    for text in [&nginx, &compose, &run.stdout, &run.stderr] {
        assert!(!text.contains(password.trim()));
        assert!(!text.contains(jwt.trim()));
    }

    // A second render keeps the secrets and changes nothing.
    let again = dir.run(&["render"]);
    assert!(
        again.stdout.contains("generated/nginx.conf (unchanged)"),
        "{}",
        again.stdout
    );
    assert_eq!(
        std::fs::read_to_string(secrets.join("db_password")).unwrap(),
        password
    );
}

#[test]
fn render_check_shows_a_diff_when_stale() {
    let dir = Dir::new();
    dir.write("cluster.toml", example());
    assert_eq!(dir.run(&["render"]).code, 0);
    assert_eq!(dir.run(&["render", "--check"]).code, 0);
    dir.write(
        "cluster.toml",
        example().replace("nodes = 3 ", "nodes = 4 "),
    );
    let run = dir.run(&["render", "--check"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("+        server demo-app-4:4000"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("2 files are out of date"),
        "{}",
        run.stderr
    );
    // --check wrote nothing.
    let nginx = std::fs::read_to_string(dir.path().join("generated/nginx.conf")).unwrap();
    assert!(!nginx.contains("demo-app-4"));
    let json = dir.run(&["render", "--check", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["stale"].as_array().unwrap().len(), 2);
}

#[test]
fn render_out_dir_and_json() {
    let dir = Dir::new();
    dir.write("cluster.toml", example());
    let run = dir.run(&["render", "--out", "elsewhere", "--json"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["files"].as_array().unwrap().len(), 2);
    assert!(dir.path().join("elsewhere/docker-compose.yml").exists());
    let compose = std::fs::read_to_string(dir.path().join("elsewhere/docker-compose.yml")).unwrap();
    assert!(compose.contains("file: \"../.deployer/secrets/compose/db_password\""));
    assert!(!compose.contains("env_file"));
}

#[test]
fn env_values_cannot_break_out_of_yaml() {
    let dir = Dir::new();
    let toml = example().replace(
        "RUST_LOG = \"info\"",
        "RUST_LOG = \"info\"\nGREETING = \"x: 1\\\" injected: \\\"$HOME\"",
    );
    dir.write("cluster.toml", toml);
    let run = dir.run(&["render"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let compose = std::fs::read_to_string(dir.path().join("generated/docker-compose.yml")).unwrap();
    // One quoted scalar; `$` escaped against compose interpolation.
    assert!(
        compose.contains(r#"GREETING: "x: 1\" injected: \"$$HOME""#),
        "{compose}"
    );
}

/// `history` reads the revisions next to the file (no engine): the table, `--show`, `--json`,
/// and a clear word when there is none or the revision does not exist.
#[test]
fn history_lists_revisions_shows_one_and_speaks_json() {
    use deployer::history::{Cause, Failure, Outcome, Revision, RevisionImages, Store};
    use deployer::model::Images;

    let dir = Dir::new();
    dir.write("cluster.toml", example());
    let run = dir.run(&["history"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(
        run.stdout.contains("cluster `demo` has no history yet"),
        "{}",
        run.stdout
    );

    let images = |app: &str| Images {
        app: app.into(),
        postgres: "sha256:9999".into(),
        redis: None,
        pooler: None,
        balancer: "sha256:8888".into(),
    };
    let store = Store::at(dir.path(), "demo");
    let rows = [
        (Cause::Apply, Outcome::Applied, "created: 3 nodes"),
        (Cause::Apply, Outcome::Applied, "nodes 3→5"),
        (Cause::Apply, Outcome::Failed, "env FOO added"),
        (Cause::Rollback { to: 1 }, Outcome::Applied, "nodes 5→3"),
    ];
    for (i, (cause, outcome, change)) in rows.into_iter().enumerate() {
        store
            .record(Revision {
                number: 0,
                at: format!("2026-11-27T05:0{i}:00Z"),
                cluster: "demo".into(),
                target: "docker".into(),
                cause,
                outcome,
                failure: (outcome == Outcome::Failed).then(|| Failure {
                    error: "apply of cluster `demo` failed".into(),
                    rolled_back: Some("the new demo-app-1 must pass its health gate".into()),
                }),
                changes: vec![change.into()],
                images: RevisionImages {
                    refs: images("deployer-app:latest"),
                    ids: images("sha256:ab12cd"),
                },
                migrations: Some(vec![]),
                toml: format!("# revision {}\n", i + 1),
            })
            .unwrap();
    }
    let run = dir.run(&["history"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{}", run.stdout);
    for (line, want) in lines[1..].iter().zip([
        [
            "1",
            "2026-11-27 05:00:00",
            "superseded",
            "apply",
            "created: 3 nodes",
        ],
        [
            "2",
            "2026-11-27 05:01:00",
            "superseded",
            "apply",
            "nodes 3→5",
        ],
        [
            "3",
            "2026-11-27 05:02:00",
            "failed",
            "apply failed; rolled back: the new demo-app-1",
            "env FOO added",
        ],
        [
            "4",
            "2026-11-27 05:03:00",
            "deployed",
            "rollback to 1",
            "nodes 5→3",
        ],
    ]) {
        for w in want {
            assert!(line.contains(w), "{w:?} missing in {line:?}");
        }
    }
    let run = dir.run(&["history", "--show", "2"]);
    assert_eq!((run.code, run.stdout.as_str()), (0, "# revision 2\n"));
    let run = dir.run(&["history", "--show", "9"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("cluster `demo` has no revision 9"),
        "{}",
        run.stderr
    );
    let run = dir.run(&["history", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(v["revisions"][2]["status"], "failed");
    assert_eq!(v["revisions"][3]["cause"]["to"], 1);
    assert_eq!(v["revisions"][3]["status"], "deployed");

    // A file that no longer validates still names its cluster: its history can be read.
    dir.write(
        "cluster.toml",
        "[cluster]\nname = \"demo\"\n[app]\nnodes = 0\n",
    );
    let run = dir.run(&["history"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(run.stdout.contains("rollback to 1"), "{}", run.stdout);
}

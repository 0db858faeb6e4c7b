//! `deployer rollback` and `deployer history` on the real engine and on the swarm lab: every
//! apply recorded as a revision (never a secret in it), a rollback under load with no failed
//! request that runs the revision's own image (pinned by ID, whatever the tag points to now)
//! and env, recorded as a revision of its own; an unknown revision, a rollback across a
//! migration and a revision whose image is gone refused with nothing changed; a failed health
//! gate recorded as failed, the old nodes serving.

use std::process::Command;
use std::time::Duration;

use clap::Parser;
use deployer::commands::{self, Cli};
use deployer::events::Silent;
use deployer::history::{self, Cause, Outcome, Revision, Status, Store};
use deployer::plan::Goal;
use e2e::{serial, Cluster, Lab, Load};
use serde_json::Value;

/// `deployer apply --yes` as the command does it: converge, record the revision.
fn apply(c: &Cluster) -> anyhow::Result<Revision> {
    c.rt.block_on(async {
        let d = c.deployment().await?;
        let _lock = d.lock()?;
        let p = d.prepare(Goal::Converge).await?;
        anyhow::ensure!(!p.plan.is_empty(), "nothing to apply");
        let r = d.apply_and_record(&p, &Silent, Cause::Apply).await?;
        anyhow::ensure!(r.applied.left.is_empty(), "left: {}", r.applied.left);
        Ok(r.revision)
    })
}

/// The command line itself (`deployer -f FILE ARGS…`), as a user runs it; its exit code.
fn deployer(c: &Cluster, args: &[&str]) -> anyhow::Result<u8> {
    let file = c.file();
    let mut argv = vec!["deployer", "-f", file.to_str().unwrap()];
    argv.extend_from_slice(args);
    Ok(commands::run(Cli::parse_from(argv))?.code())
}

fn revisions(c: &Cluster) -> Vec<Revision> {
    Store::at(c.dir.path(), &c.name).list().unwrap()
}

fn statuses(c: &Cluster) -> Vec<Status> {
    history::statuses(&revisions(c))
}

/// `docker ARGS` on this machine's engine; its stdout.
fn docker(args: &[&str]) -> String {
    let out = Command::new("docker").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// An app image tag of this test's own (and its copies named for a registry), removed at the end.
struct Tag(String, Vec<String>);

impl Tag {
    fn new(tag: &str) -> Tag {
        docker(&["tag", "deployer-app:latest", tag]);
        Tag(tag.to_string(), Vec::new())
    }

    /// Pushes the tag to the lab's registry, as `deployer build` does for a swarm.
    fn push(&mut self, c: &Cluster) {
        let registry = Lab::get().var("SWARM_LAB_REGISTRY");
        let pushed = c.rt.block_on(async {
            let engine = deployer::target::docker::engine::Engine::connect()
                .await
                .unwrap();
            deployer::build::push(&engine, &self.0, &registry)
                .await
                .unwrap()
        });
        self.1.push(pushed);
    }

    /// Points the tag at a new image (the same app, one more label): what a rebuild does.
    fn rebuild(&self, label: &str) -> String {
        let mut child = Command::new("docker")
            .args(["build", "-q", "-t", &self.0, "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        write!(
            child.stdin.take().unwrap(),
            "FROM deployer-app:latest\nLABEL e2e.rollback={label}\n"
        )
        .unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "docker build");
        self.id()
    }

    fn id(&self) -> String {
        docker(&["image", "inspect", "-f", "{{.Id}}", &self.0])
    }
}

impl Drop for Tag {
    fn drop(&mut self) {
        for tag in self.1.iter().chain([&self.0]) {
            let _ = Command::new("docker").args(["rmi", tag]).output();
        }
    }
}

/// The example file on app image `tag`, with `ROLLBACK_X = x` and `extra` lines in [app.env].
fn edit(tag: &str, x: &str, extra: &str) -> impl FnOnce(String) -> String {
    let (tag, x, extra) = (tag.to_string(), x.to_string(), extra.to_string());
    move |t: String| {
        t.replace(
            "image = \"deployer-app:latest\"",
            &format!("image = \"{tag}\""),
        )
        .replace(
            "RUST_LOG = \"info\"",
            &format!("RUST_LOG = \"info\"\nROLLBACK_X = \"{x}\"\n{extra}"),
        )
    }
}

/// (env, image ID) of each app node container.
fn nodes(c: &Cluster) -> Vec<(Vec<String>, String)> {
    (1..=3)
        .map(|i| {
            let v: Value =
                serde_json::from_str(&docker(&["inspect", &format!("{}-app-{i}", c.name)]))
                    .unwrap();
            let env = v[0]["Config"]["Env"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e.as_str().unwrap().to_string())
                .collect();
            (env, v[0]["Image"].as_str().unwrap().to_string())
        })
        .collect()
}

fn assert_no_secret_in_history(c: &Cluster) {
    let secrets = c.dir.path().join(".deployer/secrets");
    let dir = Store::at(c.dir.path(), &c.name).dir().to_path_buf();
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert!(!files.is_empty());
    for f in files {
        let text = std::fs::read_to_string(f.unwrap().path()).unwrap();
        for secret in ["db_password", "jwt_secret"] {
            let value = std::fs::read_to_string(secrets.join(secret)).unwrap();
            assert!(value.trim().len() >= 16);
            assert!(
                !text.contains(value.trim()),
                "the {secret} value is in a revision file"
            );
        }
    }
}

#[test]
fn rollback_under_load_runs_the_previous_revision_and_history_tells_the_story() {
    let _serial = serial();
    let c = Cluster::new("rollback");
    let tag = Tag::new(&format!("deployer-app:{}", c.name));
    // A failing health gate gives up after health_timeout: 20 s is plenty for a healthy node.
    let name = tag.0.clone();
    let file = |x: &str, extra: &str| {
        let edit = edit(&name, x, extra);
        move |t: String| edit(t.replace("health_timeout = 60", "health_timeout = 20"))
    };

    // A: X=1 on the first image.
    c.write(file("1", ""));
    let a_image = tag.id();
    let a = apply(&c).unwrap();
    assert_eq!(a.number, 1);
    assert_eq!(a.outcome, Outcome::Applied);
    assert_eq!(a.images.ids.app, a_image);
    let short = |id: &str| id.trim_start_matches("sha256:")[..4].to_string();
    assert_eq!(
        a.changes,
        [
            "created: 3 nodes".to_string(),
            format!("image {}:{}", "deployer-app", short(&a_image))
        ]
    );
    let migrations = a.migrations.clone().expect("the database's migrations");
    assert!(migrations.len() >= 6, "{migrations:?}");

    // B: X=2 on a rebuilt image under the same tag.
    let b_image = tag.rebuild("b");
    assert_ne!(a_image, b_image);
    c.write(file("2", ""));
    let b = apply(&c).unwrap();
    assert_eq!(b.number, 2);
    assert_eq!(
        b.changes,
        [
            "env ROLLBACK_X changed".to_string(),
            format!("image deployer-app:{}→{}", short(&a_image), short(&b_image))
        ]
    );
    assert_eq!(statuses(&c), [Status::Superseded, Status::Deployed]);
    assert_eq!(deployer(&c, &["history"]).unwrap(), 0);
    assert_no_secret_in_history(&c);

    // Roll back to A under load, through the command line: not one failed request.
    let load = Load::start(&c, 4, "/api/health", None);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(deployer(&c, &["rollback", "--yes"]).unwrap(), 0);
    std::thread::sleep(Duration::from_millis(500));
    load.assert_none_failed(50, "the rollback");

    // Every node runs A's env and A's image, though the tag now names B's.
    assert_eq!(tag.id(), b_image);
    for (env, image) in nodes(&c) {
        assert!(env.contains(&"ROLLBACK_X=1".to_string()), "{env:?}");
        assert_eq!(image, a_image);
    }
    let all = revisions(&c);
    assert_eq!(all.len(), 3);
    let r = &all[2];
    assert_eq!(r.cause, Cause::Rollback { to: 1 });
    assert_eq!(r.outcome, Outcome::Applied);
    assert_eq!(r.description(), "rollback to 1");
    assert_eq!(
        r.changes,
        [
            "env ROLLBACK_X changed".to_string(),
            format!("image deployer-app:{}→{}", short(&b_image), short(&a_image))
        ]
    );
    assert_eq!(r.toml, a.toml);
    assert_eq!(
        statuses(&c),
        [Status::Superseded, Status::Superseded, Status::Deployed]
    );
    // cluster.toml still says B: the plan shows the way back to the file.
    let drift = c.plan().to_string();
    assert!(drift.contains("env.ROLLBACK_X: 1 → 2"), "{drift}");
    assert_no_secret_in_history(&c);

    // Refusals change nothing.
    let refused = |to: &str| {
        let e = deployer(&c, &["rollback", "--to", to, "--yes"]).unwrap_err();
        format!("{e:#}")
    };
    let e = refused("99");
    assert!(
        e.contains("has no revision 99; its revisions are 1, 2, 3"),
        "{e}"
    );

    // Across a migration: revision 2 as if its image predated the last migration.
    let store = Store::at(c.dir.path(), &c.name);
    let path = store.dir().join("0002.json");
    let original = std::fs::read_to_string(&path).unwrap();
    let mut older: Revision = serde_json::from_str(&original).unwrap();
    let last = older.migrations.as_mut().unwrap().pop().unwrap();
    std::fs::write(&path, serde_json::to_string(&older).unwrap()).unwrap();
    let e = refused("2");
    assert!(
        e.contains(&format!(
            "the schema moved forward since revision 2: the database has a migration it does not know ({} {})",
            last.version, last.description
        )),
        "{e}"
    );
    assert!(e.contains("Nothing was changed"), "{e}");
    std::fs::write(&path, original).unwrap();
    assert_eq!(revisions(&c).len(), 3, "a refusal records nothing");

    // A failed health gate (the app refuses JWT_TTL_SECS = 0 at start): recorded as failed,
    // the nodes of revision 3 keep serving.
    c.write(file("2", "JWT_TTL_SECS = \"0\""));
    let load = Load::start(&c, 2, "/api/health", None);
    let e = format!("{:#}", apply(&c).unwrap_err());
    load.assert_none_failed(10, "the failed apply");
    assert!(
        e.contains("(recorded as revision 4: `deployer history`)"),
        "{e}"
    );
    let failed = &revisions(&c)[3];
    assert_eq!(failed.outcome, Outcome::Failed);
    let why = failed.failure.as_ref().unwrap().rolled_back.clone();
    assert!(
        why.as_deref().is_some_and(|w| w.contains("health gate")),
        "{failed:?}"
    );
    assert!(
        failed
            .description()
            .starts_with("apply failed; rolled back:"),
        "{}",
        failed.description()
    );
    assert!(
        failed
            .changes
            .contains(&"env JWT_TTL_SECS added".to_string()),
        "{:?}",
        failed.changes
    );
    assert_eq!(
        statuses(&c),
        [
            Status::Superseded,
            Status::Superseded,
            Status::Deployed,
            Status::Failed
        ]
    );
    for (env, image) in nodes(&c) {
        assert!(env.contains(&"ROLLBACK_X=1".to_string()), "{env:?}");
        assert_eq!(image, a_image);
    }
    let e = refused("4");
    assert!(e.contains("revision 4 did not apply"), "{e}");

    // B's image is gone (the tag removed, nothing runs it): revision 2 cannot run again.
    drop(tag);
    let e = refused("2");
    assert!(
        e.contains(&format!(
            "revision 2 ran the app image {b_image} (deployer-app:{} when it was applied), and it is no longer on the Docker engine",
            c.name
        )),
        "{e}"
    );
    assert_eq!(revisions(&c).len(), 4);
    assert_eq!(deployer(&c, &["history", "--json"]).unwrap(), 0);

    // A broken cluster.toml still names its cluster: a rollback reads only the revision's file
    // (here to the deployed revision: nothing to do, nothing recorded).
    std::fs::write(
        c.file(),
        format!("[cluster]\nname = \"{}\"\n[app]\nnodes = 0\n", c.name),
    )
    .unwrap();
    assert_eq!(
        deployer(&c, &["rollback", "--to", "3", "--yes"]).unwrap(),
        0
    );
    assert_eq!(revisions(&c).len(), 4);
    c.write(file("1", ""));
}

#[test]
fn swarm_rollback_pins_the_revision_and_records_it() {
    let _serial = serial();
    let c = Cluster::on_swarm("rollback", 4006);
    let mut tag = Tag::new(&format!("deployer-app:{}", c.name));
    let name = tag.0.clone();
    // A failing update gives up after health_timeout (as in swarm.rs: tasks are healthy within it).
    let file = |x: &str, extra: &str| {
        let edit = edit(&name, x, extra);
        move |t: String| edit(t.replace("health_timeout = 60", "health_timeout = 10"))
    };
    tag.push(&c);
    c.write(file("1", ""));
    let a = apply(&c).unwrap();
    assert!(a.images.ids.app.contains("@sha256:"), "{:?}", a.images);
    assert_eq!(a.target, "swarm");
    assert!(a.migrations.as_ref().is_some_and(|m| m.len() >= 6));
    // B: X=2, and the tag rebuilt and pushed again: the registry's tag names another digest.
    tag.rebuild("b");
    tag.push(&c);
    c.write(file("2", ""));
    let b = apply(&c).unwrap();
    assert_ne!(a.images.ids.app, b.images.ids.app);
    let digest = |id: &str| id.rsplit_once("sha256:").unwrap().1[..4].to_string();
    let image_change = format!(
        "image deployer-app:{}→{}",
        digest(&a.images.ids.app),
        digest(&b.images.ids.app)
    );
    assert_eq!(
        b.changes,
        ["env ROLLBACK_X changed".to_string(), image_change]
    );

    let load = Load::start(&c, 2, "/api/health", None);
    assert_eq!(deployer(&c, &["rollback", "--yes"]).unwrap(), 0);
    load.assert_none_failed(20, "the rollback on the swarm");

    // The app service's tasks run A's spec: its env and its pinned digest.
    let service_env = || -> (Vec<String>, String) {
        let out = Command::new("docker")
            .args(["-H", &Lab::get().var("DOCKER_HOST")])
            .args(["service", "inspect", &format!("{}-app", c.name)])
            .output()
            .unwrap();
        assert!(out.status.success());
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        let spec = &v[0]["Spec"]["TaskTemplate"]["ContainerSpec"];
        let env = spec["Env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e.as_str().unwrap().to_string())
            .collect();
        (env, spec["Image"].as_str().unwrap().to_string())
    };
    let (env, image) = service_env();
    assert!(env.contains(&"ROLLBACK_X=1".to_string()), "{env:?}");
    assert_eq!(image, a.images.ids.app);
    let all = revisions(&c);
    assert_eq!(all.len(), 3);
    assert_eq!(all[2].cause, Cause::Rollback { to: 1 });
    assert_eq!(
        all[2].changes,
        [
            "env ROLLBACK_X changed".to_string(),
            format!(
                "image deployer-app:{}→{}",
                digest(&b.images.ids.app),
                digest(&a.images.ids.app)
            )
        ]
    );
    assert_eq!(
        statuses(&c),
        [Status::Superseded, Status::Superseded, Status::Deployed]
    );
    assert!(c.plan().to_string().contains("ROLLBACK_X"), "{}", c.plan());

    // An update Swarm rolls back (the app refuses JWT_TTL_SECS = 0 at start): recorded as
    // failed, the service back on revision 3's spec.
    c.write(file("2", "JWT_TTL_SECS = \"0\""));
    let e = format!("{:#}", apply(&c).unwrap_err());
    assert!(
        e.contains("(recorded as revision 4: `deployer history`)"),
        "{e}"
    );
    let failed = &revisions(&c)[3];
    assert_eq!(failed.outcome, Outcome::Failed);
    assert!(
        failed
            .description()
            .starts_with("apply failed; rolled back: Swarm rolled"),
        "{}",
        failed.description()
    );
    assert_eq!(
        statuses(&c),
        [
            Status::Superseded,
            Status::Superseded,
            Status::Deployed,
            Status::Failed
        ]
    );
    let (env, image) = service_env();
    assert!(env.contains(&"ROLLBACK_X=1".to_string()), "{env:?}");
    assert_eq!(image, a.images.ids.app);
    c.write(file("1", ""));
}

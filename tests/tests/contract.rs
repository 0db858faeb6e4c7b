//! The node contract, round-tripped: what the deployer gives a node (on the
//! engine path and in the compose file) is what the app's `Settings` reads, and
//! both paths give the same thing. No engine needed.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;
use std::time::Duration;

use deployer::model::{self, Images, Model, Unit};
use deployer::names::{Role, Slot};
use deployer::render::Templates;
use deployer::target::docker::realise;
use node_contract::{var, Secret, VARS};

/// The example cluster with every optional part on: Redis, the pooler, extra env, host ports.
fn model() -> Model {
    model_and_extra().0
}

/// The model, and the names the user's `[app.env]` adds.
fn model_and_extra() -> (Model, BTreeSet<String>) {
    let example = std::fs::read_to_string(e2e::repo().join("cluster.toml")).unwrap();
    let toml = example
        .replace("enabled = false", "enabled = true")
        .replace("pooler = \"none\"", "pooler = \"pgbouncer\"")
        .replace("[app]\n", "[app]\nhost_port_base = 5001\n");
    let loaded =
        deployer::config::parse(std::path::Path::new("cluster.toml"), toml.as_bytes()).unwrap();
    let spec = &loaded.spec;
    assert!(!spec.app().env().is_empty(), "the example sets [app.env]");
    let conf = Templates::load(None)
        .unwrap()
        .nginx(spec, &model::upstream(spec))
        .unwrap();
    (
        model::model(spec, &Images::refs(spec), conf),
        spec.app().env().keys().cloned().collect(),
    )
}

/// `Settings::from_lookup` over `env`, with each secret file written to `dir`;
/// returns the settings and every name Settings asked for.
fn settings(
    env: &[(String, String)],
    dir: &std::path::Path,
) -> (app::config::Settings, BTreeSet<String>) {
    let mut map: BTreeMap<String, String> = env.iter().cloned().collect();
    for secret in Secret::ALL {
        if let Some(path) = map.get_mut(secret.env_var()) {
            assert_eq!(path, secret.path());
            let file = dir.join(secret.file_name());
            std::fs::write(&file, "s".repeat(40)).unwrap();
            *path = file.display().to_string();
        }
    }
    let asked = Mutex::new(BTreeSet::new());
    let lookup = |name: &str| {
        asked.lock().unwrap().insert(name.to_string());
        map.get(name).cloned()
    };
    let s = app::config::Settings::from_lookup(&lookup).expect("Settings parses the contract");
    let asked = asked.into_inner().unwrap();
    (s, asked)
}

#[test]
fn every_variable_the_deployer_sets_is_read_and_every_required_one_is_set() {
    let (m, extra) = model_and_extra();
    let dir = tempfile::tempdir().unwrap();
    for unit in m.nodes().chain([&m.migrate]) {
        let (s, asked) = settings(&unit.env, dir.path());
        let set: BTreeSet<String> = unit.env.iter().map(|(k, _)| k.clone()).collect();
        // Everything the deployer sets (not the user's own [app.env]) is read.
        let unread: Vec<&String> = set
            .difference(&asked)
            .filter(|k| !extra.contains(*k))
            .collect();
        assert!(
            unread.is_empty(),
            "{}: the deployer sets {unread:?}, which Settings never reads",
            unit.name
        );
        assert!(unit
            .env
            .iter()
            .all(|(k, _)| extra.contains(k) || node_contract::lookup(k).is_some()));
        for v in VARS.iter().filter(|v| v.required) {
            assert!(
                set.contains(v.name),
                "{}: {} is required but not set",
                unit.name,
                v.name
            );
        }
        for v in VARS
            .iter()
            // Redis only when on; the shutdown delay only on a swarm (the engine, not the
            // deployer, takes a task out of DNS there).
            .filter(|v| {
                v.set_by_deployer && v.name != var::REDIS_URL && v.name != var::SHUTDOWN_DELAY_SECS
            })
        {
            assert!(
                set.contains(v.name),
                "{}: {} is the deployer's to set",
                unit.name,
                v.name
            );
        }
        for group in node_contract::REQUIRED_ONE_OF {
            assert!(
                group.iter().any(|n| set.contains(*n)),
                "{}: one of {group:?}",
                unit.name
            );
        }
        // The values arrive as the deployer meant them.
        let get = |k: &str| {
            unit.env
                .iter()
                .find(|(n, _)| n == k)
                .map(|(_, v)| v.clone())
                .unwrap()
        };
        assert_eq!(s.node_name, unit.name);
        assert_eq!(s.port.to_string(), get(var::PORT));
        assert_eq!(
            s.database.pool_size.to_string(),
            get(var::DATABASE_POOL_SIZE)
        );
        assert_eq!(s.jobs.workers.to_string(), get(var::JOB_WORKERS));
        assert_eq!(s.log_format.as_str(), get(var::LOG_FORMAT));
        assert_eq!(
            s.shutdown_timeout.as_secs().to_string(),
            get(var::SHUTDOWN_TIMEOUT_SECS)
        );
        assert_eq!(
            s.redis.as_ref().map(|r| r.url.clone()),
            Some(get(var::REDIS_URL))
        );
        assert_eq!(
            s.database.connect_options.get_application_name(),
            Some(unit.name.as_str())
        );
        assert!(
            unit.stop_grace > s.shutdown_timeout,
            "the node exits before SIGKILL"
        );
    }
}

#[test]
fn the_reserved_names_are_the_contracts() {
    for v in VARS.iter().filter(|v| v.set_by_deployer) {
        assert!(node_contract::reserved().any(|r| r == v.name), "{}", v.name);
    }
    // [app.env] may not set them: validate refuses each.
    for name in node_contract::reserved() {
        let toml = format!("[cluster]\nname = \"x\"\n[app.env]\n{name} = \"1\"\n");
        let r = deployer::config::parse(std::path::Path::new("cluster.toml"), toml.as_bytes());
        assert!(r.is_err(), "{name} was accepted in [app.env]");
    }
}

fn seconds(v: &serde_yaml::Value) -> Duration {
    let s = v.as_str().unwrap();
    match s.strip_suffix("ms") {
        Some(ms) => Duration::from_millis(ms.parse().unwrap()),
        None => Duration::from_secs(s.strip_suffix('s').unwrap().parse().unwrap()),
    }
}

fn strings(v: &serde_yaml::Value) -> Vec<String> {
    v.as_sequence()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().replace("$$", "$"))
        .collect()
}

#[test]
fn the_compose_file_and_the_engine_path_agree_on_every_value() {
    let m = model();
    let yaml = Templates::load(None)
        .unwrap()
        .compose(&m, "../.deployer/secrets")
        .unwrap();
    let doc: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
    let services = doc["services"].as_mapping().unwrap();
    let units: Vec<&Unit> = m.units.iter().chain([&m.migrate]).collect();
    assert_eq!(services.len(), units.len());
    for unit in units {
        let body = realise::container(&m, unit);
        let (_, svc) = services
            .iter()
            .find(|(_, s)| match unit.slot {
                Slot::Migrate => s["command"] == serde_yaml::to_value(["app", "migrate"]).unwrap(),
                _ => s["container_name"].as_str() == Some(unit.name.as_str()),
            })
            .unwrap_or_else(|| panic!("no compose service for {}", unit.name));
        let who = &unit.name;
        // Environment: the same names and values, in both.
        let engine_env: BTreeMap<String, String> = body
            .env
            .clone()
            .unwrap_or_default()
            .iter()
            .map(|kv| {
                let (k, v) = kv.split_once('=').unwrap();
                (k.to_string(), v.to_string())
            })
            .collect();
        let compose_env: BTreeMap<String, String> = svc["environment"]
            .as_mapping()
            .map(|m| {
                m.iter()
                    .map(|(k, v)| {
                        (
                            k.as_str().unwrap().to_string(),
                            v.as_str().unwrap().replace("$$", "$"),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(compose_env, engine_env, "{who}: environment");
        assert!(
            !engine_env
                .keys()
                .any(|k| k == var::JWT_SECRET || k == "POSTGRES_PASSWORD"),
            "{who}: a secret in the environment"
        );
        // Log rotation: the same driver and options.
        let log = body
            .host_config
            .as_ref()
            .and_then(|h| h.log_config.clone())
            .unwrap_or_else(|| panic!("{who}: no log rotation on the engine path"));
        assert_eq!(
            svc["logging"]["driver"].as_str(),
            log.typ.as_deref(),
            "{who}: log driver"
        );
        let compose_log: BTreeMap<String, String> = svc["logging"]["options"]
            .as_mapping()
            .unwrap_or_else(|| panic!("{who}: no log rotation in the compose file"))
            .iter()
            .map(|(k, v)| (k.as_str().unwrap().into(), v.as_str().unwrap().into()))
            .collect();
        let engine_log: BTreeMap<String, String> =
            log.config.clone().unwrap_or_default().into_iter().collect();
        assert_eq!(compose_log, engine_log, "{who}: log options");
        assert_eq!(engine_log["max-size"], "10m", "{who}");
        // User, command, stop signal and grace.
        assert_eq!(svc["user"].as_str(), body.user.as_deref(), "{who}: user");
        let command = if svc["command"].is_null() {
            None
        } else {
            Some(strings(&svc["command"]))
        };
        assert_eq!(command, body.cmd, "{who}: command");
        assert_eq!(
            svc["stop_signal"].as_str(),
            body.stop_signal.as_deref(),
            "{who}: stop signal"
        );
        assert_eq!(
            seconds(&svc["stop_grace_period"]).as_secs() as i64,
            body.stop_timeout.unwrap(),
            "{who}: stop grace"
        );
        // The health check: test, interval, timeout, retries, start period.
        let h = body.healthcheck.clone();
        let ch = &svc["healthcheck"];
        assert_eq!(
            h.is_some(),
            !ch.is_null(),
            "{who}: health check on one path only"
        );
        if let Some(h) = h {
            assert_eq!(Some(strings(&ch["test"])), h.test, "{who}: health test");
            let ns = |d: Duration| Some(d.as_nanos() as i64);
            assert_eq!(ns(seconds(&ch["interval"])), h.interval, "{who}: interval");
            assert_eq!(ns(seconds(&ch["timeout"])), h.timeout, "{who}: timeout");
            assert_eq!(ch["retries"].as_i64(), h.retries, "{who}: retries");
            assert_eq!(
                ns(seconds(&ch["start_period"])),
                h.start_period,
                "{who}: start period"
            );
        }
        // Secrets: files at the same paths.
        let compose_secrets: Vec<String> = svc["secrets"]
            .as_sequence()
            .map(|s| {
                s.iter()
                    .map(|n| format!("/run/secrets/{}", n.as_str().unwrap()))
                    .collect()
            })
            .unwrap_or_default();
        let engine_secrets: Vec<String> =
            unit.secrets.iter().map(|s| s.path().to_string()).collect();
        assert_eq!(compose_secrets, engine_secrets, "{who}: secret files");
        // Published ports.
        let ports: Vec<String> = body
            .host_config
            .as_ref()
            .and_then(|h| h.port_bindings.clone())
            .unwrap_or_default()
            .iter()
            .flat_map(|(p, b)| {
                b.clone().unwrap_or_default().into_iter().map(move |b| {
                    format!(
                        "{}:{}:{}",
                        b.host_ip.unwrap_or_default(),
                        b.host_port.unwrap_or_default(),
                        p.trim_end_matches("/tcp")
                    )
                })
            })
            .collect();
        let compose_ports: Vec<String> = svc["ports"]
            .as_sequence()
            .map(|s| s.iter().map(|p| p.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        assert_eq!(compose_ports, ports, "{who}: published ports");
        if unit.role() == Role::App && unit.slot != Slot::Migrate {
            assert_eq!(ports.len(), 1, "{who}: host_port_base publishes each node");
        }
    }
}

//! What changed between two revisions, in a few words for `deployer history`:
//! `nodes 3→5`, `image deployer-app:ab12→cd34`, `env FOO changed`. Every key of the
//! validated spec is compared (so a default written out is no change); the images by what
//! they were, not only by reference; `[app.env]` values are never shown, only their names.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Revision, RevisionImages};
use crate::config::ClusterSpec;

/// What changed from the revision `before` (the one that ran before; `None` for the first)
/// to `after`, each spec rebuilt from its cluster.toml as if it stood at `file` (the files it
/// names, such as `tls_cert`, are relative to it).
pub fn between(file: &std::path::Path, before: Option<&Revision>, after: &Revision) -> Vec<String> {
    let load = |r: &Revision| {
        crate::config::parse(file, r.toml.as_bytes())
            .map(|l| l.spec)
            .map_err(|_| format!("revision {}'s cluster.toml no longer loads", r.number))
    };
    let after_spec = match load(after) {
        Ok(s) => s,
        Err(e) => return vec![e],
    };
    let now = Side {
        spec: &after_spec,
        images: &after.images,
    };
    match before.map(|b| (b, load(b))) {
        None => summary(None, now),
        Some((b, Ok(spec))) => summary(
            Some(Side {
                spec: &spec,
                images: &b.images,
            }),
            now,
        ),
        Some((_, Err(e))) => vec![e],
    }
}

/// One side of the comparison: a revision's spec and images.
#[derive(Debug, Clone, Copy)]
pub struct Side<'a> {
    pub spec: &'a ClusterSpec,
    pub images: &'a RevisionImages,
}

/// What changed from `before` (the revision that ran before; `None` for the first) to `after`.
pub fn summary(before: Option<Side>, after: Side) -> Vec<String> {
    let Some(before) = before else {
        let mut created = vec![format!("created: {} nodes", after.spec.app().nodes())];
        created.push(format!(
            "image {}",
            short(&after.images.refs.app, &after.images.ids.app)
        ));
        return created;
    };
    let (old, new) = (flatten(before.spec), flatten(after.spec));
    let mut out = Vec::new();
    // A service turned on or off is one change, not each of its keys.
    let mut toggled = Vec::new();
    for (prefix, label, was, is) in [
        (
            "redis.",
            "redis",
            before.spec.redis().is_some(),
            after.spec.redis().is_some(),
        ),
        (
            "database.pooler.",
            "pooler",
            before.spec.database().pooler().is_some(),
            after.spec.database().pooler().is_some(),
        ),
    ] {
        if was != is {
            out.push(format!("{label} {}", if is { "on" } else { "off" }));
            toggled.push(prefix);
        }
    }
    for key in old
        .keys()
        .chain(new.keys().filter(|k| !old.contains_key(*k)))
    {
        let (a, b) = (old.get(key), new.get(key));
        if a == b || key.ends_with(".image") || toggled.iter().any(|p| key.starts_with(p)) {
            continue;
        }
        if let Some(name) = key.strip_prefix("app.env.") {
            out.push(match (a, b) {
                (None, _) => format!("env {name} added"),
                (_, None) => format!("env {name} removed"),
                _ => format!("env {name} changed"),
            });
            continue;
        }
        let shown = key.strip_prefix("app.").unwrap_or(key);
        let value = |v: Option<&String>| v.cloned().unwrap_or_else(|| "unset".into());
        out.push(format!("{shown} {}→{}", value(a), value(b)));
    }
    for ((label, ref_a, id_a), (_, ref_b, id_b)) in
        roles(before.images).into_iter().zip(roles(after.images))
    {
        match (ref_a.zip(id_a), ref_b.zip(id_b)) {
            (Some(a), Some(b)) if a == b => {}
            (Some((ra, ia)), Some((rb, ib))) if ra == rb => {
                out.push(format!("{label} {}→{}", short(ra, ia), short_id(ib)))
            }
            (Some((ra, ia)), Some((rb, ib))) if ra == ia && rb == ib => {
                out.push(format!("{label} {ra}→{rb}"))
            }
            (Some((ra, ia)), Some((rb, ib))) => out.push(format!(
                "{label} {ra}→{rb} ({}→{})",
                short_id(ia),
                short_id(ib)
            )),
            (None, Some((rb, ib))) => out.push(format!("{label} {}", short(rb, ib))),
            (Some(_), None) | (None, None) => {}
        }
    }
    if out.is_empty() {
        out.push("no change".into());
    }
    out
}

/// Each role's image: (label, reference, what it was).
type RoleImage<'a> = (&'static str, Option<&'a String>, Option<&'a String>);

fn roles(i: &RevisionImages) -> [RoleImage<'_>; 5] {
    [
        ("image", Some(&i.refs.app), Some(&i.ids.app)),
        (
            "postgres image",
            Some(&i.refs.postgres),
            Some(&i.ids.postgres),
        ),
        ("redis image", i.refs.redis.as_ref(), i.ids.redis.as_ref()),
        (
            "pooler image",
            i.refs.pooler.as_ref(),
            i.ids.pooler.as_ref(),
        ),
        (
            "balancer image",
            Some(&i.refs.balancer),
            Some(&i.ids.balancer),
        ),
    ]
}

/// `deployer-app:latest` and `sha256:ab12…` → `deployer-app:ab12`; a reference that is its
/// own identity (a swarm's service image) stays as it is.
fn short(reference: &str, id: &str) -> String {
    if reference == id {
        return reference.to_string();
    }
    let repository = reference
        .split('@')
        .next()
        .unwrap_or(reference)
        .rsplit_once(':')
        .filter(|(_, tag)| !tag.contains('/'))
        .map_or(reference, |(repo, _)| repo);
    format!("{repository}:{}", short_id(id))
}

/// The first four hex digits of an image ID or a digest (`…@sha256:ab12…` → `ab12`).
fn short_id(id: &str) -> String {
    let hex = id.rsplit_once("sha256:").map_or(id, |(_, h)| h);
    hex.get(..4).unwrap_or(hex).to_string()
}

/// Every leaf of the spec as `section.key` → value; durations as `Ns`.
fn flatten(spec: &ClusterSpec) -> BTreeMap<String, String> {
    fn walk(prefix: &str, v: &Value, out: &mut BTreeMap<String, String>) {
        match v {
            Value::Object(m) if is_duration(m) => {
                out.insert(prefix.to_string(), format!("{}s", m["secs"]));
            }
            Value::Object(m) if !m.is_empty() => {
                for (k, v) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, v, out);
                }
            }
            Value::Null => {}
            Value::String(s) => {
                out.insert(prefix.to_string(), s.clone());
            }
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    fn is_duration(m: &serde_json::Map<String, Value>) -> bool {
        m.len() == 2 && m.contains_key("secs") && m.contains_key("nanos")
    }
    let mut out = BTreeMap::new();
    walk(
        "",
        &serde_json::to_value(spec).unwrap_or(Value::Null),
        &mut out,
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::tests::images;

    fn spec(extra: &str) -> ClusterSpec {
        let text = format!("[cluster]\nname = \"t\"\n{extra}");
        crate::config::parse(std::path::Path::new("cluster.toml"), text.as_bytes())
            .unwrap_or_else(|e| panic!("{e}"))
            .spec
    }

    #[test]
    fn summaries() {
        let a = images("sha256:ab12ffff");
        let b = images("sha256:cd34ffff");
        let mut tagged = images("sha256:cd34ffff");
        tagged.refs.app = "deployer-app:v2".into();
        let mut pg_before = images("sha256:ab12ffff");
        pg_before.ids.postgres = "sha256:1111aaaa".into();
        let mut pg = images("sha256:ab12ffff");
        pg.ids.postgres = "sha256:9f9f0000".into();
        pg.refs.postgres = "postgres:16".into();
        let mut swarm = images("reg:5000/deployer-app:latest@sha256:ab12ffff");
        swarm.refs.app = "deployer-app:latest".into();
        let mut swarm2 = swarm.clone();
        swarm2.ids.app = "reg:5000/deployer-app:latest@sha256:cd34ffff".into();
        type Case<'a> = (
            &'a str,
            &'a str,
            &'a RevisionImages,
            &'a str,
            &'a RevisionImages,
            &'a [&'a str],
        );
        let cases: &[Case] = &[
            ("nothing", "", &a, "", &a, &["no change"]),
            (
                "nodes",
                "[app]\nnodes = 3\n",
                &a,
                "[app]\nnodes = 5\n",
                &a,
                &["nodes 3→5"],
            ),
            (
                "a default written out is no change",
                "",
                &a,
                "[app]\nnodes = 3\n",
                &a,
                &["no change"],
            ),
            (
                "env, names only",
                "[app.env]\nFOO = \"1\"\nOLD = \"x\"\n",
                &a,
                "[app.env]\nFOO = \"2\"\nNEW = \"secret-looking\"\n",
                &a,
                &["env FOO changed", "env OLD removed", "env NEW added"],
            ),
            (
                "the pooler off, with its keys",
                "[database]\npooler = \"pgbouncer\"\npooler_pool_size = 30\n",
                &a,
                "",
                &a,
                &["pooler off"],
            ),
            (
                "the app image behind the same tag",
                "",
                &a,
                "",
                &b,
                &["image deployer-app:ab12→cd34"],
            ),
            (
                "another tag",
                "",
                &a,
                "",
                &tagged,
                &["image deployer-app:latest→deployer-app:v2 (ab12→cd34)"],
            ),
            (
                "a service image",
                "",
                &pg_before,
                "",
                &pg,
                &["postgres image postgres:15-bookworm→postgres:16 (1111→9f9f)"],
            ),
            (
                "a digest on a swarm",
                "",
                &swarm,
                "",
                &swarm2,
                &["image deployer-app:ab12→cd34"],
            ),
            (
                "several keys, durations and sections",
                "[rollout]\ndrain_seconds = 2\n",
                &a,
                "[rollout]\ndrain_seconds = 5\n[balancer]\nstrategy = \"least_conn\"\n[redis]\n",
                &a,
                &[
                    "redis on",
                    "balancer.strategy round_robin→least_conn",
                    "rollout.drain_seconds 2→5",
                ],
            ),
        ];
        for (name, old, old_images, new, new_images, want) in cases {
            let (old, new) = (spec(old), spec(new));
            let got = summary(
                Some(Side {
                    spec: &old,
                    images: old_images,
                }),
                Side {
                    spec: &new,
                    images: new_images,
                },
            );
            assert_eq!(got, *want, "{name}");
        }
        let first = spec("[app]\nnodes = 2\n");
        assert_eq!(
            summary(
                None,
                Side {
                    spec: &first,
                    images: &a
                }
            ),
            ["created: 2 nodes", "image deployer-app:ab12"]
        );
    }
}

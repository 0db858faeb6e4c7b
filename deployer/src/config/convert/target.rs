//! `[cluster] target` and the `[swarm]` section: which engine the cluster runs
//! on, and what a swarm needs (its manager, the registry its hosts pull from,
//! where PostgreSQL and the balancer are placed). Keys that mean nothing on the
//! chosen target are errors, not silently ignored.

use toml::Spanned;

use super::{span, Checker};
use crate::config::diagnostic::Diagnostic;
use crate::config::raw::{RawApp, RawBalancer, RawConfig, RawSwarm};
use crate::config::spec::{EngineAddress, HostName, SwarmSpec, TargetKind, TargetSpec};

const SWARM_EXAMPLE: &str = "[swarm]\n    manager = \"tcp://10.0.0.1:2375\"   # or DOCKER_HOST\n    registry = \"registry.example.com:5000\"\n    database_host = \"db1\"\n    balancer_host = \"web1\"";

pub(super) fn convert(c: &mut Checker, raw: &RawConfig, a: &RawApp, b: &RawBalancer) -> TargetSpec {
    let target = raw
        .cluster
        .as_ref()
        .and_then(|s| s.get_ref().target.as_ref());
    let kind = c.choice(&target.cloned(), "target", TargetKind::Docker);
    let swarm = raw.swarm.as_ref();
    match kind {
        TargetKind::Docker => {
            if let Some(s) = swarm {
                c.diags.push(
                    Diagnostic::error(
                        "[swarm] applies only to a cluster with `target = \"swarm\"`",
                        span(s),
                    )
                    .with_hint(
                        "set `target = \"swarm\"` in [cluster], or remove the [swarm] section",
                    ),
                );
            }
            TargetSpec::Docker
        }
        TargetKind::Swarm => {
            let Some(s) = swarm else {
                if !raw.broken.contains("swarm") {
                    c.diags.push(
                        Diagnostic::error(
                            "`target = \"swarm\"` needs a [swarm] section",
                            target.and_then(span),
                        )
                        .with_hint(format!("add\n    {SWARM_EXAMPLE}")),
                    );
                }
                return TargetSpec::Docker;
            };
            misplaced_on_swarm(c, a, b);
            swarm_spec(c, s).map_or(TargetSpec::Docker, TargetSpec::Swarm)
        }
    }
}

/// Keys of other sections a swarm cannot honour.
fn misplaced_on_swarm(c: &mut Checker, a: &RawApp, b: &RawBalancer) {
    if let Some(v) = &a.host_port_base {
        c.diags.push(
            Diagnostic::error(
                "`host_port_base` does not apply on a swarm: app tasks move between hosts",
                span(v),
            )
            .with_hint("remove it; reach a task through the balancer, or `docker service logs`"),
        );
    }
    if let Some(v) = &b.bind {
        c.diags.push(
            Diagnostic::error(
                "`bind` does not apply on a swarm: a host-mode port is published on every address of `balancer_host`",
                span(v),
            )
            .with_hint("remove it, and choose the host with `balancer_host` in [swarm]"),
        );
    }
}

fn swarm_spec(c: &mut Checker, section: &Spanned<RawSwarm>) -> Option<SwarmSpec> {
    let s = section.get_ref();
    let errors = c.diags.len();
    let manager = s.manager.as_ref().and_then(|v| match EngineAddress::parse(v.get_ref()) {
        Ok(m) => Some(m),
        Err(why) => {
            c.diags.push(
                Diagnostic::error(format!("`manager` is not a Docker engine address: {why}"), span(v))
                    .with_hint("for example `manager = \"tcp://10.0.0.1:2375\"`; leave it out to use DOCKER_HOST"),
            );
            None
        }
    });
    let mut host = |value: &Option<Spanned<String>>, key: &str, port: bool, hint: &str| {
        let Some(v) = value else {
            c.diags.push(
                Diagnostic::error(format!("missing key `{key}` in [swarm]"), span(section))
                    .with_hint(hint.to_string()),
            );
            return None;
        };
        match HostName::parse(v.get_ref(), port) {
            Ok(h) => Some(h),
            Err(why) => {
                c.diags.push(
                    Diagnostic::error(format!("`{key}` is not a host name: {why}"), span(v))
                        .with_hint(hint.to_string()),
                );
                None
            }
        }
    };
    let registry = host(
        &s.registry,
        "registry",
        true,
        "add `registry = \"registry.example.com:5000\"`: every host pulls the app image from it",
    );
    let push_registry = s.push_registry.as_ref().and_then(|_| {
        host(
            &s.push_registry,
            "push_registry",
            true,
            "the registry's host[:port] as this machine reaches it, e.g. `push_registry = \"127.0.0.1:5000\"`",
        )
    });
    let database_host = host(
        &s.database_host,
        "database_host",
        false,
        "add `database_host = \"db1\"`: the node (its hostname) PostgreSQL and its volume live on",
    );
    let balancer_host = host(
        &s.balancer_host,
        "balancer_host",
        false,
        "add `balancer_host = \"web1\"`: the node (its hostname) whose port the balancer answers on",
    );
    if c.diags.len() > errors {
        return None;
    }
    Some(SwarmSpec {
        manager,
        registry: registry?,
        push_registry,
        database_host: database_host?,
        balancer_host: balancer_host?,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::diagnostic::line_col;
    use crate::config::{parse, Loaded, Report, TargetKind};

    fn check(src: &str) -> Result<Loaded, Report> {
        parse(Path::new("cluster.toml"), src.as_bytes()).map_err(|e| e.report().unwrap().clone())
    }

    /// Each error as `line:col message`.
    fn errors(src: &str) -> Vec<String> {
        let r = check(src).unwrap_err();
        r.errors()
            .map(|d| {
                let (l, c) = line_col(src, d.span.clone().unwrap_or(0..0).start);
                format!("{l}:{c} {}", d.message)
            })
            .collect()
    }

    const SWARM: &str = "[cluster]\nname = \"x\"\ntarget = \"swarm\"\n[swarm]\nmanager = \"tcp://10.0.0.1:2375\"\nregistry = \"reg.example:5000\"\ndatabase_host = \"db1\"\nbalancer_host = \"web1\"\n";

    #[test]
    fn the_target_is_the_single_engine_unless_told() {
        let l = check("[cluster]\nname = \"x\"\n").unwrap();
        assert_eq!(l.spec.target().kind(), TargetKind::Docker);
        let l = check(SWARM).unwrap();
        let s = l.spec.target().swarm().unwrap();
        assert_eq!(s.manager().unwrap().as_str(), "tcp://10.0.0.1:2375");
        assert_eq!(s.registry().as_str(), "reg.example:5000");
        assert_eq!(s.push_registry().as_str(), "reg.example:5000");
        assert_eq!(s.database_host().as_str(), "db1");
        assert_eq!(s.balancer_host().as_str(), "web1");
    }

    #[test]
    fn the_same_budget_is_refused_on_both_targets() {
        let over = "[app]\nnodes = 5\npool_size = 20\n";
        for base in ["[cluster]\nname = \"x\"\n", SWARM] {
            let e = errors(&format!("{base}{over}"));
            assert_eq!(e.len(), 1, "{e:?}");
            assert!(e[0].contains("over by 32"), "{e:?}");
        }
    }

    #[test]
    fn an_unknown_target_names_the_choices() {
        let r = check("[cluster]\nname = \"x\"\ntarget = \"swram\"\n").unwrap_err();
        assert_eq!(r.diagnostics[0].message, "unknown target `swram`");
        assert_eq!(
            r.diagnostics[0].hint.as_deref(),
            Some("did you mean `swarm`? (one of docker, swarm)")
        );
    }

    #[test]
    fn swarm_keys_on_the_single_engine_are_refused_where_they_are() {
        let src = "[cluster]\nname = \"x\"\n[swarm]\nregistry = \"r:5000\"\n";
        assert_eq!(
            errors(src),
            ["3:1 [swarm] applies only to a cluster with `target = \"swarm\"`"]
        );
    }

    #[test]
    fn a_swarm_without_its_section_or_keys_says_what_to_add() {
        assert_eq!(
            errors("[cluster]\nname = \"x\"\ntarget = \"swarm\"\n"),
            ["3:10 `target = \"swarm\"` needs a [swarm] section"]
        );
        let e =
            errors("[cluster]\nname = \"x\"\ntarget = \"swarm\"\n[swarm]\nregistry = \"r:5000\"\n");
        assert_eq!(
            e,
            [
                "4:1 missing key `database_host` in [swarm]",
                "4:1 missing key `balancer_host` in [swarm]"
            ]
        );
    }

    #[test]
    fn keys_a_swarm_cannot_honour_are_refused_where_they_are() {
        let src = format!("{SWARM}[app]\nhost_port_base = 5001\n[balancer]\nbind = \"0.0.0.0\"\n");
        assert_eq!(
            errors(&src),
            [
                "10:18 `host_port_base` does not apply on a swarm: app tasks move between hosts",
                "12:8 `bind` does not apply on a swarm: a host-mode port is published on every address of `balancer_host`",
            ]
        );
    }

    #[test]
    fn bad_addresses_and_host_names_are_refused() {
        let bad = [
            ("manager = \"10.0.0.1:2375\"", "`manager` is not a Docker engine address: it has no scheme"),
            ("manager = \"ssh://h\"", "`manager` is not a Docker engine address: the scheme `ssh` is not one of unix, tcp, http, https"),
            ("registry = \"reg example\"", "`registry` is not a host name: it contains ' '"),
            ("registry = \"reg:99999\"", "`registry` is not a host name: `99999` is not a port"),
            ("database_host = \"db1 == x\"", "`database_host` is not a host name: it contains ' '"),
            ("balancer_host = \"web1:80\"", "`balancer_host` is not a host name: it contains ':'"),
        ];
        for (line, want) in bad {
            let key = line.split(' ').next().unwrap();
            let src: String = SWARM
                .lines()
                .filter(|l| !l.starts_with(&format!("{key} ")))
                .chain([line])
                .map(|l| format!("{l}\n"))
                .collect();
            let e = errors(&src);
            assert_eq!(e.len(), 1, "{line}: {e:?}");
            assert!(e[0].contains(want), "{line}: {e:?}");
        }
    }
}

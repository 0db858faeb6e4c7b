//! The [balancer] section: nginx's strategy, address, passive health checks and
//! timeouts.

use std::net::IpAddr;

use super::{span, Checker};
use crate::config::diagnostic::Diagnostic;
use crate::config::raw::RawBalancer;
use crate::config::spec::{AccessLog, BalancerSpec, Strategy};

/// The section's values; an invalid one is reported and replaced by its default.
pub(super) fn convert(c: &mut Checker, b: &RawBalancer) -> BalancerSpec {
    let strategy = c.choice(&b.strategy, "strategy", Strategy::RoundRobin);
    let port = c.int(
        &b.port,
        "port",
        4000,
        1..=65535,
        "the balancer's port on the host, e.g. 4000",
    );
    let bind = bind(c, b);
    let image = c.image(&b.image, "image", "nginx:1.30");
    if let (Some(v), Some(version)) = (&b.image, nginx_version(image.as_str())) {
        if version < RESOLVE_SINCE {
            c.diags.push(
                Diagnostic::error(
                    format!(
                        "`{image}` cannot run the balancer's config: it finds the \
                         nodes with `server … resolve` and keeps clients' connections across reloads \
                         with `keepalive_min_timeout`, both from nginx 1.27.4"
                    ),
                    span(v),
                )
                .with_hint("use `image = \"nginx:1.30\"` (scripts/build-images.sh builds it where no registry answers)"),
            );
        }
    }
    let max_fails = c.int(
        &b.max_fails,
        "max_fails",
        3,
        0..=100,
        "failed attempts before nginx takes a node out for fail_timeout; 0 disables",
    );
    let fail_timeout = c.seconds(
        &b.fail_timeout,
        "fail_timeout",
        10,
        1..=3600,
        "seconds a failed node stays out of rotation",
    );
    let keepalive = c.int(
        &b.keepalive,
        "keepalive",
        32,
        0..=10_000,
        "idle upstream connections each nginx worker keeps; 0 disables",
    );
    let connect_timeout = c.seconds(
        &b.connect_timeout,
        "connect_timeout",
        2,
        1..=60,
        "seconds; keep it short so failover is fast",
    );
    let read_timeout = c.seconds(&b.read_timeout, "read_timeout", 30, 1..=3600, "seconds");
    let worker_connections = c.int(
        &b.worker_connections,
        "worker_connections",
        1024,
        16..=65535,
        "nginx's default is 512; 1024 is typical",
    );
    BalancerSpec {
        strategy,
        port: port as u16,
        bind,
        image,
        max_fails: max_fails as u32,
        fail_timeout,
        keepalive: keepalive as u32,
        connect_timeout,
        read_timeout,
        worker_connections: worker_connections as u32,
        access_log: c.choice(&b.access_log, "access_log", AccessLog::Buffered),
    }
}
/// The first nginx with upstream `server … resolve` and `keepalive_min_timeout`.
const RESOLVE_SINCE: (u32, u32, u32) = (1, 27, 4);

/// The version an official-style nginx image ref names (`nginx:1.22`, `library/nginx:1.26.3-bookworm`);
/// None for any other image or tag (`nginx:latest`, `mainline`, a digest): those are not judged.
fn nginx_version(image: &str) -> Option<(u32, u32, u32)> {
    let (repo, tag) = image.rsplit_once(':')?;
    if repo.rsplit('/').next() != Some("nginx") || repo.contains('@') {
        return None;
    }
    let numbers = tag.split('-').next()?;
    let mut parts = numbers.split('.').map(|p| p.parse::<u32>().ok());
    let major = parts.next()??;
    let minor = parts.next().unwrap_or(Some(0))?;
    let patch = parts.next().unwrap_or(Some(u32::MAX))?;
    Some((major, minor, patch))
}

fn bind(c: &mut Checker, b: &RawBalancer) -> IpAddr {
    let Some(v) = &b.bind else {
        return IpAddr::from([127, 0, 0, 1]);
    };
    match v.get_ref().parse() {
        Ok(ip) => ip,
        Err(_) => {
            c.diags.push(
                Diagnostic::error(format!("`bind` = {:?} is not an IP address", v.get_ref()), span(v))
                    .with_hint("use \"127.0.0.1\" (the default: only this machine) or \"0.0.0.0\" (every interface)"),
            );
            IpAddr::from([127, 0, 0, 1])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nginx_versions_are_read_from_official_style_refs() {
        for (image, want) in [
            ("nginx:1.22", Some((1, 22, u32::MAX))),
            ("library/nginx:1.26.3-bookworm", Some((1, 26, 3))),
            ("nginx:1.30", Some((1, 30, u32::MAX))),
            ("nginx:1", Some((1, 0, u32::MAX))),
            ("nginx:latest", None),
            ("nginx", None),
            ("registry.example.com:5000/nginx", None),
            ("openresty:1.21", None),
        ] {
            assert_eq!(nginx_version(image), want, "{image}");
        }
        assert!(nginx_version("nginx:1.22").unwrap() < RESOLVE_SINCE);
        assert!(nginx_version("nginx:1.27").unwrap() >= RESOLVE_SINCE);
        assert!(nginx_version("nginx:1.27.3").unwrap() < RESOLVE_SINCE);
        assert!(nginx_version("nginx:1.30").unwrap() >= RESOLVE_SINCE);
    }

    #[test]
    fn an_nginx_too_old_for_the_config_is_refused_with_a_hint() {
        let file = "[cluster]\nname = \"t\"\n[balancer]\nimage = \"nginx:1.22\"\n";
        let Err(err) = crate::config::parse(std::path::Path::new("cluster.toml"), file.as_bytes())
        else {
            panic!("nginx:1.22 is accepted");
        };
        let text = format!("{err:?}");
        assert!(text.contains("`nginx:1.22` cannot run"), "{text}");
        assert!(text.contains("nginx:1.30"), "{text}");
    }
}

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
    let image = c.image(&b.image, "image", "nginx:1.22");
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

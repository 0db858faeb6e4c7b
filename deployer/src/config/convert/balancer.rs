//! The [balancer] section: nginx's strategy, address, passive health checks and
//! timeouts.

use std::net::IpAddr;
use std::path::PathBuf;

use toml::Spanned;

use super::{span, Checker};
use crate::config::diagnostic::Diagnostic;
use crate::config::raw::RawBalancer;
use crate::config::spec::{AccessLog, BalancerSpec, Strategy, TlsSpec};
use crate::tls::{self, TlsError};

/// The HTTPS port when `https_port` is not set.
pub const DEFAULT_HTTPS_PORT: u16 = 4443;

/// A certificate that expires within this many days is a warning.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// One year: the HSTS max-age when `hsts_max_age` is not set.
const DEFAULT_HSTS_MAX_AGE: i64 = 31_536_000;

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
        access_log: c.choice(&b.access_log, "access_log", AccessLog::Sampled),
        tls: tls_spec(c, b, port as u16),
    }
}

/// `tls_cert` and `tls_key` read, parsed and checked against each other and the clock; the
/// HTTPS keys that mean nothing without them are errors.
fn tls_spec(c: &mut Checker, b: &RawBalancer, http_port: u16) -> Option<TlsSpec> {
    let (cert, key) = match (&b.tls_cert, &b.tls_key) {
        (Some(cert), Some(key)) => (cert, key),
        (None, None) => {
            for (v, k) in [
                (&b.https_port, "https_port"),
                (&b.hsts_max_age, "hsts_max_age"),
            ] {
                if let Some(v) = v {
                    c.diags.push(
                        Diagnostic::error(format!("`{k}` is set but there is no certificate"), span(v))
                            .with_hint("set `tls_cert` and `tls_key` (PEM files, relative to cluster.toml) to serve HTTPS, or remove it"),
                    );
                }
            }
            return None;
        }
        (Some(v), None) | (None, Some(v)) => {
            let (have, missing) = if b.tls_cert.is_some() {
                ("tls_cert", "tls_key")
            } else {
                ("tls_key", "tls_cert")
            };
            c.diags.push(
                Diagnostic::error(format!("`{have}` needs `{missing}`: HTTPS takes the certificate chain and its private key"), span(v))
                    .with_hint(format!("add `{missing} = \"{}\"` (a PEM file, relative to cluster.toml)", if missing == "tls_key" { "tls/key.pem" } else { "tls/cert.pem" })),
            );
            return None;
        }
    };
    let https_port = c.int(
        &b.https_port,
        "https_port",
        DEFAULT_HTTPS_PORT.into(),
        1..=65535,
        "the balancer's HTTPS port on the host, e.g. 4443 (443 for a public site)",
    ) as u16;
    if https_port == http_port {
        c.diags.push(
            Diagnostic::error(
                format!("`https_port` and `port` are both {https_port}: HTTPS and the HTTP port that redirects to it need a port each"),
                b.https_port.as_ref().and_then(span).or(b.port.as_ref().and_then(span)).or(span(cert)),
            )
            .with_hint(format!("for example `port = 80` and `https_port = 443`, or `https_port = {}`", DEFAULT_HTTPS_PORT)),
        );
    }
    let hsts_max_age = c.int(
        &b.hsts_max_age,
        "hsts_max_age",
        DEFAULT_HSTS_MAX_AGE,
        0..=63_072_000,
        "seconds browsers keep to HTTPS for this host (31536000 is a year; 0 tells them to forget)",
    ) as u32;
    // Both files are read, so both problems show at once.
    let (cert_read, key_read) = (read(c, cert, "tls_cert"), read(c, key, "tls_key"));
    let ((cert_file, cert_bytes), (key_file, key_bytes)) = (cert_read?, key_read?);
    let certificate = match tls::read_chain(&cert_bytes) {
        Ok(cert) => cert,
        Err(e) => {
            c.diags.push(
                Diagnostic::error(format!("`tls_cert` {}: {e}", cert_file.display()), span(cert))
                    .with_hint("tls_cert is the certificate chain in PEM: the server's certificate first, then its intermediates (certbot's fullchain.pem)"),
            );
            return None;
        }
    };
    let private_key = match tls::read_key(&key_bytes) {
        Ok(key) => key,
        Err(e) => {
            c.diags.push(
                Diagnostic::error(format!("`tls_key` {}: {e}", key_file.display()), span(key))
                    .with_hint("tls_key is the certificate's private key in PEM, without a passphrase (certbot's privkey.pem)"),
            );
            return None;
        }
    };
    if let Err(e) = tls::check_pair(&certificate, &private_key) {
        let hint = match e {
            TlsError::Mismatch => format!(
                "use the key the certificate was issued for; `openssl x509 -noout -pubkey -in {}` and `openssl pkey -pubout -in {}` must print the same key",
                cert_file.display(),
                key_file.display()
            ),
            _ => "use an RSA, ECDSA (P-256, P-384) or Ed25519 key".to_string(),
        };
        c.diags.push(
            Diagnostic::error(
                format!(
                    "`tls_key` {} does not fit the certificate in `tls_cert` {}: {e}",
                    key_file.display(),
                    cert_file.display()
                ),
                span(key),
            )
            .with_hint(hint),
        );
        return None;
    }
    check_dates(c, cert, &cert_file, &certificate, now());
    key_permissions(c, key, &key_file);
    Some(TlsSpec {
        cert_file,
        key_file,
        https_port,
        hsts_max_age,
        certificate,
        key: private_key,
    })
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// An expired certificate is an error; one that expires within [`EXPIRY_WARNING_DAYS`], or is
/// not valid yet, a warning.
fn check_dates(
    c: &mut Checker,
    at: &Spanned<String>,
    file: &std::path::Path,
    cert: &tls::Certificate,
    now: i64,
) {
    let days = (cert.not_after - now).div_euclid(86_400);
    let renew = format!(
        "renew it (with your CA, e.g. `certbot renew`), write the new chain to {} and run `deployer apply`: \
         the balancer reloads it without a restart",
        file.display()
    );
    if cert.not_after <= now {
        c.diags.push(
            Diagnostic::error(
                format!(
                    "the certificate in `tls_cert` expired on {} ({} day{} ago): clients refuse it",
                    cert.expiry_date(),
                    -days,
                    if -days == 1 { "" } else { "s" }
                ),
                span(at),
            )
            .with_hint(renew),
        );
    } else if days < EXPIRY_WARNING_DAYS {
        c.diags.push(
            Diagnostic::warning(
                format!(
                    "the certificate in `tls_cert` expires on {}, in {days} day{}",
                    cert.expiry_date(),
                    if days == 1 { "" } else { "s" }
                ),
                span(at),
            )
            .with_hint(renew),
        );
    }
    if cert.not_before > now {
        c.diags.push(
            Diagnostic::warning(
                format!(
                    "the certificate in `tls_cert` is valid only from {}: until then clients refuse it",
                    tls::date(cert.not_before)
                ),
                span(at),
            )
            .with_hint("check this machine's clock, or use a certificate valid now"),
        );
    }
}

/// A private key others can read is a warning: only its owner should.
fn key_permissions(c: &mut Checker, at: &Spanned<String>, file: &std::path::Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let Ok(meta) = std::fs::metadata(file) else {
            return;
        };
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            c.diags.push(
                Diagnostic::warning(
                    format!("`tls_key` {} can be read by others (mode {mode:04o})", file.display()),
                    span(at),
                )
                .with_hint(format!("`chmod 600 {}`: only its owner needs it (the deployer copies it into the balancer, mode 0400)", file.display())),
            );
        }
    }
    #[cfg(not(unix))]
    let _ = (c, at, file);
}

/// The file a key names, relative to cluster.toml's directory, and its bytes.
fn read(c: &mut Checker, v: &Spanned<String>, key: &str) -> Option<(PathBuf, Vec<u8>)> {
    let path = c.base.join(v.get_ref());
    match std::fs::read(&path) {
        Ok(bytes) => Some((path, bytes)),
        Err(e) => {
            let shown = if path.is_absolute() {
                path.display().to_string()
            } else {
                format!(
                    "{} (in {})",
                    path.display(),
                    std::env::current_dir()
                        .map(|d| d.display().to_string())
                        .unwrap_or_default()
                )
            };
            c.diags.push(
                Diagnostic::error(format!("cannot read `{key}` {shown}: {e}"), span(v)).with_hint(
                    "the path is relative to the directory of cluster.toml; the file is PEM",
                ),
            );
            None
        }
    }
}

/// A warning when none of the certificate's names is the address the balancer is published
/// on (skipped when it binds every address: users then reach it by a name of their own).
pub(super) fn check_names(c: &mut Checker, b: &RawBalancer, tls: &TlsSpec, host: Option<String>) {
    let (Some(host), Some(at)) = (host, &b.tls_cert) else {
        return;
    };
    let cert = tls.certificate();
    let loopback = host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if cert.covers(&host) || (loopback && cert.covers("localhost")) {
        return;
    }
    c.diags.push(
        Diagnostic::warning(
            format!(
                "the certificate covers {}, not {host}, the address the balancer is published on",
                if cert.names.is_empty() { "no name".to_string() } else { cert.names.join(", ") }
            ),
            span(at),
        )
        .with_hint(format!(
            "clients reaching https://{host}:{}/ will refuse it; fine when users reach the balancer by one of those names (DNS, a proxy)",
            tls.https_port()
        )),
    );
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

    use crate::config::{Loaded, Report};
    use crate::tls::testing::{now, self_signed};

    const DAY: i64 = 86_400;

    /// A directory with cluster.toml (`[balancer]` + `balancer`) and the given files.
    fn with_files(
        balancer: &str,
        files: &[(&str, &str)],
    ) -> (tempfile::TempDir, Result<Loaded, Report>) {
        let dir = tempfile::tempdir().unwrap();
        for (name, contents) in files {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, contents).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
        }
        let file = dir.path().join("cluster.toml");
        let src = format!("[cluster]\nname = \"t\"\n[balancer]\n{balancer}");
        std::fs::write(&file, &src).unwrap();
        let r = crate::config::load(&file).map_err(|e| e.report().unwrap().clone());
        (dir, r)
    }

    const KEYS: &str = "tls_cert = \"tls/cert.pem\"\ntls_key = \"tls/key.pem\"\n";

    fn location(r: &Report, d: usize) -> String {
        let text = r.to_string();
        let block = text.split("\n\n").nth(d).unwrap_or_default().to_string();
        block
            .lines()
            .find_map(|l| l.trim().strip_prefix("--> "))
            .map(|l| {
                l.rsplit_once("cluster.toml:")
                    .map_or(l, |(_, lc)| lc)
                    .to_string()
            })
            .unwrap_or_default()
    }

    #[test]
    fn a_certificate_and_its_key_give_https_on_its_own_port() {
        let (cert, key) = self_signed(&["localhost", "127.0.0.1"], now() - DAY, now() + 90 * DAY);
        let (_dir, r) = with_files(KEYS, &[("tls/cert.pem", &cert), ("tls/key.pem", &key)]);
        let l = r.unwrap();
        assert!(l.warnings.is_empty(), "{:?}", l.warnings);
        let tls = l.spec.balancer().tls().unwrap();
        assert_eq!(tls.https_port(), DEFAULT_HTTPS_PORT);
        assert_eq!(tls.hsts_max_age(), 31_536_000);
        assert_eq!(tls.certificate().names, ["localhost", "127.0.0.1"]);
        assert_eq!(l.spec.balancer_url(), "https://127.0.0.1:4443/");
        // The key is in the spec, but neither its JSON nor its Debug shows it.
        let key_body = key.lines().nth(1).unwrap();
        assert!(!serde_json::to_string(&l.spec).unwrap().contains(key_body));
        assert!(!format!("{:?}", l.spec).contains(key_body));
    }

    #[test]
    fn a_missing_file_is_an_error_at_its_key() {
        let (cert, _) = self_signed(&["localhost"], now(), now() + 90 * DAY);
        let (_dir, r) = with_files(KEYS, &[("tls/cert.pem", &cert)]);
        let r = r.unwrap_err();
        assert_eq!(r.diagnostics.len(), 1, "{r}");
        assert!(
            r.diagnostics[0]
                .message
                .starts_with("cannot read `tls_key` "),
            "{r}"
        );
        assert!(r.diagnostics[0].message.contains("tls/key.pem"), "{r}");
        assert_eq!(location(&r, 0), "5:11");
        // Neither file: both at once.
        let (_dir, r) = with_files(KEYS, &[]);
        let r = r.unwrap_err();
        assert_eq!(r.diagnostics.len(), 2, "{r}");
        assert_eq!(
            (location(&r, 0), location(&r, 1)),
            ("4:12".into(), "5:11".into())
        );
    }

    #[test]
    fn a_key_of_another_certificate_is_an_error_at_tls_key() {
        let (cert, _) = self_signed(&["localhost"], now(), now() + 90 * DAY);
        let (_, other) = self_signed(&["localhost"], now(), now() + 90 * DAY);
        let (_dir, r) = with_files(KEYS, &[("tls/cert.pem", &cert), ("tls/key.pem", &other)]);
        let r = r.unwrap_err();
        assert_eq!(r.diagnostics.len(), 1, "{r}");
        assert!(
            r.diagnostics[0].message.ends_with(
                "the private key does not belong to the certificate: their public keys differ"
            ),
            "{r}"
        );
        assert!(
            r.diagnostics[0]
                .hint
                .as_deref()
                .unwrap()
                .contains("openssl pkey -pubout"),
            "{r}"
        );
        assert_eq!(location(&r, 0), "5:11");
    }

    #[test]
    fn an_expired_certificate_is_an_error_saying_what_to_do() {
        let (cert, key) = self_signed(&["localhost"], now() - 100 * DAY, now() - 3 * DAY);
        let (_dir, r) = with_files(KEYS, &[("tls/cert.pem", &cert), ("tls/key.pem", &key)]);
        let r = r.unwrap_err();
        assert_eq!(r.diagnostics.len(), 1, "{r}");
        let d = &r.diagnostics[0];
        assert!(
            d.message
                .starts_with("the certificate in `tls_cert` expired on "),
            "{r}"
        );
        assert!(
            d.message.ends_with("(3 days ago): clients refuse it"),
            "{r}"
        );
        assert!(d.hint.as_deref().unwrap().starts_with("renew it"), "{r}");
        assert!(d.hint.as_deref().unwrap().contains("deployer apply"), "{r}");
        assert_eq!(location(&r, 0), "4:12");
    }

    #[test]
    fn a_certificate_expiring_within_30_days_warns() {
        let (cert, key) = self_signed(&["localhost"], now() - DAY, now() + 10 * DAY + 60);
        let (_dir, r) = with_files(KEYS, &[("tls/cert.pem", &cert), ("tls/key.pem", &key)]);
        let l = r.unwrap();
        assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
        assert!(
            l.warnings[0].message.ends_with(", in 10 days"),
            "{:?}",
            l.warnings
        );
    }

    #[test]
    fn names_that_miss_the_published_address_warn() {
        let (cert, key) = self_signed(&["shop.example.com"], now() - DAY, now() + 90 * DAY);
        let (_dir, r) = with_files(KEYS, &[("tls/cert.pem", &cert), ("tls/key.pem", &key)]);
        let l = r.unwrap();
        assert_eq!(l.warnings.len(), 1, "{:?}", l.warnings);
        assert_eq!(
            l.warnings[0].message,
            "the certificate covers shop.example.com, not 127.0.0.1, the address the balancer is published on"
        );
        // Bound on every address, users reach it by a name of their own: nothing to judge.
        let (_dir, r) = with_files(
            &format!("{KEYS}bind = \"0.0.0.0\"\n"),
            &[("tls/cert.pem", &cert), ("tls/key.pem", &key)],
        );
        assert!(r.unwrap().warnings.is_empty());
    }

    #[test]
    fn https_keys_need_each_other_and_their_own_port() {
        let (_dir, r) = with_files("tls_cert = \"c.pem\"\n", &[]);
        let r = r.unwrap_err();
        assert_eq!(
            r.diagnostics[0].message,
            "`tls_cert` needs `tls_key`: HTTPS takes the certificate chain and its private key"
        );
        let (_dir, r) = with_files("https_port = 4443\n", &[]);
        assert_eq!(
            r.unwrap_err().diagnostics[0].message,
            "`https_port` is set but there is no certificate"
        );
        let (cert, key) = self_signed(&["localhost"], now() - DAY, now() + 90 * DAY);
        let (_dir, r) = with_files(
            &format!("{KEYS}port = 4443\n"),
            &[("tls/cert.pem", &cert), ("tls/key.pem", &key)],
        );
        assert!(r.unwrap_err().diagnostics[0]
            .message
            .starts_with("`https_port` and `port` are both 4443"));
    }

    #[test]
    fn a_file_that_is_not_pem_is_an_error_with_a_hint() {
        let (_dir, r) = with_files(
            KEYS,
            &[("tls/cert.pem", "not a certificate"), ("tls/key.pem", "x")],
        );
        let r = r.unwrap_err();
        assert!(
            r.diagnostics[0]
                .message
                .ends_with("no PEM certificate in it (`-----BEGIN CERTIFICATE-----`)"),
            "{r}"
        );
        assert!(r.diagnostics[0]
            .hint
            .as_deref()
            .unwrap()
            .contains("fullchain.pem"));
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

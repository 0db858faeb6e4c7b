//! The [database] section: PostgreSQL's connection limits, image and names.

use super::{span, Checker};
use crate::config::diagnostic::Diagnostic;
use crate::config::raw::RawDatabase;
use crate::config::spec::{DatabaseSpec, ImageRef, PoolerKind, PoolerSpec};

use crate::config::spec::POOLER_IMAGE;

/// The section's values; an invalid one is reported and replaced by its default.
pub(super) fn convert(c: &mut Checker, d: &RawDatabase) -> DatabaseSpec {
    let max_connections = c.int(
        &d.max_connections,
        "max_connections",
        100,
        2..=10_000,
        "PostgreSQL's default is 100",
    );
    let superuser_reserved = c.int(
        &d.superuser_reserved_connections,
        "superuser_reserved_connections",
        3,
        0..=100,
        "PostgreSQL's default is 3",
    );
    if superuser_reserved >= max_connections {
        c.diags.push(
            Diagnostic::error(
                format!("superuser_reserved_connections ({superuser_reserved}) must be less than max_connections ({max_connections})"),
                d.superuser_reserved_connections.as_ref().and_then(span),
            )
            .with_hint("PostgreSQL refuses to start otherwise; the default is 3"),
        );
    }
    let reserve = c.int(&d.reserve_connections, "reserve_connections", 3, 1..=1000, "keep at least 1 for migrations; 3 leaves room for migrations, `deployer status` and a psql session");
    let image = c.image(&d.image, "image", "postgres:15-bookworm");
    let name = c.label(&d.name, "name", "app");
    let user = c.label(&d.user, "user", "app");
    let pooler = pooler(c, d);
    DatabaseSpec {
        max_connections: max_connections as u32,
        superuser_reserved_connections: superuser_reserved as u32,
        reserve_connections: reserve as u32,
        image,
        name,
        user,
        pooler,
    }
}

/// PgBouncer with every key at its default.
pub(super) fn default_pooler() -> PoolerSpec {
    PoolerSpec {
        pool_size: DEFAULT_POOL_SIZE,
        max_client_conn: DEFAULT_MAX_CLIENT_CONN,
        image: ImageRef::known(POOLER_IMAGE),
    }
}

const DEFAULT_POOL_SIZE: u32 = 20;
const DEFAULT_MAX_CLIENT_CONN: u32 = 1000;

/// `pooler` and its keys; the keys without `pooler = "pgbouncer"` are an error
/// (they would silently do nothing).
fn pooler(c: &mut Checker, d: &RawDatabase) -> Option<PoolerSpec> {
    let kind = c.choice(&d.pooler, "pooler", PoolerKind::None);
    let pool_size = c.int(
        &d.pooler_pool_size,
        "pooler_pool_size",
        DEFAULT_POOL_SIZE.into(),
        1..=10_000,
        "PgBouncer's server connections to PostgreSQL; its default is 20",
    );
    let max_client_conn = c.int(
        &d.pooler_max_client_conn,
        "pooler_max_client_conn",
        DEFAULT_MAX_CLIENT_CONN.into(),
        1..=100_000,
        "client connections PgBouncer accepts; the nodes' pools at peak must fit",
    );
    let image = c.image(&d.pooler_image, "pooler_image", POOLER_IMAGE);
    if kind == PoolerKind::None {
        let stray = [
            (
                "pooler_pool_size",
                d.pooler_pool_size.as_ref().map(|s| s.span()),
            ),
            (
                "pooler_max_client_conn",
                d.pooler_max_client_conn.as_ref().map(|s| s.span()),
            ),
            ("pooler_image", d.pooler_image.as_ref().map(|s| s.span())),
        ];
        for (key, at) in stray {
            if let Some(at) = at {
                c.diags.push(
                    Diagnostic::error(format!("`{key}` is set but there is no pooler"), Some(at))
                        .with_hint("add `pooler = \"pgbouncer\"` to [database], or remove the key"),
                );
            }
        }
        return None;
    }
    Some(PoolerSpec {
        pool_size: pool_size as u32,
        max_client_conn: max_client_conn as u32,
        image,
    })
}

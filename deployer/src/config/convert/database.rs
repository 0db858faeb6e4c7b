//! The [database] section: PostgreSQL's connection limits, image and names.

use super::{span, Checker};
use crate::config::diagnostic::Diagnostic;
use crate::config::raw::RawDatabase;
use crate::config::spec::DatabaseSpec;

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
    DatabaseSpec {
        max_connections: max_connections as u32,
        superuser_reserved_connections: superuser_reserved as u32,
        reserve_connections: reserve as u32,
        image,
        name,
        user,
    }
}

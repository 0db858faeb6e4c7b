//! When a rollback fits the database's schema.
//!
//! The app migrates with sqlx: `app migrate` applies the migrations embedded in its image and
//! records each in `_sqlx_migrations` (version, description, checksum). A rollback rolls the
//! nodes, so it runs the revision's own `app migrate` first, and then the revision's code
//! against the database. Both need the database's migrations to be ones the revision knows:
//! sqlx refuses a database holding a migration its binary lacks ("migration … was previously
//! applied but is missing"), and code written before a migration does not know the schema
//! after it. So a rollback is allowed when the migrations the database has are a prefix of
//! the revision's (in practice: the same list, no migration since), each with the same
//! checksum; a revision that knows more would apply them first, as any apply does. It is
//! refused when the schema moved forward: the database has a migration the revision lacks.

use serde::{Deserialize, Serialize};

/// One applied migration, as `_sqlx_migrations` records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Migration {
    pub version: i64,
    pub description: String,
    /// SHA-384 of the migration's SQL, hex.
    pub checksum: String,
}

impl std::fmt::Display for Migration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.version, self.description)
    }
}

/// The migrations the database has, in order: read inside the cluster (psql).
pub const SQL: &str = "SELECT version, description, encode(checksum, 'hex') \
     FROM _sqlx_migrations WHERE success ORDER BY version";

/// Parses the rows of [`SQL`].
pub fn parse(rows: &[Vec<String>]) -> Result<Vec<Migration>, String> {
    rows.iter()
        .map(|row| match row.as_slice() {
            [version, description, checksum] => Ok(Migration {
                version: version.trim().parse().map_err(|_| {
                    format!("a migration version that is not a number: {version:?}")
                })?,
                description: description.trim().to_string(),
                checksum: checksum.trim().to_string(),
            }),
            _ => Err(format!(
                "a row of _sqlx_migrations with {} fields, not 3",
                row.len()
            )),
        })
        .collect()
}

/// A rollback the schema allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fits {
    /// The database has exactly the revision's migrations.
    Same,
    /// The revision knows these too; its `app migrate` applies them first.
    Applies(Vec<Migration>),
}

/// Why the schema refuses a rollback.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "the schema moved forward since revision {revision}: the database has {} it does not know ({}); \
         its image would refuse to migrate, and its code was not written for that schema. Nothing was changed.\n\
         hint: roll back to a revision made after {}, or deploy a fix forward with `deployer apply`",
        if missing.len() == 1 { "a migration" } else { "migrations" },
        missing.iter().map(ToString::to_string).collect::<Vec<_>>().join(", "),
        missing.first().map(ToString::to_string).unwrap_or_default()
    )]
    SchemaAhead {
        revision: u32,
        missing: Vec<Migration>,
    },
    #[error(
        "revision {revision} and the database disagree on migration {version}: the database has {database}, the revision {}; \
         its image was built from another history of migrations. Nothing was changed.",
        theirs.as_deref().unwrap_or("has it at another place")
    )]
    Diverged {
        revision: u32,
        version: i64,
        database: String,
        theirs: Option<String>,
    },
    #[error("revision {revision} recorded no migrations (the database could not be read after it), so whether its image fits the schema is unknown. Nothing was changed.\nhint: roll back to another revision (`deployer history --json` shows each one's migrations)")]
    Unknown { revision: u32 },
}

fn describe(m: &Migration) -> String {
    format!(
        "{m} (checksum {})",
        m.checksum.get(..12).unwrap_or(&m.checksum)
    )
}

/// Whether rolling back to `revision`, whose image knows `theirs`, fits a database that has
/// `database`: allowed when `database` is a prefix of `theirs` (versions, descriptions and
/// checksums alike).
pub fn judge(
    revision: u32,
    theirs: Option<&[Migration]>,
    database: &[Migration],
) -> Result<Fits, Refusal> {
    let theirs = theirs.ok_or(Refusal::Unknown { revision })?;
    for (i, db) in database.iter().enumerate() {
        match theirs.get(i) {
            Some(t) if t == db => continue,
            Some(t) if t.version == db.version => {
                return Err(Refusal::Diverged {
                    revision,
                    version: db.version,
                    database: describe(db),
                    theirs: Some(describe(t)),
                })
            }
            // The database's migration i is not the revision's i-th: either the revision
            // lacks it (the schema moved on), or has another one at that place.
            _ if theirs.iter().all(|t| t.version != db.version) => {
                return Err(Refusal::SchemaAhead {
                    revision,
                    missing: database[i..]
                        .iter()
                        .filter(|d| theirs.iter().all(|t| t.version != d.version))
                        .cloned()
                        .collect(),
                })
            }
            t => {
                return Err(Refusal::Diverged {
                    revision,
                    version: db.version,
                    database: describe(db),
                    theirs: t.map(describe),
                })
            }
        }
    }
    let more = theirs[database.len()..].to_vec();
    Ok(if more.is_empty() {
        Fits::Same
    } else {
        Fits::Applies(more)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(version: i64, checksum: &str) -> Migration {
        Migration {
            version,
            description: format!("m{version}"),
            checksum: checksum.into(),
        }
    }

    #[test]
    fn the_database_must_be_a_prefix_of_the_revision() {
        let (a, b, c) = (m(1, "aa"), m(2, "bb"), m(3, "cc"));
        type Case = (
            &'static str,
            Option<Vec<Migration>>,
            Vec<Migration>,
            Result<Fits, &'static str>,
        );
        let cases: Vec<Case> = vec![
            ("the same", Some(vec![a.clone(), b.clone()]), vec![a.clone(), b.clone()], Ok(Fits::Same)),
            ("both empty", Some(vec![]), vec![], Ok(Fits::Same)),
            (
                "the revision knows more: applied first",
                Some(vec![a.clone(), b.clone(), c.clone()]),
                vec![a.clone(), b.clone()],
                Ok(Fits::Applies(vec![c.clone()])),
            ),
            (
                "the schema moved forward by one",
                Some(vec![a.clone(), b.clone()]),
                vec![a.clone(), b.clone(), c.clone()],
                Err("the schema moved forward since revision 4: the database has a migration it does not know (3 m3)"),
            ),
            (
                "forward by two",
                Some(vec![a.clone()]),
                vec![a.clone(), b.clone(), c.clone()],
                Err("has migrations it does not know (2 m2, 3 m3)"),
            ),
            (
                "one missing in the middle",
                Some(vec![a.clone(), c.clone()]),
                vec![a.clone(), b.clone(), c.clone()],
                Err("has a migration it does not know (2 m2)"),
            ),
            (
                "an edited migration",
                Some(vec![a.clone(), m(2, "b2b2")]),
                vec![a.clone(), b.clone()],
                Err("disagree on migration 2: the database has 2 m2 (checksum bb), the revision 2 m2 (checksum b2b2)"),
            ),
            (
                "another history at the same place",
                Some(vec![a.clone(), c.clone(), b.clone()]),
                vec![a.clone(), b.clone()],
                Err("disagree on migration 2: the database has 2 m2 (checksum bb), the revision 3 m3 (checksum cc)"),
            ),
            ("unknown", None, vec![a.clone()], Err("recorded no migrations")),
        ];
        for (name, theirs, database, want) in cases {
            let got = judge(4, theirs.as_deref(), &database).map_err(|e| e.to_string());
            match (&want, &got) {
                (Ok(w), Ok(g)) => assert_eq!(w, g, "{name}"),
                (Err(text), Err(e)) => assert!(e.contains(text), "{name}: {e}"),
                _ => panic!("{name}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn rows_parse() {
        let rows = vec![vec![
            "20250101000001".into(),
            "create users".into(),
            "ab12".into(),
        ]];
        assert_eq!(
            parse(&rows).unwrap(),
            [Migration {
                version: 20250101000001,
                description: "create users".into(),
                checksum: "ab12".into()
            }]
        );
        assert!(parse(&[vec!["x".into(), "d".into(), "c".into()]]).is_err());
        assert!(parse(&[vec!["1".into()]]).is_err());
    }
}

//! `deployer backup` and `deployer restore`: the cluster's database to a file and
//! back, on either target.
//!
//! **The file.** A backup is `pg_dump --format=custom` of the cluster's database (one
//! consistent snapshot; the nodes keep serving), taken inside the cluster
//! ([`crate::target::database`]: the database stays unpublished) and streamed to a
//! temporary file next to the destination, renamed into place once complete: a
//! backup file is whole or absent. Next to it, `FILE.sha256` holds its SHA-256 in
//! `sha256sum` format (`<hex>  <name>`), so `sha256sum -c FILE.sha256` checks it too.
//! Both are mode 0600 (the dump holds the users' password hashes).
//!
//! **Restore** refuses, before changing anything: a missing file, a file that is not a
//! pg_dump custom archive (`PGDMP` magic), a file without its `.sha256` or that does
//! not match it, and a database holding rows ([`occupied`]) unless told to replace
//! them. Then it stops the app nodes (through the applier: nothing writes meanwhile),
//! closes every other session of the database, and replaces its schemas with the
//! archive's in **one transaction** ([`BEFORE_RESTORE`], pg_restore's SQL,
//! [`AFTER_RESTORE`]): a failure midway leaves the database as it was. Jobs that were
//! executing when the backup was taken go back to the queue, uncharged (no node is
//! running them any more). Finally the deployer converges the cluster as `apply` does:
//! the nodes start again, migrations first, each health-gated.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::io::AsyncWrite;

use crate::deploy::{base_dir, DeployError, Deployment};
use crate::events::{Event, Events};
use crate::plan::{Goal, Plan};
use crate::steps::Step;
use crate::target::database::{Database, DatabaseError};

/// The first bytes of every pg_dump custom-format archive.
pub const MAGIC: &[u8] = b"PGDMP";

/// Tables whose rows do not make a database "not empty": the migrations' own
/// bookkeeping, which a freshly applied cluster already has, and the login rate
/// limit's counters, which a failed login on a fresh cluster leaves (they expire
/// within minutes and are nobody's data).
const BOOKKEEPING: &[&str] = &["public._sqlx_migrations", "public.login_failures"];

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("no backup file at {}\nhint: `deployer backup` writes one (by default under backups/ next to cluster.toml); give the path of one", path.display())]
    NoFile { path: PathBuf },
    #[error("{} is not a pg_dump custom-format archive (it starts with {start:?}, not \"PGDMP\"). Nothing was changed.\nhint: `deployer restore` takes the files `deployer backup` writes", path.display())]
    NotADump { path: PathBuf, start: String },
    #[error("{} has no checksum file {}: every backup is checked against the SHA-256 `deployer backup` writes next to it. Nothing was changed.\nhint: if you trust this file, write one: `sha256sum {} > {}`", path.display(), sidecar.display(), path.display(), sidecar.display())]
    NoChecksum { path: PathBuf, sidecar: PathBuf },
    #[error("{} holds no SHA-256 (expected `<64 hex digits>  <file name>`). Nothing was changed.", sidecar.display())]
    BadChecksumFile { sidecar: PathBuf },
    #[error("{} does not match its checksum: its SHA-256 is {actual}, {} says {expected}; the file is damaged or was changed after the backup. Nothing was changed.\nhint: restore another backup", path.display(), sidecar.display())]
    ChecksumMismatch {
        path: PathBuf,
        sidecar: PathBuf,
        expected: String,
        actual: String,
    },
    #[error("the database `{database}` is not empty ({}); a restore replaces all of it. Nothing was changed.\nhint: to replace it, run `deployer restore {} --yes` (take a backup of it first with `deployer backup`)",
        tables.iter().map(|(t, n)| format!("{t}: {n} row{}", if *n == 1 { "" } else { "s" })).collect::<Vec<_>>().join(", "),
        file.display())]
    NotEmpty {
        database: String,
        file: PathBuf,
        tables: Vec<(String, u64)>,
    },
    #[error("the cluster's database {name} is not running\nhint: bring the cluster up with `deployer apply` first")]
    NotRunning { name: String },
    #[error("{op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the dump pg_dump wrote does not start with \"PGDMP\"; nothing was kept")]
    BadDump,
    #[error("cannot read the tables' row counts: {0}")]
    Counts(String),
    #[error(transparent)]
    Deploy(Box<DeployError>),
    #[error("backing up the database")]
    Dump(#[source] DatabaseError),
    #[error("{what}")]
    Database {
        what: &'static str,
        #[source]
        source: DatabaseError,
    },
    #[error("the restore failed and was rolled back: the database holds what it held before{}", if *converged { "; the nodes are serving again" } else { "" })]
    Restore {
        converged: bool,
        #[source]
        source: DatabaseError,
    },
    #[error("the database was restored, but the nodes did not come back")]
    Converge(#[source] Box<DeployError>),
}

impl From<DeployError> for BackupError {
    fn from(e: DeployError) -> BackupError {
        BackupError::Deploy(Box::new(e))
    }
}

pub type Result<T> = std::result::Result<T, BackupError>;

/// A backup written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Backup {
    pub file: PathBuf,
    pub checksum_file: PathBuf,
    pub bytes: u64,
    pub sha256: String,
    #[serde(serialize_with = "secs")]
    pub elapsed: Duration,
}

/// A backup file checked against its checksum, ready to restore.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Checked {
    pub file: PathBuf,
    pub bytes: u64,
    pub sha256: String,
}

/// A restore done.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Restored {
    pub file: PathBuf,
    pub bytes: u64,
    /// The nodes' stop steps, as carried out.
    pub stopped: Vec<Step>,
    /// The pg_restore transaction alone.
    #[serde(serialize_with = "secs")]
    pub restore: Duration,
    /// The convergence that brought the nodes back.
    #[serde(skip)]
    pub converged: Plan,
    #[serde(serialize_with = "secs")]
    pub elapsed: Duration,
    /// Every table and its rows, after the restore.
    pub tables: Vec<(String, u64)>,
}

fn secs<S: serde::Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// `FILE.sha256`, next to `FILE`.
pub fn checksum_path(file: &Path) -> PathBuf {
    let mut name = file.file_name().unwrap_or_default().to_os_string();
    name.push(".sha256");
    file.with_file_name(name)
}

/// The checksum file's line for `file` (`sha256sum` format).
pub fn checksum_line(sha256: &str, file: &Path) -> String {
    format!(
        "{sha256}  {}\n",
        file.file_name().unwrap_or_default().to_string_lossy()
    )
}

/// The SHA-256 a checksum file holds (its first field, 64 hex digits).
pub fn parse_checksum(text: &str) -> Option<String> {
    let first = text.split_whitespace().next()?;
    (first.len() == 64 && first.chars().all(|c| c.is_ascii_hexdigit()))
        .then(|| first.to_ascii_lowercase())
}

/// The default file of a backup taken at `now`: `backups/<cluster>-<UTC time>.dump`
/// next to the cluster file.
pub fn default_path(
    cluster_file: &Path,
    cluster: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> PathBuf {
    base_dir(cluster_file)
        .join("backups")
        .join(format!("{cluster}-{}.dump", now.format("%Y%m%dT%H%M%SZ")))
}

/// Every table (`schema.name`) with its row count, in one statement.
pub const TABLES_SQL: &str = "SELECT n.nspname || '.' || c.relname, \
     (xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I.%I', n.nspname, c.relname), false, true, '')))[1]::text \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     WHERE c.relkind = 'r' AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%' \
     ORDER BY 1";

/// [`TABLES_SQL`]'s rows as (table, rows).
pub fn parse_tables(rows: &[Vec<String>]) -> Result<Vec<(String, u64)>> {
    rows.iter()
        .map(|r| match r.as_slice() {
            [table, n] => n
                .trim()
                .parse()
                .map(|n| (table.clone(), n))
                .map_err(|_| BackupError::Counts(format!("{r:?}"))),
            _ => Err(BackupError::Counts(format!("{r:?}"))),
        })
        .collect()
}

/// The tables that hold rows, apart from bookkeeping: what a restore would replace.
pub fn occupied(tables: &[(String, u64)]) -> Vec<(String, u64)> {
    tables
        .iter()
        .filter(|(t, n)| *n > 0 && !BOOKKEEPING.contains(&t.as_str()))
        .cloned()
        .collect()
}

/// Run first in the restore's transaction: every other session of the database is
/// closed (the nodes are stopped already; this ends the pooler's idle server
/// connections and anyone else's), then every schema of the database is dropped and
/// `public` made again, empty, as a fresh database has it, for the archive's objects.
pub const BEFORE_RESTORE: &str = "\
DO $restore$ DECLARE s text; BEGIN
  PERFORM pg_terminate_backend(pid) FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid();
  FOR s IN SELECT nspname FROM pg_namespace
    WHERE nspname <> 'information_schema' AND nspname NOT LIKE 'pg\\_%' LOOP
    EXECUTE format('DROP SCHEMA %I CASCADE', s);
  END LOOP;
  -- As a fresh database has it (PostgreSQL 15).
  CREATE SCHEMA public;
  ALTER SCHEMA public OWNER TO pg_database_owner;
  GRANT USAGE ON SCHEMA public TO PUBLIC;
END $restore$;";

/// Run last in the restore's transaction: jobs that were executing when the backup
/// was taken go back to the queue without charging the attempt (the app's own
/// hand-back), since no node runs them now; then fresh planner statistics. A schema
/// without those columns (another app) is left as restored.
pub const AFTER_RESTORE: &str = "\
DO $restore$ BEGIN
  IF to_regclass('public.jobs') IS NOT NULL THEN
    UPDATE public.jobs SET state = 'available', attempts = greatest(attempts - 1, 0),
        errors = errors || jsonb_build_array(jsonb_build_object(
            'attempt', attempts, 'at', now(), 'node', node,
            'error', 'handed back: restored from a backup taken while it ran')),
        scheduled_at = now(), lease_expires_at = NULL
      WHERE state = 'executing';
  END IF;
EXCEPTION WHEN undefined_column OR undefined_object OR datatype_mismatch THEN NULL;
END $restore$;
ANALYZE;";

/// Checks `file` before anything changes: it exists, is a pg_dump custom archive,
/// and matches its `.sha256`.
pub fn check(file: &Path) -> Result<Checked> {
    let io = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Io { op, path, source }
    };
    let mut f = match std::fs::File::open(file) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BackupError::NoFile { path: file.into() })
        }
        Err(e) => return Err(io("opening", file)(e)),
    };
    let mut start = [0u8; 5];
    let n = read_up_to(&mut f, &mut start).map_err(io("reading", file))?;
    if &start[..n] != MAGIC {
        return Err(BackupError::NotADump {
            path: file.into(),
            start: String::from_utf8_lossy(&start[..n]).into_owned(),
        });
    }
    let sidecar = checksum_path(file);
    let expected = match std::fs::read_to_string(&sidecar) {
        Ok(t) => parse_checksum(&t).ok_or_else(|| BackupError::BadChecksumFile {
            sidecar: sidecar.clone(),
        })?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BackupError::NoChecksum {
                path: file.into(),
                sidecar,
            })
        }
        Err(e) => return Err(io("reading", &sidecar)(e)),
    };
    let mut f = std::fs::File::open(file).map_err(io("opening", file))?;
    let mut hasher = Sha256::new();
    let bytes = std::io::copy(&mut f, &mut hasher).map_err(io("reading", file))?;
    let actual = hex::encode(hasher.finalize());
    if actual != expected {
        return Err(BackupError::ChecksumMismatch {
            path: file.into(),
            sidecar,
            expected,
            actual,
        });
    }
    Ok(Checked {
        file: file.into(),
        bytes,
        sha256: actual,
    })
}

fn read_up_to(f: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// The cluster's database client, with the cluster's model and what runs now; an
/// error when PostgreSQL does not run.
async fn database(
    d: &Deployment,
) -> Result<(Database, crate::model::Model, crate::observed::Observed)> {
    let observed = d.observe().await?;
    let postgres = d.names().postgres();
    if !observed.get(&postgres).is_some_and(|u| u.running) {
        return Err(BackupError::NotRunning { name: postgres });
    }
    let model = d.model().await?;
    let db = d.spec().database();
    let database = Database::new(
        d.engine(),
        &model,
        db.user().as_str(),
        db.name().as_str(),
        &d.secrets()?,
    )
    .map_err(|source| BackupError::Database {
        what: "preparing the database client",
        source,
    })?;
    Ok((database, model, observed))
}

/// Dumps the cluster's database into `out` (default: [`default_path`]), atomically,
/// with its checksum file.
pub async fn backup(d: &Deployment, out: Option<&Path>) -> Result<Backup> {
    let start = Instant::now();
    let (database, _, _) = database(d).await?;
    let file = match out {
        Some(p) => p.to_path_buf(),
        None => default_path(d.file(), d.names().cluster(), chrono::Utc::now()),
    };
    let dir = match file.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let io = |op, path: &Path| {
        let path = path.to_path_buf();
        move |source| BackupError::Io { op, path, source }
    };
    std::fs::create_dir_all(&dir).map_err(io("creating the directory", &dir))?;
    // Mode 0600, in the destination's directory: the rename below is atomic.
    let part = tempfile::Builder::new()
        .prefix(".backup-")
        .suffix(".part")
        .tempfile_in(&dir)
        .map_err(io("creating a temporary file in", &dir))?;
    let std_file = part.reopen().map_err(io("opening", part.path()))?;
    let mut writer = Hashing::new(tokio::io::BufWriter::with_capacity(
        1 << 20,
        tokio::fs::File::from_std(std_file),
    ));
    let bytes = database
        .dump(&mut writer)
        .await
        .map_err(BackupError::Dump)?;
    let (inner, sha256, first) = writer.finish();
    let f = inner.into_inner();
    f.sync_all().await.map_err(io("writing", part.path()))?;
    drop(f);
    if !first.starts_with(MAGIC) {
        return Err(BackupError::BadDump);
    }
    part.persist(&file).map_err(|e| BackupError::Io {
        op: "renaming the finished dump to",
        path: file.clone(),
        source: e.error,
    })?;
    let checksum_file = checksum_path(&file);
    write_atomically(&checksum_file, checksum_line(&sha256, &file).as_bytes())?;
    Ok(Backup {
        file,
        checksum_file,
        bytes,
        sha256,
        elapsed: start.elapsed(),
    })
}

fn write_atomically(path: &Path, contents: &[u8]) -> Result<()> {
    use std::io::Write;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let io = |op| {
        let path = path.to_path_buf();
        move |source| BackupError::Io { op, path, source }
    };
    let mut t = tempfile::NamedTempFile::new_in(&dir).map_err(io("writing"))?;
    t.write_all(contents).map_err(io("writing"))?;
    t.as_file().sync_all().map_err(io("writing"))?;
    t.persist(path).map_err(|e| io("writing")(e.error))?;
    Ok(())
}

/// Restores a [`check`]ed backup into the cluster's database: refused when it holds
/// rows unless `replace`; the nodes stopped meanwhile and brought back through the
/// applier. The caller holds the cluster's lock.
pub async fn restore(
    d: &Deployment,
    checked: &Checked,
    replace: bool,
    events: &dyn Events,
) -> Result<Restored> {
    let start = Instant::now();
    let (database, model, observed) = database(d).await?;
    let taken = occupied(&tables(&database, "counting the rows of the database's tables").await?);
    if !taken.is_empty() && !replace {
        return Err(BackupError::NotEmpty {
            database: d.spec().database().name().to_string(),
            file: checked.file.clone(),
            tables: taken,
        });
    }
    let stopped = d.stop_nodes(&model, &observed, events).await?;
    events.event(Event::Note(&format!(
        "restoring {} into `{}` in one transaction (the nodes are stopped: nothing writes meanwhile)",
        checked.file.display(),
        d.spec().database().name()
    )));
    let restore_start = Instant::now();
    let restored = async {
        let file = tokio::fs::File::open(&checked.file)
            .await
            .map_err(DatabaseError::Read)?;
        let reader = tokio::io::BufReader::with_capacity(1 << 20, file);
        database
            .restore(reader, BEFORE_RESTORE, AFTER_RESTORE)
            .await
    }
    .await;
    let restore = restore_start.elapsed();
    events.event(Event::Note(&match &restored {
        Ok(_) => format!(
            "restored in {:.1}s; bringing the nodes back",
            restore.as_secs_f64()
        ),
        Err(_) => "the restore failed and was rolled back; bringing the nodes back".into(),
    }));
    // The nodes come back whatever happened: the old data, or the restored data.
    let converged = async {
        let prepared = d.prepare(Goal::Converge).await?;
        d.apply(&prepared, events).await?;
        Ok::<_, DeployError>(prepared.plan)
    }
    .await;
    if let Err(source) = restored {
        return Err(BackupError::Restore {
            converged: converged.is_ok(),
            source,
        });
    }
    let converged = converged.map_err(|e| BackupError::Converge(Box::new(e)))?;
    // The applier returned once the balancer served again (every node was away).
    let tables = tables(&database, "counting the rows of the restored tables").await?;
    Ok(Restored {
        file: checked.file.clone(),
        bytes: checked.bytes,
        stopped,
        restore,
        converged,
        elapsed: start.elapsed(),
        tables,
    })
}

/// Every table of the database with its rows ([`TABLES_SQL`]).
async fn tables(database: &Database, what: &'static str) -> Result<Vec<(String, u64)>> {
    let rows = database
        .query(TABLES_SQL)
        .await
        .map_err(|source| BackupError::Database { what, source })?;
    parse_tables(&rows)
}

/// An [`AsyncWrite`] that hashes (SHA-256) and keeps the first bytes of what it
/// passes on.
struct Hashing<W> {
    inner: W,
    hasher: Sha256,
    first: Vec<u8>,
}

impl<W> Hashing<W> {
    fn new(inner: W) -> Hashing<W> {
        Hashing {
            inner,
            hasher: Sha256::new(),
            first: Vec::new(),
        }
    }

    /// The writer, the hex SHA-256 of everything written, and its first bytes.
    fn finish(self) -> (W, String, Vec<u8>) {
        (self.inner, hex::encode(self.hasher.finalize()), self.first)
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for Hashing<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let n = std::task::ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.hasher.update(&buf[..n]);
        if this.first.len() < MAGIC.len() {
            let take = (MAGIC.len() - this.first.len()).min(n);
            this.first.extend_from_slice(&buf[..take]);
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, contents).unwrap();
        p
    }

    fn sha(contents: &[u8]) -> String {
        hex::encode(Sha256::digest(contents))
    }

    #[test]
    fn a_file_is_checked_for_existence_magic_and_checksum_in_that_order() {
        let dir = tempfile::tempdir().unwrap();
        let dump = b"PGDMP\x01\x0f\x00 the rest";
        let good = write(dir.path(), "good.dump", dump);
        write(
            dir.path(),
            "good.dump.sha256",
            checksum_line(&sha(dump), &good).as_bytes(),
        );
        let not_dump = write(dir.path(), "notes.txt", b"hello");
        let short = write(dir.path(), "short.dump", b"PG");
        let bare = write(dir.path(), "bare.dump", dump);
        let changed = write(dir.path(), "changed.dump", b"PGDMP changed");
        write(
            dir.path(),
            "changed.dump.sha256",
            checksum_line(&sha(dump), &changed).as_bytes(),
        );
        let garbled = write(dir.path(), "garbled.dump", dump);
        write(dir.path(), "garbled.dump.sha256", b"not a checksum\n");

        let ok = check(&good).unwrap();
        assert_eq!(
            (ok.bytes, ok.sha256.as_str()),
            (dump.len() as u64, sha(dump).as_str())
        );
        let cases: &[(&Path, &str)] = &[
            (&dir.path().join("missing.dump"), "no backup file at"),
            (
                &not_dump,
                "is not a pg_dump custom-format archive (it starts with \"hello\"",
            ),
            (&short, "it starts with \"PG\""),
            (&bare, "has no checksum file"),
            (&changed, "does not match its checksum"),
            (&garbled, "holds no SHA-256"),
        ];
        for (file, expect) in cases {
            let e = check(file).unwrap_err().to_string();
            assert!(e.contains(expect), "{}: {e}", file.display());
        }
    }

    #[test]
    fn the_checksum_file_is_sha256sum_format() {
        let line = checksum_line(&"ab".repeat(32), Path::new("/x/backups/demo.dump"));
        assert_eq!(line, format!("{}  demo.dump\n", "ab".repeat(32)));
        assert_eq!(parse_checksum(&line), Some("ab".repeat(32)));
        assert_eq!(parse_checksum(&"AB".repeat(32)), Some("ab".repeat(32)));
        assert_eq!(parse_checksum("abc  demo.dump"), None);
        assert_eq!(parse_checksum(""), None);
        assert_eq!(
            checksum_path(Path::new("b/demo.dump")),
            PathBuf::from("b/demo.dump.sha256")
        );
    }

    #[test]
    fn only_rows_outside_the_bookkeeping_make_a_database_occupied() {
        let rows = |r: &[(&str, &str)]| -> Vec<Vec<String>> {
            r.iter()
                .map(|(t, n)| vec![t.to_string(), n.to_string()])
                .collect()
        };
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a [(&'a str, u64)]);
        let cases: &[Case] = &[
            (&[], &[]),
            (
                &[("public._sqlx_migrations", "6"), ("public.users", "0")],
                &[],
            ),
            (&[("public.login_failures", "2")], &[]),
            (
                &[
                    ("public._sqlx_migrations", "6"),
                    ("public.jobs", "40"),
                    ("public.users", "3"),
                ],
                &[("public.jobs", 40), ("public.users", 3)],
            ),
            (
                &[("other._sqlx_migrations", "1")],
                &[("other._sqlx_migrations", 1)],
            ),
        ];
        for (input, expect) in cases {
            let got = occupied(&parse_tables(&rows(input)).unwrap());
            let expect: Vec<(String, u64)> =
                expect.iter().map(|(t, n)| (t.to_string(), *n)).collect();
            assert_eq!(got, expect, "{input:?}");
        }
        assert!(parse_tables(&rows(&[("public.users", "many")])).is_err());
    }

    #[test]
    fn a_refusal_of_an_occupied_database_says_how_to_go_on() {
        let e = BackupError::NotEmpty {
            database: "app".into(),
            file: "backups/demo.dump".into(),
            tables: vec![("public.users".into(), 1), ("public.jobs".into(), 40)],
        }
        .to_string();
        assert!(
            e.contains("public.users: 1 row, public.jobs: 40 rows"),
            "{e}"
        );
        assert!(
            e.contains("`deployer restore backups/demo.dump --yes`"),
            "{e}"
        );
        assert!(e.contains("Nothing was changed"), "{e}");
    }

    #[test]
    fn the_default_file_is_under_backups_with_the_utc_time() {
        use chrono::TimeZone;
        let t = chrono::Utc.with_ymd_and_hms(2026, 11, 27, 5, 1, 2).unwrap();
        assert_eq!(
            default_path(Path::new("prod/cluster.toml"), "demo", t),
            PathBuf::from("prod/backups/demo-20261127T050102Z.dump")
        );
        assert_eq!(
            default_path(Path::new("cluster.toml"), "demo", t),
            PathBuf::from("backups/demo-20261127T050102Z.dump")
        );
    }

    #[tokio::test]
    async fn the_hashing_writer_hashes_everything_and_keeps_the_start() {
        use tokio::io::AsyncWriteExt;
        let mut w = Hashing::new(Vec::new());
        w.write_all(b"PG").await.unwrap();
        w.write_all(b"DMP and more").await.unwrap();
        let (inner, sha256, first) = w.finish();
        assert_eq!(inner, b"PGDMP and more");
        assert_eq!(sha256, sha(b"PGDMP and more"));
        assert_eq!(first, b"PGDMP");
    }
}

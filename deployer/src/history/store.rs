//! Revisions on disk: `.deployer/revisions/<cluster>/NNNN.json` next to cluster.toml, one file
//! each, numbered from 1, each written to a temporary file in the same directory and renamed
//! (a reader never sees half a revision). Writers hold the cluster's lock.

use std::io::Write;
use std::path::{Path, PathBuf};

use super::Revision;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot read the history in {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("revision file {} is not a revision the deployer wrote", path.display())]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write revision {} ", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The history of one cluster.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

/// The number after the highest one (1 for an empty history): numbers are never reused.
pub fn next_number(existing: &[u32]) -> u32 {
    existing.iter().max().map_or(1, |n| n + 1)
}

/// `7` → `0007.json` (more digits past 9999).
pub fn file_name(number: u32) -> String {
    format!("{number:04}.json")
}

/// `0007.json` → 7; anything else (a temporary file, an editor's backup) is no revision.
pub fn number_of(file_name: &str) -> Option<u32> {
    let digits = file_name.strip_suffix(".json")?;
    if digits.len() < 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

impl Store {
    /// The history of `cluster` whose file lives in `base`.
    pub fn at(base: &Path, cluster: &str) -> Store {
        Store {
            dir: base.join(".deployer").join("revisions").join(cluster),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn numbers(&self) -> Result<Vec<u32>, StoreError> {
        let entries = match std::fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StoreError::Read {
                    path: self.dir.clone(),
                    source,
                })
            }
        };
        let mut numbers = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| StoreError::Read {
                path: self.dir.clone(),
                source,
            })?;
            if let Some(n) = number_of(&entry.file_name().to_string_lossy()) {
                numbers.push(n);
            }
        }
        numbers.sort_unstable();
        Ok(numbers)
    }

    /// Every revision, in order of number.
    pub fn list(&self) -> Result<Vec<Revision>, StoreError> {
        self.numbers()?.into_iter().map(|n| self.get(n)).collect()
    }

    pub fn get(&self, number: u32) -> Result<Revision, StoreError> {
        let path = self.dir.join(file_name(number));
        let text = std::fs::read_to_string(&path).map_err(|source| StoreError::Read {
            path: path.clone(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| StoreError::Parse { path, source })
    }

    /// Records `revision` under the next number (its own `number` is replaced); returns it.
    pub fn record(&self, mut revision: Revision) -> Result<Revision, StoreError> {
        revision.number = next_number(&self.numbers()?);
        let path = self.dir.join(file_name(revision.number));
        let write = |source| StoreError::Write {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(&self.dir).map_err(write)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(".revision-")
            .tempfile_in(&self.dir)
            .map_err(write)?;
        let json = serde_json::to_string_pretty(&revision).map_err(|e| write(e.into()))?;
        tmp.write_all(json.as_bytes()).map_err(write)?;
        tmp.write_all(b"\n").map_err(write)?;
        tmp.as_file().sync_all().map_err(write)?;
        tmp.persist(&path).map_err(|e| write(e.error))?;
        Ok(revision)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::tests::revision;
    use crate::history::{Cause, Outcome};

    #[test]
    fn numbering() {
        let cases: &[(&[u32], u32)] = &[
            (&[], 1),
            (&[1], 2),
            (&[1, 2, 3], 4),
            (&[1, 5], 6),
            (&[9999], 10000),
        ];
        for (existing, next) in cases {
            assert_eq!(next_number(existing), *next, "{existing:?}");
        }
        for (name, number) in [
            ("0007.json", Some(7)),
            ("0000.json", Some(0)),
            ("12345.json", Some(12345)),
            ("7.json", None),
            ("0007.json.tmp", None),
            (".revision-abc", None),
            ("00a7.json", None),
        ] {
            assert_eq!(number_of(name), number, "{name}");
        }
        assert_eq!(file_name(7), "0007.json");
        assert_eq!(number_of(&file_name(12345)), Some(12345));
    }

    #[test]
    fn records_number_on_and_list_in_order() {
        let base = tempfile::tempdir().unwrap();
        let store = Store::at(base.path(), "demo");
        assert!(store.list().unwrap().is_empty());
        for _ in 0..3 {
            store
                .record(revision(0, Cause::Apply, Outcome::Applied))
                .unwrap();
        }
        // A temporary file left by a killed writer is not a revision.
        std::fs::write(store.dir().join(".revision-x"), "{").unwrap();
        let numbers: Vec<u32> = store.list().unwrap().iter().map(|r| r.number).collect();
        assert_eq!(numbers, [1, 2, 3]);
        assert!(base
            .path()
            .join(".deployer/revisions/demo/0003.json")
            .is_file());
        assert_eq!(store.get(2).unwrap().number, 2);
    }
}

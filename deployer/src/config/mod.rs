//! Reading `cluster.toml`: bytes → TOML document → raw sections → validated spec.
//!
//! Every problem is collected and reported at once with its location; nothing
//! here panics on any input.

pub mod convert;
pub mod diagnostic;
pub mod raw;
pub mod spec;

use std::path::{Path, PathBuf};

use serde::de::IntoDeserializer;
use serde::Deserialize;
use toml::Spanned;

pub use convert::{did_you_mean, from_raw};
pub use diagnostic::{Diagnostic, Report, Severity};
pub use spec::*;

use raw::{RawConfig, SECTIONS};

/// A cluster.toml larger than this is refused before parsing.
pub const MAX_FILE_SIZE: u64 = 1024 * 1024;

/// A validated cluster file: the spec and any warnings about it.
#[derive(Debug, Clone)]
pub struct Loaded {
    pub path: PathBuf,
    pub source: String,
    pub spec: ClusterSpec,
    pub warnings: Vec<Diagnostic>,
}

impl Loaded {
    pub fn warnings_report(&self) -> Report {
        Report::new(&self.path, &self.source, self.warnings.clone())
    }
}

/// Why a cluster file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} has problems:\n\n{report}", report.path.display())]
    Invalid { report: Report },
}

impl LoadError {
    pub fn report(&self) -> Option<&Report> {
        match self {
            LoadError::Invalid { report } => Some(report),
            LoadError::Read { .. } => None,
        }
    }
}

/// Reads and validates the cluster file at `path`.
pub fn load(path: &Path) -> Result<Loaded, LoadError> {
    let read_err = |source| LoadError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_err)?;
    if meta.len() > MAX_FILE_SIZE {
        let d = Diagnostic::error(
            format!(
                "the file is {:.1} MB; a cluster file is at most {} KiB",
                meta.len() as f64 / 1_000_000.0,
                MAX_FILE_SIZE / 1024
            ),
            None,
        )
        .with_hint("is this the right file? cluster.toml is usually under 2 KB");
        return Err(invalid(path, "", vec![d]));
    }
    let bytes = std::fs::read(path).map_err(read_err)?;
    parse(path, &bytes)
}

fn invalid(path: &Path, source: &str, diagnostics: Vec<Diagnostic>) -> LoadError {
    LoadError::Invalid {
        report: Report::new(path, source, diagnostics),
    }
}

/// Validates file contents; `path` is only used in messages.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Loaded, LoadError> {
    let source = match std::str::from_utf8(bytes) {
        Ok(s) => s.to_string(),
        Err(e) => {
            // Show where: everything up to the bad byte is valid text.
            let valid = String::from_utf8_lossy(&bytes[..e.valid_up_to()]).into_owned();
            let mut shown = valid.clone();
            shown.push_str(&String::from_utf8_lossy(&bytes[e.valid_up_to()..]));
            let at = valid.len();
            let d = Diagnostic::error(
                format!(
                    "the file is not valid UTF-8 (byte 0x{:02x} at offset {})",
                    bytes[e.valid_up_to()],
                    e.valid_up_to()
                ),
                Some(at..at + 1),
            )
            .with_hint("save cluster.toml as UTF-8");
            return Err(invalid(path, &shown, vec![d]));
        }
    };
    if source.trim().is_empty() {
        let d = Diagnostic::error("the file is empty", None)
            .with_hint("start from the example: a [cluster] section with `name = \"demo\"` is the least a cluster needs");
        return Err(invalid(path, &source, vec![d]));
    }
    let (raw, mut diags) = match read_raw(&source) {
        Ok(raw) => raw,
        Err(syntax) => return Err(invalid(path, &source, vec![syntax])),
    };
    // Sections that parsed are still checked when another one did not.
    let base = path.parent().unwrap_or(Path::new(""));
    match from_raw(&raw, base) {
        Ok((spec, warnings)) if diags.is_empty() => Ok(Loaded {
            path: path.to_path_buf(),
            source,
            spec,
            warnings,
        }),
        Ok(_) => Err(invalid(path, &source, diags)),
        Err(more) => {
            diags.extend(more);
            diags.sort_by_key(|d| d.span.as_ref().map_or(0, |s| s.start));
            Err(invalid(path, &source, diags))
        }
    }
}

/// TOML syntax (a syntax error stops everything), then unknown sections and keys
/// (all of them), then each section's types. A broken section does not stop the
/// others from being read; it is left out of the result and named in `broken`.
fn read_raw(source: &str) -> Result<(RawConfig, Vec<Diagnostic>), Diagnostic> {
    let doc: toml_edit::ImDocument<&str> = match toml_edit::ImDocument::parse(source) {
        Ok(doc) => doc,
        Err(e) => {
            let message = e.message().trim().to_string();
            let message = message.lines().next().unwrap_or("invalid TOML").to_string();
            let d = Diagnostic::error(format!("invalid TOML: {message}"), e.span())
                .with_hint(syntax_hint(&message));
            return Err(d);
        }
    };

    let mut diags = Vec::new();
    let mut raw = RawConfig::default();
    for (key, item) in doc.as_table().iter() {
        let key_span = doc.as_table().key(key).and_then(|k| k.span());
        if !SECTIONS.contains(&key) {
            diags.push(unknown_section(key, key_span));
            continue;
        }
        let Some(table) = item.as_table_like() else {
            diags.push(
                Diagnostic::error(format!("`{key}` must be a table"), item.span().or(key_span))
                    .with_hint(format!("write it as a section: [{key}]")),
            );
            raw.broken.insert(key.to_string());
            continue;
        };
        let known = raw::section_fields(key);
        let mut unknown = Vec::new();
        for (field, _) in table.iter() {
            if !known.contains(&field) {
                let span = table.key(field).and_then(|k| k.span());
                diags.push(unknown_key(key, field, known, span));
                unknown.push(field.to_string());
            }
        }
        // Read the rest of the section, so its values are still checked.
        let Ok(mut value) = item.clone().into_value() else {
            continue;
        };
        if let Some(t) = value.as_inline_table_mut() {
            for field in &unknown {
                t.remove(field);
            }
        }
        let span = item.span().or(key_span).unwrap_or(0..0);
        let result = deserialize_section(key, value, span.clone(), &mut raw);
        if let Err(e) = result {
            diags.push(type_error(key, &e, span));
            raw.broken.insert(key.to_string());
        }
    }
    Ok((raw, diags))
}

fn deserialize_section(
    key: &str,
    value: toml_edit::Value,
    span: std::ops::Range<usize>,
    raw: &mut RawConfig,
) -> Result<(), toml_edit::de::Error> {
    fn de<T: for<'de> Deserialize<'de>>(
        value: toml_edit::Value,
        span: std::ops::Range<usize>,
    ) -> Result<Option<Spanned<T>>, toml_edit::de::Error> {
        let inner = T::deserialize(value.into_deserializer())?;
        Ok(Some(Spanned::new(span, inner)))
    }
    match key {
        "cluster" => raw.cluster = de(value, span)?,
        "app" => raw.app = de(value, span)?,
        "database" => raw.database = de(value, span)?,
        "redis" => raw.redis = de(value, span)?,
        "balancer" => raw.balancer = de(value, span)?,
        "rollout" => raw.rollout = de(value, span)?,
        "logs" => raw.logs = de(value, span)?,
        "swarm" => raw.swarm = de(value, span)?,
        _ => {}
    }
    Ok(())
}

fn unknown_section(key: &str, span: Option<std::ops::Range<usize>>) -> Diagnostic {
    let d = Diagnostic::error(format!("unknown section `{}`", key.escape_debug()), span);
    // A key written at the top level that belongs to a section.
    if let Some(section) = SECTIONS
        .iter()
        .find(|s| raw::section_fields(s).contains(&key))
    {
        return d.with_hint(format!("`{key}` belongs in the [{section}] section"));
    }
    match did_you_mean(key, SECTIONS) {
        Some(s) => d.with_hint(format!("did you mean [{s}]?")),
        None => d.with_hint(format!(
            "the sections are {}",
            SECTIONS
                .iter()
                .map(|s| format!("[{s}]"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn unknown_key(
    section: &str,
    key: &str,
    known: &[&str],
    span: Option<std::ops::Range<usize>>,
) -> Diagnostic {
    let d = Diagnostic::error(
        format!("unknown key `{}` in [{section}]", key.escape_debug()),
        span,
    );
    if let Some(s) = did_you_mean(key, known) {
        return d.with_hint(format!("did you mean `{s}`?"));
    }
    if let Some(other) = SECTIONS
        .iter()
        .find(|s| **s != section && raw::section_fields(s).contains(&key))
    {
        return d.with_hint(format!("`{key}` belongs in the [{other}] section"));
    }
    d.with_hint(format!("[{section}] accepts {}", known.join(", ")))
}

fn type_error(
    section: &str,
    e: &toml_edit::de::Error,
    fallback: std::ops::Range<usize>,
) -> Diagnostic {
    let message = e.message().trim();
    // serde says "invalid type: string \"ten\", expected i64"; say it the user's way.
    let friendly = message
        .replace("expected i64", "expected an integer")
        .replace("expected a boolean", "expected true or false")
        .replace("expected a string", "expected a quoted string")
        .replace("expected a map", "expected a table of KEY = \"value\"");
    let hint = if message.contains("expected i64") {
        "write a plain number without quotes, e.g. `pool_size = 10`"
    } else if message.contains("expected a boolean") {
        "write `true` or `false` without quotes"
    } else if message.contains("expected a string") {
        "quote the value, e.g. `name = \"demo\"`"
    } else {
        "see the cluster.toml reference in the README"
    };
    Diagnostic::error(
        format!("in [{section}]: {friendly}"),
        e.span().or(Some(fallback)),
    )
    .with_hint(hint)
}

fn syntax_hint(message: &str) -> &'static str {
    if message.contains("duplicate key") {
        "each key may appear once per section; remove one of them"
    } else if message.contains("invalid table header") || message.contains("expected `]`") {
        "section headers look like [app]"
    } else if message.contains("invalid string") || message.contains("missing closing quote") {
        "strings are quoted: name = \"demo\""
    } else {
        "cluster.toml is TOML: `key = value` lines under [section] headers; strings in double quotes"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(src: &str) -> Result<Loaded, Report> {
        parse(Path::new("cluster.toml"), src.as_bytes()).map_err(|e| e.report().unwrap().clone())
    }

    #[test]
    fn minimal_file_uses_classic_defaults() {
        let l = check("[cluster]\nname = \"demo\"\n").unwrap();
        assert_eq!(l.spec.app.nodes, 3);
        assert_eq!(l.spec.app.pool_size, 10);
        assert_eq!(l.spec.database.max_connections, 100);
        assert_eq!(l.spec.balancer.strategy, Strategy::RoundRobin);
        assert_eq!(l.spec.rollout.max_surge, 1);
        assert!(l.spec.redis.is_none());
        assert!(l.warnings.is_empty());
    }

    #[test]
    fn all_unknown_keys_are_reported_at_once() {
        let r = check("[cluster]\nname = \"demo\"\n[app]\npool = 3\nnodez = 2\n[balancer]\nstrategi = \"x\"\n")
            .unwrap_err();
        let msgs: Vec<_> = r.diagnostics.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(msgs.len(), 3, "{msgs:?}");
        assert_eq!(
            r.diagnostics[0].hint.as_deref(),
            Some("did you mean `pool_size`?")
        );
        assert_eq!(
            r.diagnostics[1].hint.as_deref(),
            Some("did you mean `nodes`?")
        );
        assert_eq!(
            r.diagnostics[2].hint.as_deref(),
            Some("did you mean `strategy`?")
        );
    }

    #[test]
    fn type_errors_in_two_sections_are_both_reported() {
        let r = check("[cluster]\nname = 5\n[app]\npool_size = \"ten\"\n").unwrap_err();
        assert_eq!(r.diagnostics.len(), 2, "{r}");
        let text = r.to_string();
        assert!(text.contains("cluster.toml:2:8"), "{text}");
        assert!(text.contains("cluster.toml:4:13"), "{text}");
    }

    #[test]
    fn inline_tables_work_like_sections() {
        let l = check("cluster = { name = \"x\" }\napp = { nodes = 2 }\n").unwrap();
        assert_eq!(l.spec.app.nodes, 2);
    }

    #[test]
    fn env_values_and_names_are_checked() {
        let l = check("[cluster]\nname = \"x\"\n[app.env]\nFEATURE = \"on\"\n").unwrap();
        assert_eq!(
            l.spec.app.env.get("FEATURE").map(String::as_str),
            Some("on")
        );
        let r = check("[cluster]\nname = \"x\"\n[app.env]\nPORT = \"1\"\n").unwrap_err();
        assert!(r.diagnostics[0].message.contains("set by the deployer"));
    }
}

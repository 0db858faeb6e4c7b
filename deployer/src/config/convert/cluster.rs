//! The [cluster] section: the cluster's name.

use super::{span, Checker};
use crate::config::diagnostic::Diagnostic;
use crate::config::raw::RawConfig;
use crate::config::spec::DnsLabel;

/// The cluster's name, `demo` when it is missing or invalid (after reporting why).
pub(super) fn name(c: &mut Checker, raw: &RawConfig) -> DnsLabel {
    match &raw.cluster {
        None if raw.broken.contains("cluster") => DnsLabel::known("demo"),
        None => {
            c.diags.push(
                Diagnostic::error("missing section [cluster]", None)
                    .with_hint("start the file with\n    [cluster]\n    name = \"demo\""),
            );
            DnsLabel::known("demo")
        }
        Some(section) if section.get_ref().name.is_none() => {
            c.diags.push(
                Diagnostic::error("missing key `name` in [cluster]", span(section))
                    .with_hint("add `name = \"demo\"`: it names every container, network and volume of the cluster"),
            );
            DnsLabel::known("demo")
        }
        Some(section) => c.label(&section.get_ref().name, "name", "demo"),
    }
}

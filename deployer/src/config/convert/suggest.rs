//! Suggestions for a mistyped value: the closest known word, or the nearest valid
//! DNS label.

use crate::config::spec::DnsLabel;

/// The closest candidate by edit distance, when it is close enough to be a typo.
pub fn did_you_mean<'a>(input: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(input, c), *c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Lowercases and replaces what a DNS label cannot hold, when that gives a label.
pub(super) fn suggest_label(s: &str) -> Option<String> {
    let mut out: String = s
        .trim()
        .chars()
        .map(|c| {
            let c = c.to_ascii_lowercase();
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let out = out.trim_matches('-').to_string();
    DnsLabel::parse(&out).ok().map(|l| l.as_str().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn did_you_mean_finds_typos() {
        assert_eq!(
            did_you_mean("pool", &["pool_size", "port", "nodes"]),
            Some("pool_size")
        );
        assert_eq!(
            did_you_mean("least_con", &["round_robin", "least_conn"]),
            Some("least_conn")
        );
        assert_eq!(did_you_mean("zzz", &["round_robin", "least_conn"]), None);
    }

    #[test]
    fn suggested_labels_are_labels() {
        assert_eq!(suggest_label("My App"), Some("my-app".into()));
        assert_eq!(suggest_label("  Demo__2 "), Some("demo-2".into()));
        assert_eq!(suggest_label("42"), None);
    }
}

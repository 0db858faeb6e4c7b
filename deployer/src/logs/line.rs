//! A log line as the engine hands it over (`<RFC 3339 timestamp> <text>`, with
//! `--details` on a swarm `<timestamp> <k=v,…> <text>`), and the pure steps
//! from raw chunks to lines in time order: reassembling chunks into lines,
//! merging the units' lines, keeping the last N of each unit.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

/// One line a unit wrote, named by its unit and stamped by the engine when it
/// was written (the order lines are merged in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub time: DateTime<Utc>,
    /// The unit's stable name (`demo-app-2`, `demo-lb`), whatever container
    /// or task wrote it.
    pub unit: String,
    pub text: String,
}

/// Splits `<timestamp> <text>` (the engine's `timestamps=true` form).
pub fn split_stamp(raw: &str) -> Option<(DateTime<Utc>, &str)> {
    let (stamp, text) = raw.split_once(' ').unwrap_or((raw, ""));
    let time = DateTime::parse_from_rfc3339(stamp)
        .ok()?
        .with_timezone(&Utc);
    Some((time, text))
}

/// The swarm's context of a line read with `details=true`: `k=v,k=v <text>`,
/// keys sorted, values query-escaped (ids never need it). Returns the task's
/// id and the text.
pub fn split_details(rest: &str) -> Option<(&str, &str)> {
    let (attrs, text) = rest.split_once(' ').unwrap_or((rest, ""));
    let task = attrs
        .split(',')
        .find_map(|kv| kv.strip_prefix("com.docker.swarm.task.id="))?;
    Some((task, text))
}

/// Reassembles lines from the chunks a log stream delivers (one entry per
/// chunk as a rule, but a chunk may hold several lines or end mid-line).
#[derive(Debug, Default)]
pub struct Assembler {
    partial: Vec<u8>,
}

impl Assembler {
    /// The complete lines `chunk` finishes, without their newline.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<String> {
        let mut lines = Vec::new();
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|b| *b == b'\n') {
            self.partial.extend_from_slice(&rest[..end]);
            lines.push(self.take());
            rest = &rest[end + 1..];
        }
        self.partial.extend_from_slice(rest);
        lines
    }

    /// What is left once the stream ended (a last line without a newline).
    pub fn finish(&mut self) -> Option<String> {
        (!self.partial.is_empty()).then(|| self.take())
    }

    fn take(&mut self) -> String {
        let bytes = std::mem::take(&mut self.partial);
        let mut s = String::from_utf8_lossy(&bytes).into_owned();
        if s.ends_with('\r') {
            s.pop();
        }
        s
    }
}

/// The units' lines in one time order. Each unit's lines are already in
/// order; lines written at the same instant keep the order they came in.
pub fn merge(batches: Vec<Vec<Line>>) -> Vec<Line> {
    let mut all: Vec<Line> = batches.into_iter().flatten().collect();
    // A stable sort finds the sorted runs and merges them.
    all.sort_by_key(|l| l.time);
    all
}

/// The last `n` lines of each unit (a unit may have had several containers or
/// tasks, each read with the engine's own tail), in time order.
pub fn tail(lines: Vec<Line>, n: usize) -> Vec<Line> {
    let mut left: HashMap<&str, usize> = HashMap::new();
    let mut keep = vec![false; lines.len()];
    for (i, l) in lines.iter().enumerate().rev() {
        let seen = left.entry(l.unit.as_str()).or_default();
        if *seen < n {
            *seen += 1;
            keep[i] = true;
        }
    }
    lines
        .into_iter()
        .zip(keep)
        .filter_map(|(l, k)| k.then_some(l))
        .collect()
}

/// The last line seen from each source (container or task), so that a stream
/// attached again from a whole second (the engine's `since` granularity)
/// repeats nothing.
#[derive(Debug, Default)]
pub struct Seen {
    last: HashMap<String, DateTime<Utc>>,
}

impl Seen {
    /// Whether a line of `source` stamped `time` is new; remembers it if so.
    pub fn admit(&mut self, source: &str, time: DateTime<Utc>) -> bool {
        match self.last.get_mut(source) {
            Some(last) if time <= *last => false,
            Some(last) => {
                *last = time;
                true
            }
            None => {
                self.last.insert(source.to_string(), time);
                true
            }
        }
    }

    /// The last line's time of `source`, if any was seen.
    pub fn last(&self, source: &str) -> Option<DateTime<Utc>> {
        self.last.get(source).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn line(t: &str, unit: &str, text: &str) -> Line {
        Line {
            time: at(&format!("2026-11-27T10:00:{t}Z")),
            unit: unit.into(),
            text: text.into(),
        }
    }

    #[test]
    fn stamps_and_details_split_off() {
        let table = [
            (
                "2026-11-27T10:00:01.123456789Z hello world",
                Some(("2026-11-27T10:00:01.123456789Z", "hello world")),
            ),
            ("2026-11-27T10:00:01Z ", Some(("2026-11-27T10:00:01Z", ""))),
            ("2026-11-27T10:00:01Z", Some(("2026-11-27T10:00:01Z", ""))),
            (
                "2026-11-27T11:00:01.5+01:00 x",
                Some(("2026-11-27T10:00:01.5Z", "x")),
            ),
            ("not a stamp", None),
            ("", None),
        ];
        for (raw, want) in table {
            let got = split_stamp(raw);
            assert_eq!(got, want.map(|(t, s)| (at(t), s)), "{raw:?}");
        }
        assert_eq!(
            split_details("com.docker.swarm.node.id=n1,com.docker.swarm.service.id=s1,com.docker.swarm.task.id=t9 {\"a\":1}"),
            Some(("t9", "{\"a\":1}"))
        );
        assert_eq!(
            split_details("a=b,com.docker.swarm.task.id=t1 x y"),
            Some(("t1", "x y"))
        );
        assert_eq!(split_details("plain text"), None);
    }

    #[test]
    fn chunks_become_whole_lines() {
        let mut a = Assembler::default();
        assert_eq!(a.push(b"one\ntw"), ["one"]);
        assert_eq!(a.push(b"o\r\nthree\nfour"), ["two", "three"]);
        assert!(a.push(b"").is_empty());
        assert_eq!(a.finish().as_deref(), Some("four"));
        assert_eq!(a.finish(), None);
        assert_eq!(a.push(b"\n"), [""]);
        assert_eq!(a.push(&[0xff, b'\n']), ["\u{fffd}"]);
    }

    #[test]
    fn merge_interleaves_the_units_in_time_order() {
        let a = vec![
            line("01", "a", "a1"),
            line("03", "a", "a3"),
            line("05", "a", "a5"),
        ];
        let b = vec![
            line("02", "b", "b2"),
            line("03", "b", "b3"),
            line("04", "b", "b4"),
        ];
        let c = vec![];
        let got: Vec<String> = merge(vec![a, b, c]).into_iter().map(|l| l.text).collect();
        assert_eq!(got, ["a1", "b2", "a3", "b3", "b4", "a5"]);
        assert!(merge(vec![]).is_empty());
    }

    #[test]
    fn tail_keeps_the_last_lines_of_each_unit() {
        let lines = merge(vec![
            vec![
                line("01", "a", "a1"),
                line("03", "a", "a3"),
                line("05", "a", "a5"),
            ],
            vec![line("02", "b", "b2"), line("04", "b", "b4")],
        ]);
        let texts =
            |n| -> Vec<String> { tail(lines.clone(), n).into_iter().map(|l| l.text).collect() };
        assert_eq!(texts(0), Vec::<String>::new());
        assert_eq!(texts(1), ["b4", "a5"]);
        assert_eq!(texts(2), ["b2", "a3", "b4", "a5"]);
        assert_eq!(texts(1).len(), 2);
        assert_eq!(texts(3), ["a1", "b2", "a3", "b4", "a5"]);
    }

    #[test]
    fn a_stream_attached_again_repeats_nothing() {
        let mut seen = Seen::default();
        assert!(seen.admit("c1", at("2026-11-27T10:00:01.5Z")));
        assert!(seen.admit("c2", at("2026-11-27T10:00:01.5Z")));
        // The same second again, from `since` = 10:00:01.
        assert!(!seen.admit("c1", at("2026-11-27T10:00:01.2Z")));
        assert!(!seen.admit("c1", at("2026-11-27T10:00:01.5Z")));
        assert!(seen.admit("c1", at("2026-11-27T10:00:01.6Z")));
    }
}

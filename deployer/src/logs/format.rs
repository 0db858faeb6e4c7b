//! How a line is shown. Readable (the default): `<unit> | <time> <text>`, the
//! app's JSON lines (tracing's JSON) turned into `LEVEL message key=value…`,
//! with ANSI colours the command layer strips when stdout is not a terminal or
//! `NO_COLOR` is set. `--json`: one JSON object per line — the app's own object
//! untouched but for a leading `"unit"` key, any other line wrapped as
//! `{"unit", "timestamp", "message"}`.

use anstyle::{AnsiColor, Color, Style};
use chrono::SecondsFormat;
use serde_json::{Map, Value};

use super::line::Line;

/// Colours of the unit names, one per unit in the order they are listed.
const PALETTE: [AnsiColor; 6] = [
    AnsiColor::Cyan,
    AnsiColor::Green,
    AnsiColor::Yellow,
    AnsiColor::Blue,
    AnsiColor::Magenta,
    AnsiColor::BrightCyan,
];

/// Keys of tracing's JSON that the readable form shows in its own place, or not at all.
const SHOWN_APART: [&str; 11] = [
    "timestamp",
    "level",
    "message",
    "fields",
    "target",
    "span",
    "spans",
    "threadName",
    "threadId",
    "filename",
    "line_number",
];

/// Renders lines in the readable form for a known set of units: their
/// prefixes aligned, each its own colour.
#[derive(Debug, Clone)]
pub struct Printer {
    units: Vec<String>,
    width: usize,
}

impl Printer {
    /// For lines of `units` (others are shown too, coloured by their name).
    pub fn new(units: Vec<String>) -> Printer {
        Printer {
            width: units.iter().map(|u| u.chars().count()).max().unwrap_or(0),
            units,
        }
    }

    /// `unit | HH:MM:SS.mmm text`, the time in UTC as the engine stamped it,
    /// with ANSI styles.
    pub fn readable(&self, line: &Line) -> String {
        let colour = match self.units.iter().position(|u| *u == line.unit) {
            Some(i) => PALETTE[i % PALETTE.len()],
            None => PALETTE[line.unit.bytes().map(usize::from).sum::<usize>() % PALETTE.len()],
        };
        let unit = Style::new().fg_color(Some(Color::Ansi(colour)));
        let dim = Style::new().dimmed();
        format!(
            "{unit}{:<w$} |{unit:#} {dim}{}{dim:#} {}",
            line.unit,
            line.time.format("%H:%M:%S%.3f"),
            readable_text(&line.text),
            w = self.width
        )
    }
}

/// The app's tracing JSON as `LEVEL message key=value…` (event fields, then
/// those of its spans); any other text as it is.
pub fn readable_text(text: &str) -> String {
    let Some(mut event) = tracing_event(text) else {
        return text.to_string();
    };
    let level = match event.get("level") {
        Some(Value::String(l)) => l.to_uppercase(),
        _ => String::new(),
    };
    // tracing's JSON without flattening keeps the event's fields apart.
    if let Some(Value::Object(fields)) = event.remove("fields") {
        for (k, v) in fields {
            event.entry(k).or_insert(v);
        }
    }
    let message = match event.get("message") {
        Some(Value::String(m)) => m.clone(),
        Some(v) => v.to_string(),
        None => String::new(),
    };
    let mut pairs: Vec<(String, Value)> = event
        .iter()
        .filter(|(k, _)| !SHOWN_APART.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let spans = match event.get("spans") {
        Some(Value::Array(spans)) => spans.clone(),
        _ => event.get("span").cloned().into_iter().collect(),
    };
    for span in spans {
        let Value::Object(fields) = span else {
            continue;
        };
        for (k, v) in fields {
            if k != "name" && !pairs.iter().any(|(p, _)| *p == k) && !event.contains_key(&k) {
                pairs.push((k, v));
            }
        }
    }
    let level_style = match level.as_str() {
        "ERROR" => Style::new()
            .fg_color(Some(Color::Ansi(AnsiColor::Red)))
            .bold(),
        "WARN" => Style::new()
            .fg_color(Some(Color::Ansi(AnsiColor::Yellow)))
            .bold(),
        "INFO" => Style::new().fg_color(Some(Color::Ansi(AnsiColor::Green))),
        "DEBUG" => Style::new().fg_color(Some(Color::Ansi(AnsiColor::Blue))),
        _ => Style::new().fg_color(Some(Color::Ansi(AnsiColor::Magenta))),
    };
    let key_style = Style::new().dimmed();
    let mut out = format!("{level_style}{level:<5}{level_style:#} {message}");
    for (k, v) in pairs {
        out.push_str(&format!(" {key_style}{k}={key_style:#}{}", value(&v)));
    }
    out
}

/// The line as one JSON object: the app's own object with `"unit"` put first
/// and every byte after it untouched; any other line wrapped.
pub fn json(line: &Line) -> String {
    let unit = serde_json::to_string(&line.unit).expect("a string serialises");
    let text = line.text.trim();
    if text.starts_with('{') && serde_json::from_str::<Map<String, Value>>(text).is_ok() {
        let inner = text[1..].trim_start();
        return if inner.starts_with('}') {
            format!("{{\"unit\":{unit}}}")
        } else {
            format!("{{\"unit\":{unit},{inner}")
        };
    }
    let time = line.time.to_rfc3339_opts(SecondsFormat::Nanos, true);
    format!(
        "{{\"unit\":{unit},\"timestamp\":\"{time}\",\"message\":{}}}",
        serde_json::to_string(&line.text).expect("a string serialises")
    )
}

/// A JSON object with a level: a tracing event.
fn tracing_event(text: &str) -> Option<Map<String, Value>> {
    let text = text.trim();
    if !text.starts_with('{') {
        return None;
    }
    let event: Map<String, Value> = serde_json::from_str(text).ok()?;
    matches!(event.get("level"), Some(Value::String(_))).then_some(event)
}

/// A field's value as `key=value` shows it: bare when it is one plain word.
fn value(v: &Value) -> String {
    match v {
        Value::String(s)
            if !s.is_empty()
                && !s
                    .chars()
                    .any(|c| c.is_whitespace() || c == '"' || c == '=' || c.is_control()) =>
        {
            s.clone()
        }
        v => v.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn line(unit: &str, text: &str) -> Line {
        Line {
            time: DateTime::parse_from_rfc3339("2026-11-27T10:00:01.234567891Z")
                .unwrap()
                .with_timezone(&Utc),
            unit: unit.into(),
            text: text.into(),
        }
    }

    fn plain(s: &str) -> String {
        anstream::adapter::strip_str(s).to_string()
    }

    #[test]
    fn the_apps_json_reads_as_level_message_and_fields() {
        let table = [
            (
                r#"{"timestamp":"2026-11-27T10:00:01.2Z","level":"INFO","message":"node started","node":"demo-app-1","port":4000,"target":"app::main"}"#,
                "INFO  node started node=demo-app-1 port=4000",
            ),
            (
                r#"{"timestamp":"t","level":"WARN","message":"slow","took":"1.5 s","ok":false,"spans":[{"name":"request","method":"GET","uri":"/api/health"}]}"#,
                r#"WARN  slow ok=false took="1.5 s" method=GET uri=/api/health"#,
            ),
            (
                r#"{"timestamp":"t","level":"ERROR","fields":{"message":"boom","code":7},"target":"x"}"#,
                "ERROR boom code=7",
            ),
            (
                r#"{"level":"DEBUG","message":"m","empty":"","nested":{"a":[1]}}"#,
                r#"DEBUG m empty="" nested={"a":[1]}"#,
            ),
            (
                r#"{"level":"INFO","message":"m","span":{"name":"job","kind":"email"}}"#,
                "INFO  m kind=email",
            ),
            // Not tracing's JSON: shown as it is.
            (r#"{"msg":"no level"}"#, r#"{"msg":"no level"}"#),
            (
                r#"172.18.0.1 - - [27/Nov/2026:10:00:01 +0000] "GET /api/health HTTP/1.1" 200"#,
                r#"172.18.0.1 - - [27/Nov/2026:10:00:01 +0000] "GET /api/health HTTP/1.1" 200"#,
            ),
            ("", ""),
            ("{broken", "{broken"),
        ];
        for (text, want) in table {
            assert_eq!(plain(&readable_text(text)), want, "{text}");
        }
    }

    #[test]
    fn readable_lines_are_prefixed_aligned_and_coloured_by_unit() {
        let p = Printer::new(vec!["demo-postgres".into(), "demo-app-1".into()]);
        let got = p.readable(&line("demo-app-1", "hello"));
        assert_eq!(plain(&got), "demo-app-1    | 10:00:01.234 hello");
        assert!(got.contains("\u{1b}["), "styled: {got:?}");
        let other = p.readable(&line("demo-postgres", "x"));
        assert_ne!(
            got.split('d').next(),
            other.split('d').next(),
            "each unit its own colour"
        );
        // A unit the file does not name is still shown.
        assert_eq!(
            plain(&p.readable(&line("demo-pooler-0000abcd", "y"))),
            "demo-pooler-0000abcd | 10:00:01.234 y"
        );
    }

    #[test]
    fn json_lines_are_objects_with_the_unit() {
        let table = [
            (
                r#"{"timestamp":"t","level":"INFO","message":"m","z":1,"a":2}"#,
                r#"{"unit":"demo-app-1","timestamp":"t","level":"INFO","message":"m","z":1,"a":2}"#,
            ),
            ("{}", r#"{"unit":"demo-app-1"}"#),
            (
                "plain \"quoted\" text",
                r#"{"unit":"demo-app-1","timestamp":"2026-11-27T10:00:01.234567891Z","message":"plain \"quoted\" text"}"#,
            ),
            (
                "[1,2]",
                r#"{"unit":"demo-app-1","timestamp":"2026-11-27T10:00:01.234567891Z","message":"[1,2]"}"#,
            ),
        ];
        for (text, want) in table {
            let got = json(&line("demo-app-1", text));
            assert_eq!(got, want);
            let v: Value = serde_json::from_str(&got).unwrap();
            assert_eq!(v["unit"], "demo-app-1");
        }
    }
}

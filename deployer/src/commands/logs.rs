//! `deployer logs`: asks the library for the selected units' lines (merged in
//! time order, or followed) and prints them, readable with colours on a
//! terminal, or one JSON object per line.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;

use super::{load_or_report, LogsArgs, Outcome};
use crate::deploy::Deployment;
use crate::events::{Event, Events};
use crate::logs::{format, Line, Printer, Request, Selection};

/// `--since 10m`, `2h`, `30s`, `1h30m`.
pub fn parse_since(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (e.g. 30s, 10m, 2h, 1h30m)"))
}

/// What the library notes while reading (a source that does not answer).
struct Warnings;

impl Events for Warnings {
    fn event(&self, event: Event<'_>) {
        if let Event::Note(n) = event {
            eprintln!("warning: {n}");
        }
    }
}

/// Where lines go: the readable form through a stream that drops colours
/// when stdout is not a terminal or NO_COLOR is set, or JSON as it is.
struct Out {
    printer: Option<Printer>,
    stdout: anstream::AutoStream<std::io::StdoutLock<'static>>,
}

impl Out {
    fn new(units: Vec<String>, json: bool) -> Out {
        let lock = std::io::stdout().lock();
        Out {
            printer: (!json).then(|| Printer::new(units)),
            // JSON never carries colour codes.
            stdout: if json {
                anstream::AutoStream::never(lock)
            } else {
                anstream::AutoStream::auto(lock)
            },
        }
    }

    fn render(&self, line: &Line, buf: &mut String) {
        match &self.printer {
            Some(p) => buf.push_str(&p.readable(line)),
            None => buf.push_str(&format::json(line)),
        }
        buf.push('\n');
    }

    fn write(&mut self, buf: &str) -> std::io::Result<()> {
        self.stdout.write_all(buf.as_bytes())?;
        self.stdout.flush()
    }
}

pub async fn logs(file: &Path, args: &LogsArgs) -> anyhow::Result<Outcome> {
    let Some(loaded) = load_or_report(file, false)? else {
        return Ok(Outcome::Failed);
    };
    let req = Request {
        selection: Selection::parse(&loaded.spec, &args.targets)?,
        since: args.since,
        tail: args.tail,
    };
    let units = req.selection.units(&loaded.spec);
    let d = Deployment::open(file, loaded).await?;
    let mut out = Out::new(units, args.json);
    let written = if args.follow {
        follow(&d, &req, &mut out).await?
    } else {
        let lines = d.logs(&req, &Warnings).await?;
        let mut buf = String::with_capacity(lines.len() * 120);
        for l in &lines {
            out.render(l, &mut buf);
        }
        out.write(&buf)
    };
    match written {
        // `deployer logs | head`: the reader has had enough.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(Outcome::Ok),
        Err(e) => Err(e.into()),
        Ok(()) => Ok(Outcome::Ok),
    }
}

/// Prints lines as they come until interrupted (or the reader goes away).
async fn follow(
    d: &Deployment,
    req: &Request,
    out: &mut Out,
) -> anyhow::Result<std::io::Result<()>> {
    let (tx, mut rx) = mpsc::channel::<Line>(4096);
    let following = d.follow_logs(req, tx, &Warnings);
    tokio::pin!(following);
    let mut buf = String::new();
    loop {
        tokio::select! {
            r = &mut following => {
                r?;
                return Ok(Ok(()));
            }
            Some(line) = rx.recv() => {
                buf.clear();
                out.render(&line, &mut buf);
                // Whatever else has arrived goes out in the same write.
                while let Ok(more) = rx.try_recv() {
                    out.render(&more, &mut buf);
                }
                if let Err(e) = out.write(&buf) {
                    return Ok(Err(e));
                }
            }
        }
    }
}

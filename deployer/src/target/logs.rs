//! Reading `deployer logs` from an engine, shared by both targets: each target
//! only lists its log sources (containers on one engine, tasks on a swarm),
//! each named by the unit it writes for, and opens one source's log stream.
//!
//! Without following: every source's lines (`--since`, the engine's own
//! `--tail`), merged in time order, cut to the last N per unit. Following:
//! that backlog first, then every running source attached with `follow`,
//! lines passed on as they come; the sources are listed again every
//! [`LogSources::POLL`], so a container or task that starts later (a node's
//! replacement in a rollout) is attached under its unit's name. A source
//! attached again from a whole second repeats nothing ([`Seen`]).

use std::collections::HashSet;
use std::future::Future;
use std::time::Duration;

use bollard::container::LogOutput;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::events::{Event, Events};
use crate::logs::line::{self, Assembler, Seen};
use crate::logs::{Line, Request};
use crate::target::docker::engine::is_not_found;

/// A container or task whose log is read, and the unit its lines are named by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub id: String,
    pub unit: String,
    pub running: bool,
}

/// How one source's log is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Read {
    /// Whole seconds since the epoch; 0 for everything.
    pub since: i64,
    pub tail: Option<usize>,
    pub follow: bool,
}

impl Read {
    /// The engine's query (timestamps on, both streams).
    pub fn options(self) -> bollard::query_parameters::LogsOptions {
        bollard::query_parameters::LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .timestamps(true)
            .follow(self.follow)
            .since(i32::try_from(self.since).unwrap_or(i32::MAX))
            .tail(&self.tail.map_or("all".to_string(), |n| n.to_string()))
            .build()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogsError {
    #[error("listing the cluster's {what}")]
    List {
        what: &'static str,
        #[source]
        source: bollard::errors::Error,
    },
}

/// The log sources of a cluster on one target, for one [`Selection`](crate::logs::Selection).
pub trait LogSources: Clone + Send + Sync + 'static {
    /// How often sources are listed again while following.
    const POLL: Duration;
    /// How long one source's backlog may go without a chunk (the log of a task
    /// whose swarm host is down never answers).
    const READ_TIMEOUT: Duration = Duration::from_secs(20);

    /// The selected units' sources now, running or not.
    fn sources(&self) -> impl Future<Output = Result<Vec<Source>, LogsError>> + Send;

    /// One source's log.
    fn stream(
        &self,
        id: &str,
        read: Read,
    ) -> BoxStream<'_, Result<LogOutput, bollard::errors::Error>>;
}

/// The selected units' lines in time order, the last `tail` of each.
pub async fn fetch<S: LogSources>(
    s: &S,
    req: &Request,
    events: &dyn Events,
) -> Result<Vec<Line>, LogsError> {
    Ok(backlog(s, req, Utc::now(), events).await?.0)
}

/// Sends the backlog, then every new line as it comes, until `out` is closed.
pub async fn follow<S: LogSources>(
    s: &S,
    req: &Request,
    out: mpsc::Sender<Line>,
    events: &dyn Events,
) -> Result<(), LogsError> {
    let start = Utc::now();
    let (lines, mut seen) = backlog(s, req, start, events).await?;
    for l in lines {
        if out.send(l).await.is_err() {
            return Ok(());
        }
    }
    let (tx, mut rx) = mpsc::channel::<(String, Option<Line>)>(1024);
    let mut attached: HashSet<String> = HashSet::new();
    let mut readers = JoinSet::new();
    let mut poll = tokio::time::interval(S::POLL);
    poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = poll.tick() => {
                for src in s.sources().await?.into_iter().filter(|s| s.running) {
                    if attached.insert(src.id.clone()) {
                        let since = seen.last(&src.id).unwrap_or(start).timestamp();
                        readers.spawn(attach(s.clone(), src, since, tx.clone()));
                    }
                }
            }
            Some((id, line)) = rx.recv() => match line {
                Some(l) => {
                    if seen.admit(&id, l.time) && out.send(l).await.is_err() {
                        return Ok(());
                    }
                }
                // Its stream ended (it stopped): attached again if it runs again.
                None => {
                    attached.remove(&id);
                }
            },
            _ = out.closed() => return Ok(()),
        }
    }
}

/// Every selected source's lines (since `--since`, the last `--tail` of each
/// unit) merged in time order, and the last line seen of each source.
async fn backlog<S: LogSources>(
    s: &S,
    req: &Request,
    now: DateTime<Utc>,
    events: &dyn Events,
) -> Result<(Vec<Line>, Seen), LogsError> {
    let sources = s.sources().await?;
    let read = Read {
        since: req.since_at(now).unwrap_or(0),
        tail: req.tail,
        follow: false,
    };
    let reads = sources.iter().map(|src| read_all(s, src, read, events));
    let mut seen = Seen::default();
    let mut batches = Vec::new();
    for (src, lines) in sources
        .iter()
        .zip(futures_util::future::join_all(reads).await)
    {
        if let Some(last) = lines.last() {
            seen.admit(&src.id, last.time);
        }
        batches.push(lines);
    }
    let lines = line::merge(batches);
    Ok((
        match req.tail {
            Some(n) => line::tail(lines, n),
            None => lines,
        },
        seen,
    ))
}

/// One source's lines, without following: none when it is gone; what came
/// before an error or a silence of [`LogSources::READ_TIMEOUT`], with a note
/// (one unreadable source does not hide the others).
async fn read_all<S: LogSources>(
    s: &S,
    src: &Source,
    read: Read,
    events: &dyn Events,
) -> Vec<Line> {
    let mut stream = s.stream(&src.id, read);
    let mut lines = Lines::new(&src.unit);
    let trouble = loop {
        match tokio::time::timeout(S::READ_TIMEOUT, stream.next()).await {
            Ok(None) => break None,
            Ok(Some(Ok(c))) => lines.push(c),
            Ok(Some(Err(e))) if is_not_found(&e) => break None,
            Ok(Some(Err(e))) => break Some(e.to_string()),
            Err(_) => {
                break Some(format!(
                    "no answer for {}s (is its host down?)",
                    S::READ_TIMEOUT.as_secs()
                ))
            }
        }
    };
    if let Some(why) = trouble {
        events.event(Event::Note(&format!(
            "the log of {} ({}) could not be read whole: {why}",
            src.unit, src.id
        )));
    }
    lines.finish()
}

/// Follows one source, passing its lines on tagged with its id; `None` once it ends.
async fn attach<S: LogSources>(
    s: S,
    src: Source,
    since: i64,
    out: mpsc::Sender<(String, Option<Line>)>,
) {
    let read = Read {
        since,
        tail: None,
        follow: true,
    };
    let mut stream = s.stream(&src.id, read);
    let mut lines = Lines::new(&src.unit);
    while let Some(Ok(chunk)) = stream.next().await {
        lines.push(chunk);
        for l in lines.done.drain(..) {
            if out.send((src.id.clone(), Some(l))).await.is_err() {
                return;
            }
        }
    }
    for l in lines.finish() {
        let _ = out.send((src.id.clone(), Some(l))).await;
    }
    let _ = out.send((src.id, None)).await;
}

/// A source's chunks as lines of its unit (stdout and stderr reassembled apart).
struct Lines<'a> {
    unit: &'a str,
    out: Assembler,
    err: Assembler,
    last: Option<DateTime<Utc>>,
    done: Vec<Line>,
}

impl<'a> Lines<'a> {
    fn new(unit: &'a str) -> Lines<'a> {
        Lines {
            unit,
            out: Assembler::default(),
            err: Assembler::default(),
            last: None,
            done: Vec::new(),
        }
    }

    fn push(&mut self, chunk: LogOutput) {
        let raws = match chunk {
            LogOutput::StdErr { message } => self.err.push(&message),
            other => self.out.push(&other.into_bytes()),
        };
        for raw in raws {
            self.add(&raw);
        }
    }

    fn add(&mut self, raw: &str) {
        let (time, text) = match line::split_stamp(raw) {
            Some((t, text)) => (t, text),
            // A piece of a long entry the engine split: its entry's time.
            None => (self.last.unwrap_or_else(Utc::now), raw),
        };
        self.last = Some(time);
        self.done.push(Line {
            time,
            unit: self.unit.to_string(),
            text: text.to_string(),
        });
    }

    fn finish(mut self) -> Vec<Line> {
        for raw in [self.out.finish(), self.err.finish()].into_iter().flatten() {
            self.add(&raw);
        }
        self.done
    }
}

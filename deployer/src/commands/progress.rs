//! Progress on a terminal: one line per finished step, with the time since the
//! start, and a spinner while a step waits (only when stdout is a terminal).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::events::{Event, Events};
use crate::steps::Step;

pub struct Progress {
    start: Instant,
    multi: Option<indicatif::MultiProgress>,
    spinner: Mutex<Option<indicatif::ProgressBar>>,
}

impl Progress {
    pub fn new() -> Progress {
        use std::io::IsTerminal;
        Progress {
            start: Instant::now(),
            multi: std::io::stdout()
                .is_terminal()
                .then(indicatif::MultiProgress::new),
            spinner: Mutex::new(None),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    pub fn line(&self, msg: impl AsRef<str>) {
        let line = format!(
            "[{:>6.1}s] {}",
            self.start.elapsed().as_secs_f64(),
            msg.as_ref()
        );
        match &self.multi {
            Some(m) => {
                let _ = m.println(line);
            }
            None => println!("{line}"),
        }
    }

    fn spin(&self, msg: String) {
        let Some(m) = &self.multi else { return };
        let bar = m.add(indicatif::ProgressBar::new_spinner());
        bar.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {msg} {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        bar.set_message(msg);
        bar.enable_steady_tick(Duration::from_millis(100));
        if let Some(old) = self
            .spinner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(bar)
        {
            old.finish_and_clear();
        }
    }

    fn unspin(&self) {
        if let Some(bar) = self
            .spinner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            bar.finish_and_clear();
        }
    }
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

/// What is awaited while `step` runs, for the spinner.
fn waiting(step: &Step) -> Option<String> {
    match step {
        Step::WaitHealthy { names } => Some(format!(
            "{}: waiting for the health check",
            names.join(", ")
        )),
        Step::Drain { duration } => Some(format!("draining for {}s", duration.as_secs_f64())),
        Step::Stop { names, grace } => Some(format!(
            "{}: stopping (SIGTERM, up to {}s)",
            names.join(", "),
            grace.as_secs()
        )),
        Step::Migrate => Some("migrations: running `app migrate`".into()),
        Step::Deploy {
            service, replicas, ..
        } => Some(format!("{service}: rolling out {replicas} task(s)")),
        _ => None,
    }
}

/// The line printed when `step` is done (None when a note already said it).
fn done(step: &Step, took: Duration) -> Option<String> {
    let list = |n: &[String]| n.join(", ");
    let secs = took.as_secs_f64();
    Some(match step {
        Step::CreateNetwork { name } => format!("network {name}: created"),
        Step::CreateVolume { name } => format!("volume {name}: created"),
        Step::Create { names } => format!("{}: created, started", list(names)),
        Step::Start { names } => format!("{}: started", list(names)),
        Step::WaitHealthy { names } => format!("{}: healthy ({secs:.1}s)", list(names)),
        // The budget's figures came as a note.
        Step::CheckBudget => return None,
        Step::Migrate => format!("migrations: done ({secs:.1}s)"),
        Step::Rename { from, to } => format!("{from} → {to}"),
        Step::Reload { why, .. } => format!("nginx reloaded ({why})"),
        Step::Drain { duration } => format!("drained {}s", duration.as_secs_f64()),
        Step::Stop { names, .. } => format!("{}: stopped ({secs:.1}s)", list(names)),
        Step::Remove { names } => format!("{}: removed", list(names)),
        Step::Deploy {
            service,
            replicas,
            why,
        } => format!("{service}: {replicas} task(s) running, healthy ({why}, {secs:.1}s)"),
        Step::RemoveNetwork { name } => format!("network {name}: removed"),
        Step::RemoveVolume { name } => format!("volume {name}: removed"),
        Step::Guarded { why, .. } => format!("done: {why}"),
    })
}

impl Events for Progress {
    fn event(&self, event: Event<'_>) {
        match event {
            Event::Started(step) => {
                if let Some(msg) = waiting(step) {
                    self.spin(msg);
                }
            }
            Event::Finished(step, took) => {
                self.unspin();
                if let Some(line) = done(step, took) {
                    self.line(line);
                }
            }
            Event::RolledBack { why } => {
                self.unspin();
                self.line(format!("rolled back ({why})"));
            }
            Event::Note(note) => self.line(note),
        }
    }
}

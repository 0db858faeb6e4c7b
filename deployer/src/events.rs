//! What the library tells its caller while it works. The library never prints:
//! the command layer turns these into progress lines and spinners, tests
//! collect them, and `--json` callers may ignore them.

use std::time::Duration;

use crate::steps::Step;

#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// A step begins (a spinner may show while it runs).
    Started(&'a Step),
    /// A step finished after `elapsed`.
    Finished(&'a Step, Duration),
    /// A guarded group failed and its undo steps ran: the old state is back.
    RolledBack { why: &'a str },
    /// Something worth a line that is not a step (e.g. the live budget figures).
    Note(&'a str),
}

pub trait Events: Sync {
    fn event(&self, event: Event<'_>);
}

/// Ignores every event.
pub struct Silent;

impl Events for Silent {
    fn event(&self, _: Event<'_>) {}
}

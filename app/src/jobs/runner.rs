//! A node's job workers: a producer that claims jobs when slots are free, woken by LISTEN/NOTIFY
//! (with polling as the fallback); a heartbeat that renews the leases of running jobs; a rescuer
//! that puts back jobs whose lease expired; and a completer that acknowledges finished jobs in
//! batches.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::{mpsc, watch, Notify, Semaphore};
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use super::queue::{self, FetchedJob};
use super::workers;
use crate::config::JobSettings;
use crate::metrics::Metrics;

/// The channel the insert trigger notifies.
pub const CHANNEL: &str = "jobs_inserted";

/// The most acknowledgements written in one statement.
const ACK_BATCH: usize = 512;

/// How long the producer keeps gathering free slots after the first before it fetches, and the
/// completer keeps gathering acknowledgements before it writes them: a round trip then claims
/// or acknowledges a batch rather than a job or two (Oban's dispatch cooldown plays this part,
/// 5 ms there). Short jobs free every slot well within it; long ones wait at most this long.
const COALESCE: Duration = Duration::from_millis(1);

pub struct JobRunner {
    pool: PgPool,
    listener_pool: PgPool,
    node: Arc<str>,
    settings: JobSettings,
    metrics: Metrics,
}

/// The outcome of one attempt, waiting to be written.
struct Ack {
    id: i64,
    attempt: i32,
    result: Result<(), String>,
}

/// An attempt this node holds, from its fetch until its outcome is written: its lease is
/// renewed all that time, so an acknowledgement that waits behind a slow database never lets
/// the lease lapse (and the job run again elsewhere) after the job has already run here.
struct Held {
    attempt: i32,
    /// The task running it, once spawned.
    task: Option<AbortHandle>,
    /// It ran; its outcome waits to be written.
    finished: bool,
}

/// The attempts this node holds, by job id.
type Running = Arc<Mutex<HashMap<i64, Held>>>;

/// Forgets held attempts whose outcome was written (or given up on).
fn release(running: &Running, done: impl IntoIterator<Item = (i64, i32)>) {
    let mut running = running.lock().expect("lock");
    for (id, attempt) in done {
        if running.get(&id).is_some_and(|held| held.attempt == attempt) {
            running.remove(&id);
        }
    }
}

/// How much of a maintenance round pruning may take before it leaves the rest for the next.
const PRUNE_BUDGET: Duration = Duration::from_millis(500);

/// The most attempts a node holds at once, running or waiting for their outcome to be written:
/// when acknowledgements fall behind, the producer stops fetching rather than claiming jobs
/// whose leases it would then have to keep renewing.
const MAX_HELD: usize = ACK_BATCH;

impl JobRunner {
    pub fn new(
        pool: PgPool,
        listener_pool: PgPool,
        node: &str,
        settings: JobSettings,
        metrics: Metrics,
    ) -> Self {
        Self {
            pool,
            listener_pool,
            node: Arc::from(node),
            settings,
            metrics,
        }
    }

    /// Runs until `stop` turns true, then stops fetching, lets running jobs finish until
    /// `drain` has passed, hands the rest back to the queue and returns.
    pub async fn run(self, mut stop: watch::Receiver<bool>, drain: Duration) {
        let wake = Arc::new(Notify::new());
        let running: Running = Arc::default();
        let (acks, ack_rx) = mpsc::unbounded_channel::<Ack>();

        let mut background = JoinSet::new();
        background.spawn(listen(self.listener_pool.clone(), Arc::clone(&wake)));
        background.spawn(heartbeat(
            self.pool.clone(),
            Arc::clone(&self.node),
            Arc::clone(&running),
            self.settings.lease,
        ));
        background.spawn(maintain(
            self.pool.clone(),
            Arc::clone(&wake),
            self.settings,
            self.metrics.clone(),
        ));
        let completer = tokio::spawn(complete(
            self.pool.clone(),
            Arc::clone(&self.node),
            Arc::clone(&running),
            ack_rx,
            self.settings.backoff_base,
            Arc::clone(&wake),
        ));
        // Dropping the runner's future (a killed node) must not leave the completer running.
        let completer = AbortOnDrop(Some(completer));

        let mut tasks = JoinSet::new();
        self.produce(&mut stop, &wake, &running, &acks, &mut tasks)
            .await;

        // Draining: no more fetching; running jobs get until the deadline.
        let deadline = Instant::now() + drain;
        let finished = tokio::time::timeout_at(deadline, async {
            while tasks.join_next().await.is_some() {}
        })
        .await
        .is_ok();
        if !finished {
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
            let unfinished: Vec<i64> = running
                .lock()
                .expect("lock")
                .iter()
                .filter(|(_, held)| !held.finished)
                .map(|(id, _)| *id)
                .collect();
            match queue::hand_back(&self.pool, &self.node, &unfinished).await {
                Ok(count) => tracing::warn!(count, "handed unfinished jobs back to the queue"),
                Err(error) => tracing::error!(
                    error = %error,
                    "failed to hand unfinished jobs back; their leases will expire"
                ),
            }
        }
        drop(acks);
        completer.join().await;
        background.abort_all();
        tracing::info!("job workers stopped");
    }

    async fn produce(
        &self,
        stop: &mut watch::Receiver<bool>,
        wake: &Notify,
        running: &Running,
        acks: &mpsc::UnboundedSender<Ack>,
        tasks: &mut JoinSet<()>,
    ) {
        let workers = self.settings.workers;
        let slots = Arc::new(Semaphore::new(workers));
        let mut failures = 0u32;
        loop {
            if *stop.borrow() {
                return;
            }
            while tasks.try_join_next().is_some() {}
            // Backpressure: while many outcomes wait to be written (a slow database), fetch
            // nothing more; the completer wakes us once it has written some.
            if running.lock().expect("lock").len() >= MAX_HELD {
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(self.settings.poll_interval) => {}
                    _ = stop.changed() => return,
                }
                continue;
            }
            let first = tokio::select! {
                permit = Arc::clone(&slots).acquire_owned() => permit.expect("never closed"),
                _ = stop.changed() => return,
            };
            let mut permits = vec![first];
            let gather_until = Instant::now() + COALESCE;
            while permits.len() < workers {
                let permit = match Arc::clone(&slots).try_acquire_owned() {
                    Ok(permit) => permit,
                    Err(_) => {
                        let next = Arc::clone(&slots).acquire_owned();
                        match tokio::time::timeout_at(gather_until, next).await {
                            Ok(permit) => permit.expect("never closed"),
                            Err(_) => break,
                        }
                    }
                };
                permits.push(permit);
            }
            let held = running.lock().expect("lock").len();
            permits.truncate(MAX_HELD.saturating_sub(held).max(1));
            let wanted = permits.len();
            let jobs = match queue::fetch(&self.pool, &self.node, wanted, self.settings.lease).await
            {
                Ok(jobs) => {
                    failures = 0;
                    jobs
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(error = %error, "failed to fetch jobs");
                    drop(permits);
                    let pause = Duration::from_millis(200 * u64::from(failures.min(25)));
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => {}
                        _ = stop.changed() => return,
                    }
                    continue;
                }
            };
            let fetched = jobs.len();
            {
                let mut running = running.lock().expect("lock");
                for job in &jobs {
                    running.insert(
                        job.id,
                        Held {
                            attempt: job.attempts,
                            task: None,
                            finished: false,
                        },
                    );
                }
            }
            for (job, permit) in jobs.into_iter().zip(permits.drain(..)) {
                let pool = self.pool.clone();
                let acks = acks.clone();
                let (id, attempt) = (job.id, job.attempts);
                let task_running = Arc::clone(running);
                let handle = tasks.spawn(async move {
                    let _permit = permit;
                    execute(&pool, job, &acks, &task_running).await;
                });
                // The heartbeat aborts the task through this if the attempt stops being ours;
                // a task that already finished has removed its entry.
                if let Some(held) = running.lock().expect("lock").get_mut(&id) {
                    if held.attempt == attempt {
                        held.task = Some(handle);
                    }
                }
            }
            drop(permits);
            if fetched < wanted {
                // The queue looks empty: sleep until a notification, the poll or a stop.
                tokio::select! {
                    _ = wake.notified() => {}
                    _ = tokio::time::sleep(self.settings.poll_interval) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    }
}

async fn execute(
    pool: &PgPool,
    job: FetchedJob,
    acks: &mpsc::UnboundedSender<Ack>,
    running: &Running,
) {
    let started = std::time::Instant::now();
    let (id, attempt) = (job.id, job.attempts);
    let outcome = AssertUnwindSafe(workers::perform(pool, &job))
        .catch_unwind()
        .await;
    let result = match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(format!("{error:#}")),
        Err(_) => Err("the job panicked".to_owned()),
    };
    let label = if result.is_ok() {
        "completed"
    } else {
        "failed"
    };
    metrics::counter!("jobs_executed_total", "kind" => job.kind.clone(), "outcome" => label)
        .increment(1);
    metrics::histogram!("job_duration_seconds", "kind" => job.kind.clone())
        .record(started.elapsed().as_secs_f64());
    if let Err(error) = &result {
        tracing::warn!(job = job.id, kind = %job.kind, attempt = job.attempts, error = %error, "job failed");
    }
    // Still held (and its lease renewed) until the completer has written the outcome.
    if let Some(held) = running.lock().expect("lock").get_mut(&id) {
        if held.attempt == attempt {
            held.finished = true;
        }
    }
    let _ = acks.send(Ack {
        id: job.id,
        attempt: job.attempts,
        result,
    });
}

/// Writes acknowledgements: completions in batches, failures one by one (they are rare).
async fn complete(
    pool: PgPool,
    node: Arc<str>,
    running: Running,
    mut acks: mpsc::UnboundedReceiver<Ack>,
    backoff_base: Duration,
    wake: Arc<Notify>,
) {
    let mut batch = Vec::with_capacity(ACK_BATCH);
    while acks.recv_many(&mut batch, ACK_BATCH).await > 0 {
        if batch.len() < ACK_BATCH {
            // Let the jobs finishing about now join this statement.
            tokio::time::sleep(COALESCE).await;
            while batch.len() < ACK_BATCH {
                match acks.try_recv() {
                    Ok(ack) => batch.push(ack),
                    Err(_) => break,
                }
            }
        }
        let mut done = Vec::with_capacity(batch.len());
        for ack in batch.drain(..) {
            match ack.result {
                Ok(()) => done.push((ack.id, ack.attempt)),
                Err(error) => {
                    let backoff = queue::backoff(backoff_base, ack.attempt);
                    let failed =
                        queue::fail(&pool, &node, ack.id, ack.attempt, &error, backoff).await;
                    release(&running, [(ack.id, ack.attempt)]);
                    match failed {
                        Ok(Some(state)) => {
                            tracing::debug!(job = ack.id, state = state.as_str(), "job failed")
                        }
                        Ok(None) => {}
                        Err(error) => {
                            tracing::error!(job = ack.id, error = %error, "failed to record a job failure")
                        }
                    }
                }
            }
        }
        if done.is_empty() {
            continue;
        }
        let mut tries = 0;
        loop {
            match queue::complete(&pool, &node, &done).await {
                Ok(_) => {
                    release(&running, done.iter().copied());
                    break;
                }
                Err(error) if tries < 5 => {
                    tries += 1;
                    tracing::warn!(error = %error, "failed to acknowledge jobs; retrying");
                    tokio::time::sleep(Duration::from_millis(100 * tries)).await;
                }
                Err(error) => {
                    tracing::error!(
                        error = %error,
                        count = done.len(),
                        "failed to acknowledge jobs; they will run again after their lease expires"
                    );
                    release(&running, done.iter().copied());
                    break;
                }
            }
        }
        // Slots freed while we wrote: make sure the producer looks again.
        wake.notify_one();
    }
}

/// Keeps the one LISTEN connection and turns notifications into wake-ups.
async fn listen(pool: PgPool, wake: Arc<Notify>) {
    loop {
        match PgListener::connect_with(&pool).await {
            Ok(mut listener) => {
                if let Err(error) = listener.listen(CHANNEL).await {
                    tracing::warn!(error = %error, "failed to LISTEN for jobs");
                } else {
                    tracing::debug!("listening for new jobs");
                    // Jobs may have arrived while we were not listening.
                    wake.notify_one();
                    loop {
                        match listener.recv().await {
                            Ok(_) => wake.notify_one(),
                            Err(error) => {
                                tracing::warn!(error = %error, "lost the LISTEN connection");
                                break;
                            }
                        }
                    }
                }
            }
            Err(error) => tracing::warn!(error = %error, "failed to open the LISTEN connection"),
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// How often the heartbeat renews leases: four times per lease, so three beats in a row may
/// fail (a slow database, a busy node) before another node may take the job.
pub fn heartbeat_period(lease: Duration) -> Duration {
    lease / 4
}

/// Renews the leases of this node's running attempts, and stops the attempts it no longer
/// holds: when a lease lapsed anyway (the node could not reach the database for longer than
/// the lease) another node has rescued the job, and running on here would run it twice.
async fn heartbeat(pool: PgPool, node: Arc<str>, running: Running, lease: Duration) {
    let mut ticks = tokio::time::interval(heartbeat_period(lease));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let mine: Vec<(i64, i32)> = running
            .lock()
            .expect("lock")
            .iter()
            .map(|(id, held)| (*id, held.attempt))
            .collect();
        if mine.is_empty() {
            continue;
        }
        let renewed = match queue::heartbeat(&pool, &node, &mine, lease).await {
            Ok(renewed) => renewed,
            Err(error) => {
                tracing::warn!(error = %error, "failed to renew job leases");
                continue;
            }
        };
        if renewed.len() == mine.len() {
            continue;
        }
        let renewed: std::collections::HashSet<i64> = renewed.into_iter().collect();
        let mut running = running.lock().expect("lock");
        for (id, attempt) in mine {
            if renewed.contains(&id) {
                continue;
            }
            // Still held here (not just written): the attempt is not ours anymore. Stop it if it
            // still runs; a finished one's acknowledgement will change nothing (it is guarded
            // by the attempt).
            // (A finished one may just have been written by the completer: nothing to say.)
            if running.get(&id).is_some_and(|held| held.attempt == attempt) {
                let held = running.remove(&id).expect("present");
                if !held.finished {
                    if let Some(task) = held.task {
                        task.abort();
                    }
                    tracing::warn!(
                        job = id,
                        attempt,
                        "lost the lease of a running job (another node took it); stopped it here"
                    );
                }
            }
        }
    }
}

/// How often a node looks for lapsed leases (and prunes): four times per lease, so a dead
/// node's job runs again at most about a lease and a quarter after its last heartbeat.
pub fn maintenance_period(lease: Duration) -> Duration {
    (lease / 4).clamp(Duration::from_millis(200), Duration::from_secs(5))
}

/// Periodic chores any node may do: rescue jobs with expired leases, prune old jobs, the
/// outbox and rate-limit counters, keep the metrics histograms drained.
async fn maintain(pool: PgPool, wake: Arc<Notify>, settings: JobSettings, metrics: Metrics) {
    let period = maintenance_period(settings.lease);
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut rounds = 0u64;
    loop {
        ticks.tick().await;
        rounds = (rounds + 1) % 60;
        match queue::rescue(&pool).await {
            Ok(0) => {}
            Ok(count) => {
                tracing::warn!(count, "rescued jobs whose lease expired");
                wake.notify_one();
            }
            Err(error) => tracing::warn!(error = %error, "failed to rescue jobs"),
        }
        metrics.upkeep();
        if rounds == 0 {
            if let Err(error) = crate::rate_limit::prune_postgres(&pool).await {
                tracing::warn!(error = %error, "failed to prune login failures");
            }
        }
        prune(&pool, settings.retention).await;
    }
}

/// Prunes finished jobs and old outbox emails a batch at a time until none are left or the
/// round's budget is spent: every round, so pruning keeps up with a queue that finishes
/// thousands of jobs a second (a batch takes milliseconds).
async fn prune(pool: &PgPool, retention: Duration) {
    let started = Instant::now();
    for table in ["jobs", "outbox_emails"] {
        let mut total = 0;
        loop {
            let pruned = match table {
                "jobs" => queue::prune(pool, retention).await,
                _ => queue::prune_outbox(pool, retention).await,
            };
            match pruned {
                Ok(count) => {
                    total += count;
                    if count < queue::PRUNE_BATCH as u64 || started.elapsed() > PRUNE_BUDGET {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %error, table, "failed to prune");
                    break;
                }
            }
        }
        if total > 0 {
            tracing::debug!(count = total, table, "pruned");
        }
    }
}

/// A task handle that aborts the task when dropped.
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl AbortOnDrop {
    async fn join(mut self) {
        if let Some(handle) = self.0.take() {
            let _ = handle.await;
        }
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = &self.0 {
            handle.abort();
        }
    }
}

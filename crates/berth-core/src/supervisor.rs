//! Background work under one owner: every long-running task (scheduled GC, lifecycle, scrub,
//! pull flushes, scan workers, …) is started here, restarted with a growing delay when it
//! panics or returns an error, listed with its state, and stopped and awaited at shutdown.
//! One-shot tasks (a lifecycle preview) run in the same set, so shutdown ends them too.
//! Tasks that work in runs (a scheduled GC pass, a backup) wrap each run in `track_run`, so
//! `runs()` can tell a busy task from an idle one and say when it last ran and how it ended.

use std::collections::BTreeMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::FutureExt;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What happens when a task's future ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Started again whether it returned `Ok`, an error or panicked (a task meant to run forever).
    Always,
    /// Started again after an error or a panic; `Ok` means done (stopped).
    OnFailure,
}

/// The delay before a restart: `initial`, doubled after each failure up to `max`; a run that
/// lasted at least `max` starts the doubling over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { initial: Duration::from_secs(1), max: Duration::from_secs(60) }
    }
}

impl Backoff {
    /// The delay after `failures` consecutive failures (1 = the first).
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 1u32.checked_shl(failures.saturating_sub(1)).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskState {
    Running,
    /// Waiting out the backoff before its next start.
    BackingOff,
    /// Ended (done, or stopped by shutdown).
    Stopped,
}

/// One supervised task as `Supervisor::status` reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStatus {
    pub name: String,
    pub state: TaskState,
    /// How many times it was started again after ending.
    pub restarts: u64,
    pub last_error: Option<String>,
}

/// What the runs of the tasks of one name did (see `Supervisor::track_run`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunRecord {
    /// Runs under way now (tasks of one name may run side by side).
    pub in_progress: u32,
    /// Unix milliseconds of the start of the latest run.
    pub last_started_millis: Option<i64>,
    /// Unix milliseconds of the end of the latest finished run.
    pub last_finished_millis: Option<i64>,
    /// Unix milliseconds of the end of the latest run that succeeded.
    pub last_success_millis: Option<i64>,
    /// The latest run's error; None when it succeeded.
    pub last_error: Option<String>,
    pub succeeded: u64,
    pub failed: u64,
}

/// An error a task returns; anything printable.
pub type TaskError = Box<dyn std::fmt::Display + Send + Sync>;
pub type TaskResult = Result<(), TaskError>;

pub struct Supervisor {
    cancel: CancellationToken,
    tasks: Mutex<JoinSet<()>>,
    /// One row per started task, in start order (several may share a name: scan workers).
    status: Arc<Mutex<BTreeMap<u64, TaskStatus>>>,
    runs: Mutex<BTreeMap<String, RunRecord>>,
    started: AtomicU64,
    backoff: Backoff,
}

impl Default for Supervisor {
    fn default() -> Self {
        Supervisor::new(Backoff::default())
    }
}

impl Supervisor {
    pub fn new(backoff: Backoff) -> Self {
        Supervisor {
            cancel: CancellationToken::new(),
            tasks: Mutex::new(JoinSet::new()),
            status: Default::default(),
            runs: Default::default(),
            started: AtomicU64::new(0),
            backoff,
        }
    }

    /// Cancelled when shutdown begins: tasks may watch it to stop at a safe point (they are
    /// dropped at their next await otherwise).
    pub fn cancelled(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Starts `factory()`'s future as a task called `name` (a closed set of names: they become
    /// metric labels; tasks of one name run side by side, each with its own status row). Must be
    /// called inside a tokio runtime.
    pub fn start<F, Fut>(&self, name: &str, restart: Restart, factory: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = TaskResult> + Send + 'static,
    {
        let status = self.status.clone();
        let id = self.started.fetch_add(1, Ordering::Relaxed);
        lock(&status).insert(id, TaskStatus { name: name.to_string(), state: TaskState::Running, restarts: 0, last_error: None });
        let (name, cancel, backoff) = (name.to_string(), self.cancel.clone(), self.backoff);
        let supervised = async move {
            let mut failures = 0u32;
            loop {
                let started = Instant::now();
                let outcome = tokio::select! {
                    _ = cancel.cancelled() => break,
                    outcome = AssertUnwindSafe(factory()).catch_unwind() => outcome,
                };
                let error = match outcome {
                    Ok(Ok(())) if restart == Restart::OnFailure => break,
                    Ok(Ok(())) => None,
                    Ok(Err(e)) => Some(e.to_string()),
                    Err(panic) => Some(panic_message(panic.as_ref())),
                };
                if started.elapsed() >= backoff.max {
                    failures = 0;
                }
                failures = failures.saturating_add(1);
                let delay = backoff.delay(failures);
                if let Some(e) = &error {
                    tracing::error!(task = %name, error = %e, retry_in_ms = delay.as_millis() as u64, "background task failed; restarting");
                }
                update(&status, id, |s| {
                    s.state = TaskState::BackingOff;
                    s.last_error = error.or(s.last_error.take());
                });
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(delay) => {}
                }
                update(&status, id, |s| {
                    s.state = TaskState::Running;
                    s.restarts += 1;
                });
            }
            update(&status, id, |s| s.state = TaskState::Stopped);
        };
        self.spawn(supervised);
    }

    /// Runs `task` once in the supervised set (stopped at shutdown, never restarted, not listed).
    pub fn run_once(&self, task: impl Future<Output = ()> + Send + 'static) {
        let cancel = self.cancel.clone();
        self.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = task => {}
            }
        });
    }

    fn spawn(&self, task: impl Future<Output = ()> + Send + 'static) {
        let mut tasks = lock(&self.tasks);
        // Reap what has ended, so one-shot tasks do not accumulate.
        while tasks.try_join_next().is_some() {}
        tasks.spawn(task);
    }

    /// Runs `run` as one run of the task `name` (a closed set of names, as for `start`),
    /// recording when it started and ended and its error; answers what it answered.
    pub async fn track_run<T, E: std::fmt::Display>(&self, name: &str, run: impl Future<Output = Result<T, E>>) -> Result<T, E> {
        {
            let mut runs = lock(&self.runs);
            let r = runs.entry(name.to_string()).or_default();
            r.in_progress += 1;
            r.last_started_millis = Some(now_millis());
        }
        // A run dropped part-way (shutdown) still ends its "in progress".
        struct Ending<'a>(&'a Supervisor, &'a str, Option<Result<(), String>>);
        impl Drop for Ending<'_> {
            fn drop(&mut self) {
                let mut runs = lock(&self.0.runs);
                let Some(r) = runs.get_mut(self.1) else { return };
                r.in_progress = r.in_progress.saturating_sub(1);
                let Some(outcome) = self.2.take() else { return };
                let now = now_millis();
                r.last_finished_millis = Some(now);
                match outcome {
                    Ok(()) => {
                        r.last_success_millis = Some(now);
                        r.last_error = None;
                        r.succeeded += 1;
                    }
                    Err(e) => {
                        r.last_error = Some(e);
                        r.failed += 1;
                    }
                }
            }
        }
        let mut ending = Ending(self, name, None);
        let result = run.await;
        ending.2 = Some(result.as_ref().map(|_| ()).map_err(|e| e.to_string()));
        drop(ending);
        result
    }

    /// What the tracked runs did, by task name.
    pub fn runs(&self) -> BTreeMap<String, RunRecord> {
        lock(&self.runs).clone()
    }

    /// Every task started, in start order.
    pub fn status(&self) -> Vec<TaskStatus> {
        lock(&self.status).values().cloned().collect()
    }

    /// Cancels every task and waits up to `deadline` for them to end; what is still running then
    /// is aborted. True when all ended in time.
    pub async fn shutdown(&self, deadline: Duration) -> bool {
        self.cancel.cancel();
        let mut tasks = std::mem::take(&mut *lock(&self.tasks));
        let all_ended = tokio::time::timeout(deadline, async { while tasks.join_next().await.is_some() {} }).await.is_ok();
        if !all_ended {
            tracing::warn!(still_running = tasks.len(), "background tasks did not stop in time; aborting them");
            tasks.shutdown().await;
        }
        all_ended
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        // The JoinSet aborts its tasks as it drops; the token tells any they handed it to.
        self.cancel.cancel();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn update(status: &Mutex<BTreeMap<u64, TaskStatus>>, id: u64, change: impl FnOnce(&mut TaskStatus)) {
    if let Some(s) = lock(status).get_mut(&id) {
        change(s);
    }
}

fn now_millis() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    let text = panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned());
    format!("panicked: {}", text.unwrap_or_else(|| "(no message)".into()))
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicU32;

    use super::*;

    fn failing_after(runs: Arc<AtomicU32>, ok_from: u32) -> impl Fn() -> std::pin::Pin<Box<dyn Future<Output = TaskResult> + Send>> {
        move || {
            let runs = runs.clone();
            Box::pin(async move {
                let n = runs.fetch_add(1, Ordering::SeqCst) + 1;
                if n == 2 {
                    panic!("run {n} broke");
                }
                if n < ok_from {
                    return Err(Box::new(format!("run {n} failed")) as TaskError);
                }
                Ok(())
            })
        }
    }

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let b = Backoff::default();
        let secs: Vec<u64> = (1..=9).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(b.delay(200), Duration::from_secs(60));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failing_task_is_restarted_with_backoff_until_it_succeeds() {
        let sup = Supervisor::default();
        let runs = Arc::new(AtomicU32::new(0));
        let t0 = Instant::now();
        sup.start("flaky", Restart::OnFailure, failing_after(runs.clone(), 4));
        tokio::task::yield_now().await;
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let s = &sup.status()[0];
        assert_eq!((s.state, s.restarts, s.last_error.as_deref()), (TaskState::BackingOff, 0, Some("run 1 failed")));

        // 1 s, then 2 s (after the panic), then 4 s: the fourth run succeeds and the task stops.
        tokio::time::sleep(Duration::from_millis(999)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 1, "not before its backoff");
        tokio::time::sleep(Duration::from_millis(2)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 2);
        assert_eq!(sup.status()[0].last_error.as_deref(), Some("panicked: run 2 broke"));
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 3);
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert_eq!(runs.load(Ordering::SeqCst), 4);
        assert_eq!(t0.elapsed().as_secs(), 7);
        let s = &sup.status()[0];
        assert_eq!((s.name.as_str(), s.state, s.restarts), ("flaky", TaskState::Stopped, 3));
        assert!(sup.shutdown(Duration::from_secs(1)).await);
    }

    #[tokio::test]
    async fn tracked_runs_record_their_outcome() {
        let sup = Supervisor::default();
        let ok: Result<u32, String> = sup.track_run("gc", async { Ok(7) }).await;
        assert_eq!(ok, Ok(7));
        let r = &sup.runs()["gc"];
        assert_eq!((r.in_progress, r.succeeded, r.failed, r.last_error.as_deref()), (0, 1, 0, None));
        assert!(r.last_success_millis.is_some() && r.last_finished_millis == r.last_success_millis);

        let failed: Result<(), String> = sup.track_run("gc", async { Err("disk full".to_string()) }).await;
        assert!(failed.is_err());
        let r = &sup.runs()["gc"];
        assert_eq!((r.succeeded, r.failed, r.last_error.as_deref()), (1, 1, Some("disk full")));

        // A run under way counts as in progress; one dropped part-way ends it without an outcome.
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let pending = sup.track_run("backup", async move {
            let _ = rx.await;
            Ok::<(), String>(())
        });
        let mut pending = Box::pin(pending);
        assert!(futures::poll!(pending.as_mut()).is_pending());
        assert_eq!(sup.runs()["backup"].in_progress, 1);
        drop(pending);
        drop(tx);
        let r = &sup.runs()["backup"];
        assert_eq!((r.in_progress, r.succeeded, r.failed, r.last_finished_millis), (0, 0, 0, None));
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_stops_running_and_backing_off_tasks() {
        let sup = Supervisor::default();
        sup.start("forever", Restart::Always, || async {
            std::future::pending::<()>().await;
            Ok(())
        });
        sup.start("failing", Restart::Always, || async { Err(Box::new("no") as TaskError) });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        sup.run_once(async move {
            std::future::pending::<()>().await;
            drop(tx);
        });
        tokio::task::yield_now().await;
        let states: Vec<_> = sup.status().iter().map(|s| (s.name.clone(), s.state)).collect();
        assert_eq!(states, [("forever".to_string(), TaskState::Running), ("failing".to_string(), TaskState::BackingOff)]);

        assert!(sup.shutdown(Duration::from_secs(5)).await);
        assert!(sup.status().iter().all(|s| s.state == TaskState::Stopped));
        assert!(rx.await.is_err(), "the one-shot task was dropped");
    }
}

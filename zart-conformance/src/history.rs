//! Random histories checked against a model.
//!
//! A seeded generator draws a sequence of operations on one fresh store: starts (new, repeated
//! and conflicting ids), claims by two fake workers, step commits, completions and failures,
//! sleeps, event waits, child executions (started by a holder, its parent woken by their end,
//! cancels and failures cascading to them) and the resumption of each wait after a claim,
//! events sent, cancels, releases, heartbeats, worker "crashes" (a worker forgets its leases;
//! the store still holds them until they expire and another claim takes over), writes under
//! stale leases, restarts of the backend (a new scheduler on the same store, when the fixture
//! can make one) and moves of the store's clock. Every
//! operation's answer is checked against a small reference model of what the contract says must
//! happen, and after every operation every execution's status, claim count and recorded steps
//! are compared with the model. A failure names its seed; [`run_history`] with that seed replays
//! the same history exactly (the generator is a SplitMix64 stream, not a library RNG whose
//! algorithm could change).
//!
//! Times are whole multiples of 30 s, and the store's clock only moves by the fixture, so the
//! few milliseconds of real time a history takes never decide whether something is due.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::{json, Value};
use zart::scheduler::{
    AwaitEventParams, ChildWait, ClaimTasksParams, ClaimedTask, CommitStepParams,
    CompleteExecutionParams, DynScheduler, EventWait, HeartbeatParams, Lease, Outcome,
    ReleaseTasksParams, SendEventParams, SleepParams, StartChildParams, StartExecutionParams,
    StepStatus, WakeAt,
};
use zart::{Error, ErrorRecord, ExecutionStatus, Scheduler};

use crate::{Backend, Harness};

/// The lease every claim of a history takes.
const LEASE: i64 = 600_000;
/// The ids a history starts (few, so repeats, conflicts and events on busy ids are common).
const IDS: usize = 5;
/// The fake workers.
const WORKERS: usize = 2;
/// The task name of every execution (no real worker runs it).
const TASK: &str = "history";

/// What a history checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HistoryReport {
    /// Operations run (each one's answer checked).
    pub operations: usize,
    /// Store-wide comparisons with the model (one after each operation).
    pub checks: usize,
    /// Restarts of the backend (0 when the fixture cannot reopen the store).
    pub restarts: usize,
    /// Child executions started.
    pub children: usize,
}

/// SplitMix64: a small, fixed generator, so a seed replays the same history on any build.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What a recorded step row must look like.
#[derive(Debug, Clone, PartialEq)]
struct ModelStep {
    name: String,
    seq: u32,
    /// `None`: `waiting` or `completed` are both allowed (a sleep whose time came may be ended
    /// by the claim; an event handed over may be recorded at once).
    status: Option<StepStatus>,
}

/// The open wait of an execution.
#[derive(Debug, Clone, PartialEq)]
enum Wait {
    Sleep {
        step: String,
        seq: u32,
        until: i64,
    },
    Event {
        step: String,
        seq: u32,
        name: String,
        delivered: Option<Value>,
    },
    Child {
        step: String,
        seq: u32,
        child_id: String,
    },
}

/// One execution as the contract says it must be.
#[derive(Debug, Clone)]
struct Model {
    input: i64,
    status: ExecutionStatus,
    attempts: u32,
    /// The lease a claim holds, with its expiry (model time).
    lease: Option<(Lease, i64)>,
    /// When the task is due, while no lease holds it (`None`: not until an event).
    due_at: Option<i64>,
    steps: Vec<ModelStep>,
    /// Unconsumed events, in arrival order.
    events: Vec<(String, Value)>,
    wait: Option<Wait>,
    /// Event waits opened per name (their step names count up, as `ctx.wait_for_event`'s).
    waits_per_name: BTreeMap<String, u32>,
    /// The parent, for a child execution.
    parent: Option<String>,
}

impl Model {
    fn finished(&self) -> bool {
        matches!(
            self.status,
            ExecutionStatus::Completed | ExecutionStatus::Failed | ExecutionStatus::Cancelled
        )
    }

    fn next_seq(&self) -> u32 {
        self.steps.iter().map(|s| s.seq + 1).max().unwrap_or(0)
    }

    /// Whether a write under `lease` is accepted now.
    fn holds(&self, lease: &Lease) -> bool {
        !self.finished()
            && self
                .lease
                .as_ref()
                .is_some_and(|(l, _)| l.fence == lease.fence)
    }

    /// The error a write under a lease not held gets.
    fn refusal(&self) -> &'static str {
        if self.status == ExecutionStatus::Cancelled {
            "cancelled"
        } else {
            "lease_lost"
        }
    }

    fn due(&self, now: i64) -> bool {
        !self.finished()
            && match &self.lease {
                Some((_, expires)) => *expires <= now,
                None => self.due_at.is_some_and(|at| at <= now),
            }
    }

    /// Gives the lease up and suspends: due at `due_at` (or never, for `None`).
    fn suspend(&mut self, status: ExecutionStatus, due_at: Option<i64>) {
        self.status = status;
        self.lease = None;
        self.due_at = due_at;
    }

    fn step_mut(&mut self, name: &str) -> Option<&mut ModelStep> {
        self.steps.iter_mut().find(|s| s.name == name)
    }
}

/// One history in progress.
struct History<'a> {
    scheduler: DynScheduler,
    harness: &'a Harness,
    rng: Rng,
    now: i64,
    models: BTreeMap<String, Model>,
    /// The leases each fake worker believes it holds (stale ones included).
    held: [Vec<Lease>; WORKERS],
    /// Every lease ever claimed, for writes by zombies.
    every_lease: Vec<Lease>,
    counter: u64,
    log: String,
    report: HistoryReport,
}

/// Runs one history of `operations` operations with `seed` on a fresh store of `backend`.
///
/// # Errors
/// The first difference between the store and the model, with the operations that led to it.
pub async fn run_history(
    backend: &impl Backend,
    seed: u64,
    operations: usize,
) -> Result<HistoryReport, String> {
    let harness = backend.fresh().await;
    let mut history = History {
        scheduler: harness.scheduler().clone(),
        harness: &harness,
        rng: Rng(seed),
        now: 0,
        models: BTreeMap::new(),
        held: Default::default(),
        every_lease: Vec::new(),
        counter: 0,
        log: String::new(),
        report: HistoryReport::default(),
    };
    let mut report = HistoryReport::default();
    for step in 0..operations {
        let result = history.step().await;
        report.operations += 1;
        let result = match result {
            Ok(()) => history.check().await,
            Err(e) => Err(e),
        };
        if let Err(problem) = result {
            return Err(format!(
                "history seed {seed}, operation {step}: {problem}\noperations so far:\n{}",
                history.log
            ));
        }
        report.checks += 1;
    }
    report.restarts = history.report.restarts;
    report.children = history.report.children;
    if std::env::var_os("ZART_HISTORY_LOG").is_some() {
        eprintln!("history seed {seed}:\n{}", history.log);
    }
    Ok(report)
}

fn code(result: &Result<impl std::fmt::Debug, Error>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.code(),
    }
}

/// The answer to a write under `lease`: the model's refusal when the lease is not held (then
/// `None`), else the value, which must be there.
fn answer<T: std::fmt::Debug>(
    model: &Model,
    lease: &Lease,
    what: &str,
    got: Result<T, Error>,
) -> Result<Option<T>, String> {
    if !model.holds(lease) {
        return expect(what, code(&got), model.refusal()).map(|()| None);
    }
    got.map(Some).map_err(|e| format!("{what}: {e}"))
}

fn expect(what: &str, got: &'static str, want: &'static str) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: got {got}, the model says {want}"))
    }
}

impl History<'_> {
    fn say(&mut self, line: String) {
        let _ = writeln!(self.log, "  {line}");
    }

    fn fresh_payload(&mut self) -> Value {
        self.counter += 1;
        json!({ "n": self.counter })
    }

    /// A lease worker `w` believes it holds, if any.
    fn pick_lease(&mut self, w: usize) -> Option<Lease> {
        let n = self.held[w].len();
        (n > 0).then(|| self.held[w][self.rng.below(n)].clone())
    }

    /// Draws and runs one operation, checking its answer.
    async fn step(&mut self) -> Result<(), String> {
        let w = self.rng.below(WORKERS);
        match self.rng.below(100) {
            0..=12 => self.start().await,
            13..=26 => self.claim(w).await,
            27..=35 => self.commit(w).await,
            36..=40 => self.complete(w, false).await,
            41..=42 => self.complete(w, true).await,
            43..=49 => self.sleep(w).await,
            50..=56 => self.await_event(w).await,
            57..=61 => self.child(w).await,
            62..=68 => self.resume(w).await,
            69..=77 => self.send().await,
            78..=80 => self.cancel().await,
            81..=83 => self.release(w).await,
            84..=85 => self.heartbeat(w).await,
            86..=87 => {
                self.say(format!(
                    "crash w{w}: it forgets {} leases",
                    self.held[w].len()
                ));
                self.held[w].clear();
                Ok(())
            }
            88..=91 => self.zombie_write().await,
            92..=93 => self.restart().await,
            _ => self.advance().await,
        }
    }

    /// A new scheduler on the same store, as after a restart of the process; the fake
    /// workers keep their leases (the store does).
    async fn restart(&mut self) -> Result<(), String> {
        match self.harness.fixture().reopen().await {
            Some(scheduler) => {
                self.say("restart the backend".to_owned());
                self.scheduler = scheduler;
                self.report.restarts += 1;
                Ok(())
            }
            None => self.advance().await,
        }
    }

    async fn start(&mut self) -> Result<(), String> {
        let id = format!("h{}", self.rng.below(IDS));
        let input = self.rng.below(2) as i64;
        self.say(format!("start {id} input {input}"));
        let got = self
            .scheduler
            .start_execution(StartExecutionParams {
                id: id.clone(),
                task_name: TASK.into(),
                input: json!(input),
                queue: "default".into(),
                ..Default::default()
            })
            .await;
        match self.models.get(&id) {
            None => {
                let outcome = got.map_err(|e| format!("start {id}: {e}"))?;
                if !outcome.created || outcome.status != ExecutionStatus::Scheduled {
                    return Err(format!("start {id}: {outcome:?}, the model says created"));
                }
                self.models.insert(
                    id,
                    Model {
                        input,
                        status: ExecutionStatus::Scheduled,
                        attempts: 0,
                        lease: None,
                        due_at: Some(self.now),
                        steps: Vec::new(),
                        events: Vec::new(),
                        wait: None,
                        waits_per_name: BTreeMap::new(),
                        parent: None,
                    },
                );
                Ok(())
            }
            Some(model) if model.input == input => {
                let outcome = got.map_err(|e| format!("start {id} again: {e}"))?;
                if outcome.created || outcome.status != model.status {
                    return Err(format!(
                        "start {id} again: {outcome:?}, the model says not created, {}",
                        model.status
                    ));
                }
                Ok(())
            }
            Some(_) => expect(
                &format!("start {id} with another input"),
                code(&got),
                "conflict",
            ),
        }
    }

    async fn claim(&mut self, w: usize) -> Result<(), String> {
        let limit = 1 + self.rng.below(3);
        let due: Vec<String> = self
            .models
            .iter()
            .filter(|(_, m)| m.due(self.now))
            .map(|(id, _)| id.clone())
            .collect();
        self.say(format!("claim w{w} limit {limit} (due: {due:?})"));
        let claimed: Vec<ClaimedTask> = self
            .scheduler
            .claim_tasks(ClaimTasksParams {
                worker_id: format!("w{w}"),
                queue: "default".into(),
                task_names: vec![TASK.into()],
                limit: limit as u32,
                lease: Duration::from_millis(LEASE as u64),
                oldest_first: false,
            })
            .await
            .map_err(|e| format!("claim: {e}"))?;
        if claimed.len() != limit.min(due.len()) {
            return Err(format!(
                "claim of {limit} returned {} tasks; the model has {} due",
                claimed.len(),
                due.len()
            ));
        }
        for task in claimed {
            let id = task.lease.execution_id.clone();
            if !due.contains(&id) {
                return Err(format!(
                    "claim returned {id}, which the model says is not due"
                ));
            }
            let now = self.now;
            let model = self.models.get_mut(&id).ok_or("claimed an unknown id")?;
            // The claim hands the recorded steps over for replay.
            let names: Vec<(String, u32)> =
                task.steps.iter().map(|s| (s.name.clone(), s.seq)).collect();
            let want: Vec<(String, u32)> = model
                .steps
                .iter()
                .map(|s| (s.name.clone(), s.seq))
                .collect();
            if names != want {
                return Err(format!(
                    "claim of {id} returned steps {names:?}, the model has {want:?}"
                ));
            }
            model.attempts += 1;
            model.status = ExecutionStatus::Running;
            model.lease = Some((task.lease.clone(), now + LEASE));
            model.due_at = None;
            // A wait that ended may already be recorded so (a sleep whose time came, ended by
            // the claim; an event handed over at sending): the replay then takes the recorded
            // row, as `TaskContext` does, and never asks the store again.
            if let Some(Wait::Sleep { step, until, .. }) = &model.wait {
                if *until <= now {
                    let step = step.clone();
                    if let Some(row) = model.step_mut(&step) {
                        row.status = None;
                    }
                }
            }
            for (row, got) in model.steps.iter_mut().zip(&task.steps) {
                if row.status.is_none() {
                    if !matches!(got.status, StepStatus::Waiting | StepStatus::Completed) {
                        return Err(format!(
                            "claim of {id}: wait {} is {:?}",
                            row.name, got.status
                        ));
                    }
                    row.status = Some(got.status);
                }
            }
            let ended = match &model.wait {
                Some(Wait::Child { .. }) => false,
                Some(Wait::Sleep { step, .. }) | Some(Wait::Event { step, .. }) => task
                    .steps
                    .iter()
                    .find(|s| s.name == *step)
                    .is_some_and(|s| s.status == StepStatus::Completed),
                None => false,
            };
            if ended {
                if let Some(Wait::Event {
                    step, delivered, ..
                }) = &model.wait
                {
                    let output = task
                        .steps
                        .iter()
                        .find(|s| s.name == *step)
                        .and_then(|s| s.output.clone());
                    let want = delivered.as_ref().map(|p| json!({ "received": p }));
                    if output != want {
                        return Err(format!(
                            "claim of {id}: {step} holds {output:?}, sent {want:?}"
                        ));
                    }
                }
                model.wait = None;
            }
            self.held[w].push(task.lease.clone());
            self.every_lease.push(task.lease);
        }
        Ok(())
    }

    /// `start_child` of the history's child `child_id` from step `step` at `seq`.
    async fn start_child_call(
        &self,
        lease: &Lease,
        step: &str,
        seq: u32,
        child_id: &str,
    ) -> Result<ChildWait, Error> {
        self.scheduler
            .start_child(StartChildParams {
                lease: lease.clone(),
                name: step.to_owned(),
                seq,
                child_id: child_id.to_owned(),
                task_name: TASK.into(),
                input: json!(0),
                queue: "default".into(),
                detached: false,
            })
            .await
    }

    /// `await_event` of event `name` from step `step` at `seq`, without a timeout.
    async fn await_call(
        &self,
        lease: &Lease,
        step: &str,
        seq: u32,
        name: &str,
    ) -> Result<EventWait, Error> {
        self.scheduler
            .await_event(AwaitEventParams {
                lease: lease.clone(),
                queue: "default".into(),
                name: step.to_owned(),
                seq,
                event_name: name.to_owned(),
                timeout: None,
            })
            .await
    }

    /// The model of the execution `lease` is for (it always exists: leases come from claims).
    fn model_of(&self, lease: &Lease) -> Result<Model, String> {
        self.models
            .get(&lease.execution_id)
            .cloned()
            .ok_or_else(|| format!("no model for {}", lease.execution_id))
    }

    async fn commit(&mut self, w: usize) -> Result<(), String> {
        let Some(lease) = self.pick_lease(w) else {
            return self.claim(w).await;
        };
        self.commit_under(lease, &format!("w{w}")).await
    }

    async fn zombie_write(&mut self) -> Result<(), String> {
        let n = self.every_lease.len();
        if n == 0 {
            return self.advance().await;
        }
        let lease = self.every_lease[self.rng.below(n)].clone();
        self.commit_under(lease, "a zombie").await
    }

    async fn commit_under(&mut self, lease: Lease, who: &str) -> Result<(), String> {
        let model = self.model_of(&lease)?;
        let seq = model.next_seq();
        let name = format!("s{seq}");
        let id = lease.execution_id.clone();
        self.say(format!(
            "commit {name} of {id} by {who} (fence {})",
            lease.fence
        ));
        let got = self
            .scheduler
            .commit_step(CommitStepParams {
                lease: lease.clone(),
                name: name.clone(),
                seq,
                status: StepStatus::Completed,
                output: Some(json!(seq)),
                error: None,
                attempts: 1,
            })
            .await;
        if model.holds(&lease) {
            expect(&format!("commit {name} of {id}"), code(&got), "ok")?;
            let model = self.models.get_mut(&id).ok_or("gone")?;
            model.steps.push(ModelStep {
                name,
                seq,
                status: Some(StepStatus::Completed),
            });
            Ok(())
        } else {
            expect(
                &format!("commit {name} of {id} by {who}"),
                code(&got),
                model.refusal(),
            )
        }
    }

    async fn complete(&mut self, w: usize, failed: bool) -> Result<(), String> {
        let Some(lease) = self.pick_lease(w) else {
            return self.claim(w).await;
        };
        let model = self.model_of(&lease)?;
        let id = lease.execution_id.clone();
        let how = if failed { "fail" } else { "complete" };
        self.say(format!("{how} {id} by w{w} (fence {})", lease.fence));
        let outcome = if failed {
            Outcome::Failed(ErrorRecord {
                kind: "step_failed".into(),
                message: "on purpose".into(),
                ..Default::default()
            })
        } else {
            Outcome::Completed(json!("done"))
        };
        let got = self
            .scheduler
            .complete_execution(CompleteExecutionParams {
                lease: lease.clone(),
                outcome,
            })
            .await;
        if !model.holds(&lease) {
            return expect(&format!("{how} {id} by w{w}"), code(&got), model.refusal());
        }
        expect(&format!("{how} {id}"), code(&got), "ok")?;
        let model = self.models.get_mut(&id).ok_or("gone")?;
        model.status = if failed {
            ExecutionStatus::Failed
        } else {
            ExecutionStatus::Completed
        };
        model.lease = None;
        model.due_at = None;
        model.wait = None;
        if failed {
            // A failed execution's unfinished descendants are cancelled with it.
            for victim in self.descendants(&id) {
                self.cancelled(&victim);
            }
        }
        self.wake_parent(&id);
        Ok(())
    }

    /// The unfinished descendants of `id`, children first.
    fn descendants(&self, id: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut frontier = vec![id.to_owned()];
        while let Some(parent) = frontier.pop() {
            for (child, m) in &self.models {
                if m.parent.as_deref() == Some(parent.as_str()) {
                    frontier.push(child.clone());
                    if !m.finished() {
                        found.push(child.clone());
                    }
                }
            }
        }
        found
    }

    fn cancelled(&mut self, id: &str) {
        if let Some(model) = self.models.get_mut(id) {
            model.status = ExecutionStatus::Cancelled;
            model.lease = None;
            model.due_at = None;
            model.wait = None;
        }
    }

    /// `id` has ended: its parent, if suspended waiting for it, is due now.
    fn wake_parent(&mut self, id: &str) {
        let now = self.now;
        let Some(parent) = self.models.get(id).and_then(|m| m.parent.clone()) else {
            return;
        };
        if let Some(p) = self.models.get_mut(&parent) {
            let waits_for_it =
                matches!(&p.wait, Some(Wait::Child { child_id, .. }) if child_id == id);
            if waits_for_it && !p.finished() && p.lease.is_none() {
                p.due_at = Some(now);
            }
        }
    }

    /// Starts a child of an execution worker `w` holds: it suspends waiting for it.
    async fn child(&mut self, w: usize) -> Result<(), String> {
        let Some(lease) = self.pick_lease(w) else {
            return self.claim(w).await;
        };
        let model = self.model_of(&lease)?;
        if model.wait.is_some() {
            return self.resume_under(lease, w).await;
        }
        let id = lease.execution_id.clone();
        let seq = model.next_seq();
        let step = format!("kid{seq}");
        let child_id = format!("{id}/{step}");
        if child_id.len() > 200 {
            return self.commit_under(lease, &format!("w{w}")).await;
        }
        self.say(format!("start child {child_id} by w{w}"));
        let got = self.start_child_call(&lease, &step, seq, &child_id).await;
        let Some(wait) = answer(&model, &lease, &format!("start child {child_id}"), got)? else {
            return Ok(());
        };
        if wait != ChildWait::Waiting {
            return Err(format!(
                "start child {child_id}: {wait:?}, the model says it waits"
            ));
        }
        let now = self.now;
        self.models.insert(
            child_id.clone(),
            Model {
                input: 0,
                status: ExecutionStatus::Scheduled,
                attempts: 0,
                lease: None,
                due_at: Some(now),
                steps: Vec::new(),
                events: Vec::new(),
                wait: None,
                waits_per_name: BTreeMap::new(),
                parent: Some(id.clone()),
            },
        );
        self.report.children += 1;
        let model = self.models.get_mut(&id).ok_or("gone")?;
        model.steps.push(ModelStep {
            name: step.clone(),
            seq,
            status: Some(StepStatus::Waiting),
        });
        model.wait = Some(Wait::Child {
            step,
            seq,
            child_id,
        });
        model.suspend(ExecutionStatus::Waiting, None);
        Ok(())
    }

    async fn sleep(&mut self, w: usize) -> Result<(), String> {
        let Some(lease) = self.pick_lease(w) else {
            return self.claim(w).await;
        };
        let model = self.model_of(&lease)?;
        if model.wait.is_some() {
            // An open wait is resumed before anything new, as a replay would.
            return self.resume_under(lease, w).await;
        }
        let seq = model.next_seq();
        let name = format!("nap{seq}");
        let minutes = 1 + self.rng.below(3) as i64;
        let id = lease.execution_id.clone();
        self.say(format!("sleep {name} of {id} for {minutes} min by w{w}"));
        let got = self
            .scheduler
            .sleep(SleepParams {
                lease: lease.clone(),
                queue: "default".into(),
                name: name.clone(),
                seq,
                until: WakeAt::After(Duration::from_secs(60 * minutes as u64)),
            })
            .await;
        let Some(left) = answer(
            &model,
            &lease,
            &format!("sleep {name} of {id} by w{w}"),
            got,
        )?
        else {
            return Ok(());
        };
        if left.is_none() {
            return Err(format!(
                "sleep {name} of {id}: ended at once, the model says it suspends"
            ));
        }
        let until = self.now + 60_000 * minutes;
        let model = self.models.get_mut(&id).ok_or("gone")?;
        model.steps.push(ModelStep {
            name: name.clone(),
            seq,
            status: Some(StepStatus::Waiting),
        });
        model.wait = Some(Wait::Sleep {
            step: name,
            seq,
            until,
        });
        model.suspend(ExecutionStatus::Sleeping, Some(until));
        Ok(())
    }

    async fn await_event(&mut self, w: usize) -> Result<(), String> {
        let Some(lease) = self.pick_lease(w) else {
            return self.claim(w).await;
        };
        let model = self.model_of(&lease)?;
        if model.wait.is_some() {
            return self.resume_under(lease, w).await;
        }
        let name = ["a", "b"][self.rng.below(2)].to_owned();
        let nth = model.waits_per_name.get(&name).copied().unwrap_or(0) + 1;
        let step = if nth == 1 {
            format!("event:{name}")
        } else {
            format!("event#{nth}:{name}")
        };
        let seq = model.next_seq();
        let id = lease.execution_id.clone();
        self.say(format!("await {step} of {id} by w{w}"));
        let got = self.await_call(&lease, &step, seq, &name).await;
        let Some(got) = answer(
            &model,
            &lease,
            &format!("await {step} of {id} by w{w}"),
            got,
        )?
        else {
            return Ok(());
        };
        let model = self.models.get_mut(&id).ok_or("gone")?;
        model.waits_per_name.insert(name.clone(), nth);
        let buffered = model.events.iter().position(|(n, _)| *n == name);
        match (got, buffered) {
            (EventWait::Received(payload), Some(at)) => {
                let (_, want) = model.events.remove(at);
                if payload != want {
                    return Err(format!(
                        "await {step} of {id}: got {payload}, the oldest is {want}"
                    ));
                }
                model.steps.push(ModelStep {
                    name: step,
                    seq,
                    status: Some(StepStatus::Completed),
                });
                Ok(())
            }
            (EventWait::Waiting { .. }, None) => {
                model.steps.push(ModelStep {
                    name: step.clone(),
                    seq,
                    status: Some(StepStatus::Waiting),
                });
                model.wait = Some(Wait::Event {
                    step,
                    seq,
                    name,
                    delivered: None,
                });
                model.suspend(ExecutionStatus::Waiting, None);
                Ok(())
            }
            (got, buffered) => Err(format!(
                "await {step} of {id}: got {got:?}; the model has {} buffered",
                if buffered.is_some() { "one" } else { "none" }
            )),
        }
    }

    /// Resumes the open wait of an execution worker `w` holds, as a replay reaches it again.
    async fn resume(&mut self, w: usize) -> Result<(), String> {
        let Some(lease) = self.pick_lease(w) else {
            return self.claim(w).await;
        };
        self.resume_under(lease, w).await
    }

    async fn resume_under(&mut self, lease: Lease, w: usize) -> Result<(), String> {
        let model = self.model_of(&lease)?;
        let id = lease.execution_id.clone();
        match model.wait.clone() {
            None => self.commit_under(lease, &format!("w{w}")).await,
            Some(Wait::Sleep { step, seq, until }) => {
                self.say(format!("resume sleep {step} of {id} by w{w}"));
                let got = self
                    .scheduler
                    .sleep(SleepParams {
                        lease: lease.clone(),
                        queue: "default".into(),
                        name: step.clone(),
                        seq,
                        // Later calls keep the recorded wake time whatever this says.
                        until: WakeAt::After(Duration::from_secs(3600)),
                    })
                    .await;
                let Some(left) = answer(&model, &lease, &format!("resume {step} of {id}"), got)?
                else {
                    return Ok(());
                };
                let now = self.now;
                let model = self.models.get_mut(&id).ok_or("gone")?;
                match (left, until <= now) {
                    (None, true) => {
                        if let Some(row) = model.step_mut(&step) {
                            row.status = Some(StepStatus::Completed);
                        }
                        model.wait = None;
                        Ok(())
                    }
                    (Some(_), false) => {
                        model.suspend(ExecutionStatus::Sleeping, Some(until));
                        Ok(())
                    }
                    (left, _) => Err(format!(
                        "resume {step} of {id}: {left:?} left, the wake time is {until} and now is {now}"
                    )),
                }
            }
            Some(Wait::Child {
                step,
                seq,
                child_id,
            }) => {
                self.say(format!("resume {step} of {id} by w{w}"));
                let got = self.start_child_call(&lease, &step, seq, &child_id).await;
                let Some(got) = answer(&model, &lease, &format!("resume {step} of {id}"), got)?
                else {
                    return Ok(());
                };
                let child_status = self
                    .models
                    .get(&child_id)
                    .map(|c| c.status)
                    .ok_or("no model of the child")?;
                let ended = matches!(
                    child_status,
                    ExecutionStatus::Completed
                        | ExecutionStatus::Failed
                        | ExecutionStatus::Cancelled
                );
                let model = self.models.get_mut(&id).ok_or("gone")?;
                match got {
                    ChildWait::Finished { status, .. } if ended && status == child_status => {
                        if let Some(row) = model.step_mut(&step) {
                            row.status = Some(if status == ExecutionStatus::Completed {
                                StepStatus::Completed
                            } else {
                                StepStatus::Failed
                            });
                        }
                        model.wait = None;
                        Ok(())
                    }
                    ChildWait::Waiting if !ended => {
                        model.suspend(ExecutionStatus::Waiting, None);
                        Ok(())
                    }
                    got => Err(format!(
                        "resume {step} of {id}: {got:?}; the model's child {child_id} is {child_status}"
                    )),
                }
            }
            Some(Wait::Event {
                step,
                seq,
                name,
                delivered,
            }) => {
                self.say(format!("resume {step} of {id} by w{w}"));
                let got = self.await_call(&lease, &step, seq, &name).await;
                let Some(got) = answer(&model, &lease, &format!("resume {step} of {id}"), got)?
                else {
                    return Ok(());
                };
                let model = self.models.get_mut(&id).ok_or("gone")?;
                match (got, delivered) {
                    (EventWait::Received(payload), Some(want)) => {
                        if payload != want {
                            return Err(format!(
                                "resume {step} of {id}: got {payload}, sent {want}"
                            ));
                        }
                        if let Some(row) = model.step_mut(&step) {
                            row.status = Some(StepStatus::Completed);
                        }
                        model.wait = None;
                        Ok(())
                    }
                    (EventWait::Waiting { .. }, None) => {
                        model.suspend(ExecutionStatus::Waiting, None);
                        Ok(())
                    }
                    (got, delivered) => Err(format!(
                        "resume {step} of {id}: got {got:?}, the model's event: {delivered:?}"
                    )),
                }
            }
        }
    }

    async fn send(&mut self) -> Result<(), String> {
        let id = format!("h{}", self.rng.below(IDS + 1)); // h5 is never started
        let name = ["a", "b"][self.rng.below(2)].to_owned();
        let payload = self.fresh_payload();
        self.say(format!("send {name} {payload} to {id}"));
        let got = self
            .scheduler
            .send_event(SendEventParams {
                execution_id: id.clone(),
                name: name.clone(),
                payload: payload.clone(),
            })
            .await;
        let now = self.now;
        let Some(model) = self.models.get_mut(&id) else {
            return expect(&format!("send to unknown {id}"), code(&got), "not_found");
        };
        if model.finished() {
            return expect(&format!("send to finished {id}"), code(&got), "finished");
        }
        expect(&format!("send to {id}"), code(&got), "ok")?;
        match &mut model.wait {
            Some(Wait::Event {
                step,
                name: waits_for,
                delivered,
                ..
            }) if *waits_for == name && delivered.is_none() => {
                // The open wait takes it (handed over now, or found by the waiter).
                *delivered = Some(payload);
                let step = step.clone();
                if let Some(row) = model.step_mut(&step) {
                    row.status = None;
                }
                if model.lease.is_none() {
                    model.due_at = Some(now);
                }
            }
            _ => model.events.push((name, payload)),
        }
        Ok(())
    }

    async fn cancel(&mut self) -> Result<(), String> {
        // Any execution (children too), or the one id never started.
        let ids: Vec<String> = self.models.keys().cloned().collect();
        let pick = self.rng.below(ids.len() + 1);
        let id = ids.get(pick).cloned().unwrap_or_else(|| format!("h{IDS}"));
        self.say(format!("cancel {id}"));
        let got = self.scheduler.cancel_execution(&id).await;
        let Some(model) = self.models.get(&id) else {
            return expect(&format!("cancel unknown {id}"), code(&got), "not_found");
        };
        let ids = got.map_err(|e| format!("cancel {id}: {e}"))?;
        if model.finished() {
            if !ids.is_empty() {
                return Err(format!("cancel of finished {id} cancelled {ids:?}"));
            }
            return Ok(());
        }
        let mut want = vec![id.clone()];
        want.extend(self.descendants(&id));
        let (mut got_sorted, mut want_sorted) = (ids.clone(), want.clone());
        got_sorted.sort();
        want_sorted.sort();
        if ids.first() != Some(&id) || got_sorted != want_sorted {
            return Err(format!(
                "cancel {id} returned {ids:?}; the model cancels {want:?}"
            ));
        }
        for victim in &want {
            self.cancelled(victim);
        }
        self.wake_parent(&id);
        Ok(())
    }

    async fn release(&mut self, w: usize) -> Result<(), String> {
        let leases = std::mem::take(&mut self.held[w]);
        let held: Vec<String> = leases
            .iter()
            .filter(|l| self.models.get(&l.execution_id).is_some_and(|m| m.holds(l)))
            .map(|l| l.execution_id.clone())
            .collect();
        self.say(format!(
            "release w{w}: {} leases, {held:?} held",
            leases.len()
        ));
        let got = self
            .scheduler
            .release_tasks(ReleaseTasksParams {
                worker_id: format!("w{w}"),
                queue: "default".into(),
                leases,
            })
            .await
            .map_err(|e| format!("release: {e}"))?;
        if got != held.len() as u64 {
            return Err(format!(
                "release w{w} released {got}, the model says {}",
                held.len()
            ));
        }
        let now = self.now;
        for id in held {
            let model = self.models.get_mut(&id).ok_or("gone")?;
            model.suspend(ExecutionStatus::Scheduled, Some(now));
        }
        Ok(())
    }

    async fn heartbeat(&mut self, w: usize) -> Result<(), String> {
        let leases = self.held[w].clone();
        let mut want: Vec<String> = leases
            .iter()
            .filter(|l| self.models.get(&l.execution_id).is_some_and(|m| m.holds(l)))
            .map(|l| l.execution_id.clone())
            .collect();
        want.sort();
        want.dedup();
        self.say(format!(
            "heartbeat w{w}: {} leases, {want:?} held",
            leases.len()
        ));
        let got = self
            .scheduler
            .heartbeat(HeartbeatParams {
                worker_id: format!("w{w}"),
                lease: Duration::from_millis(LEASE as u64),
                leases,
            })
            .await
            .map_err(|e| format!("heartbeat: {e}"))?;
        let mut ids: Vec<String> = got.iter().map(|l| l.execution_id.clone()).collect();
        ids.sort();
        ids.dedup();
        if ids != want {
            return Err(format!(
                "heartbeat w{w} renewed {ids:?}, the model holds {want:?}"
            ));
        }
        let now = self.now;
        for id in ids {
            if let Some((_, expires)) = self.models.get_mut(&id).and_then(|m| m.lease.as_mut()) {
                *expires = now + LEASE;
            }
        }
        Ok(())
    }

    async fn advance(&mut self) -> Result<(), String> {
        let by = [30_000, 90_000, 630_000][self.rng.below(3)];
        self.say(format!("advance the clock {} s", by / 1000));
        self.harness
            .fixture()
            .advance_clock(Duration::from_millis(by as u64))
            .await;
        self.now += by;
        Ok(())
    }

    /// Compares every execution in the store with the model.
    async fn check(&mut self) -> Result<(), String> {
        let fixture = self.harness.fixture();
        for (id, model) in &self.models {
            let row = fixture
                .execution(id)
                .await
                .ok_or_else(|| format!("{id} is not in the store"))?;
            if row.status != model.status || row.attempts != model.attempts {
                return Err(format!(
                    "{id} is {} after {} claims; the model says {} after {}",
                    row.status, row.attempts, model.status, model.attempts
                ));
            }
            if row.parent_id != model.parent {
                return Err(format!(
                    "{id} has parent {:?}; the model says {:?}",
                    row.parent_id, model.parent
                ));
            }
            let steps = fixture.steps(id).await;
            let got: Vec<(String, u32, StepStatus)> = steps
                .iter()
                .map(|s| (s.name.clone(), s.seq, s.status))
                .collect();
            let fits = got.len() == model.steps.len()
                && got
                    .iter()
                    .zip(&model.steps)
                    .all(|((name, seq, status), want)| {
                        *name == want.name
                            && *seq == want.seq
                            && match want.status {
                                Some(s) => *status == s,
                                None => {
                                    matches!(status, StepStatus::Waiting | StepStatus::Completed)
                                }
                            }
                    });
            if !fits {
                return Err(format!(
                    "{id} has steps {got:?}; the model has {:?}",
                    model.steps
                ));
            }
        }
        if fixture.execution(&format!("h{IDS}")).await.is_some() {
            return Err(format!("h{IDS} was never started but is stored"));
        }
        Ok(())
    }
}

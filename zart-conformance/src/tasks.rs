//! The workflows the cases run. Every step body counts its runs in [`Counts`] (in memory,
//! keyed by execution and step), so a case can tell how often a body really ran.

use std::collections::HashMap;
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use zart::{
    EventOutcome, FailureKind, Parallel, RetryConfig, Scheduler, TaskContext, TaskError,
    TaskHandler, TaskRegistry,
};

/// How often each step body ran, by `(execution id, step name)`; and gates that hold bodies.
#[derive(Debug, Clone)]
pub struct Counts {
    runs: Arc<Mutex<HashMap<(String, String), usize>>>,
    gate: Arc<Semaphore>,
}

impl Default for Counts {
    fn default() -> Self {
        Counts {
            runs: Arc::default(),
            gate: Arc::new(Semaphore::new(0)),
        }
    }
}

impl Counts {
    /// Counts one run of `step` of execution `id`; returns how many runs there were with it.
    pub fn hit(&self, id: &str, step: &str) -> usize {
        let mut runs = self.runs.lock().unwrap();
        let n = runs.entry((id.to_owned(), step.to_owned())).or_default();
        *n += 1;
        *n
    }

    /// How many times `step` of execution `id` ran.
    pub fn get(&self, id: &str, step: &str) -> usize {
        let runs = self.runs.lock().unwrap();
        runs.get(&(id.to_owned(), step.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Lets `n` gated bodies ([`Gated`]) through.
    pub fn open_gate(&self, n: usize) {
        self.gate.add_permits(n);
    }
}

/// Step `name` whose body counts its run in `counts` and returns `value`.
async fn counted<T>(
    ctx: &mut TaskContext<impl Scheduler>,
    counts: &Counts,
    name: &str,
    value: T,
) -> Result<T, TaskError>
where
    T: Serialize + DeserializeOwned + Send,
{
    let (counts, id, step) = (
        counts.clone(),
        ctx.execution_id().to_owned(),
        name.to_owned(),
    );
    ctx.step(name, || async move {
        counts.hit(&id, &step);
        Ok::<_, io::Error>(value)
    })
    .await
}

/// The registry of every task below, sharing `counts`.
pub fn registry(counts: &Counts) -> TaskRegistry {
    let c = || counts.clone();
    let mut registry = TaskRegistry::new();
    registry
        .register("echo", Echo(c()))
        .unwrap()
        .register("steps", Steps(c()))
        .unwrap()
        .register("flaky", Flaky(c()))
        .unwrap()
        .register("sleeper", Sleeper(c()))
        .unwrap()
        .register("waiter", Waiter(c()))
        .unwrap()
        .register("channel", Channel(c()))
        .unwrap()
        .register("publisher", Publisher(c()))
        .unwrap()
        .register("launcher", Launcher)
        .unwrap()
        .register("parent", Parent(c()))
        .unwrap()
        .register("fails", Fails(c()))
        .unwrap()
        .register("nest", Nest(c()))
        .unwrap()
        .register("parallel", ParallelSteps(c()))
        .unwrap()
        .register("hangs", Hangs(c()))
        .unwrap()
        .register("slow-once", SlowOnce(c()))
        .unwrap()
        .register("gated", Gated(c()))
        .unwrap()
        .register("repeats", Repeats)
        .unwrap()
        .register("replay-aware", ReplayAware(c()))
        .unwrap()
        .register("declines", Declines(c()))
        .unwrap()
        .register("fixable", Fixable(c()))
        .unwrap()
        .register("billing", Billing(c()))
        .unwrap()
        .register("tx-unit", TxUnit(c()))
        .unwrap()
        .register("fan-out", FanOut(c()))
        .unwrap();
    registry
}

/// `declines`: with input `{"in": "step"}`, step `charge` (3 attempts allowed) fails with an
/// application error that is not retryable (`card_declined`, with details); with
/// `{"in": "workflow"}` the workflow itself fails with `order_rejected`.
pub struct Declines(Counts);

#[async_trait]
impl TaskHandler for Declines {
    type Data = Value;
    type Output = ();

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        data: Value,
    ) -> Result<(), TaskError> {
        if data["in"] == "workflow" {
            return Err(
                zart::AppError::new("order_rejected", "the order was rejected")
                    .with_details(json!({ "reason": "fraud_check" }))
                    .into(),
            );
        }
        let (counts, id) = (self.0.clone(), ctx.execution_id().to_owned());
        ctx.step_with_retry(
            "charge",
            RetryConfig::exponential(3, Duration::from_millis(10)),
            || {
                let (counts, id) = (counts.clone(), id.clone());
                async move {
                    counts.hit(&id, "charge");
                    Err::<(), _>(
                        zart::AppError::new("card_declined", "the card was declined")
                            .with_details(json!({ "decline_code": "insufficient_funds" }))
                            .not_retryable(),
                    )
                }
            },
        )
        .await
    }
}

/// Input of [`FanOut`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FanOutInput {
    /// How many children `c-0` .. `c-{n-1}`; child `i` is an `echo` of `i`.
    pub children: u32,
    /// This child is a `fails` instead.
    pub failing: Option<u32>,
}

/// `fan-out`: one `wait_all` of a step `local` (returns `"local"`) and the children of the
/// input. The output is `{"ok": [results in order]}`, or `{"failed": step, "message": ..}` for
/// the first failure.
pub struct FanOut(Counts);

#[async_trait]
impl TaskHandler for FanOut {
    type Data = FanOutInput;
    type Output = Value;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        input: FanOutInput,
    ) -> Result<Value, TaskError> {
        let (counts, id) = (self.0.clone(), ctx.execution_id().to_owned());
        let mut parallel = Parallel::new().step("local", move || async move {
            counts.hit(&id, "local");
            Ok::<_, io::Error>(json!("local"))
        });
        for i in 0..input.children {
            parallel = if input.failing == Some(i) {
                parallel.child(format!("c-{i}"), "fails", &json!(null))
            } else {
                parallel.child(format!("c-{i}"), "echo", &json!(i))
            };
        }
        match ctx.wait_all(parallel).await {
            Ok(results) => Ok(json!({ "ok": results })),
            Err(TaskError::StepFailed { step, message, .. }) => {
                Ok(json!({ "failed": step, "message": message }))
            }
            Err(other) => Err(other),
        }
    }
}

/// `tx-unit`: one `ctx.step_tx` step `t` whose body takes `()`, a handle no backend gives, so
/// it never runs (counted as `t` if it did): the execution fails with the reason.
pub struct TxUnit(Counts);

#[async_trait]
impl TaskHandler for TxUnit {
    type Data = Value;
    type Output = ();

    async fn run(&self, ctx: &mut TaskContext<impl Scheduler>, _: Value) -> Result<(), TaskError> {
        let (counts, id) = (self.0.clone(), ctx.execution_id().to_owned());
        ctx.step_tx("t", |_: ()| async move {
            counts.hit(&id, "t");
            Ok::<_, io::Error>(())
        })
        .await
    }
}

/// `echo`: one step `echo` that returns the input.
pub struct Echo(Counts);

#[async_trait]
impl TaskHandler for Echo {
    type Data = Value;
    type Output = Value;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        data: Value,
    ) -> Result<Value, TaskError> {
        counted(ctx, &self.0, "echo", data).await
    }
}

/// `steps`: `n` steps `step-0` .. `step-{n-1}`; step `i` returns `i * 10`. The output is the
/// list of values the steps returned (recorded or run).
pub struct Steps(Counts);

#[async_trait]
impl TaskHandler for Steps {
    type Data = u32;
    type Output = Vec<u32>;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        n: u32,
    ) -> Result<Vec<u32>, TaskError> {
        let mut values = Vec::new();
        for i in 0..n {
            values.push(counted(ctx, &self.0, &format!("step-{i}"), i * 10).await?);
        }
        Ok(values)
    }
}

/// Input of [`Flaky`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FlakyInput {
    /// The body fails this many times, then returns the attempt number.
    pub failures: usize,
    /// Attempts allowed.
    pub max_attempts: u32,
    /// The first back-off, in milliseconds (doubling).
    pub base_ms: u64,
}

/// `flaky`: one `step_with_retry` named `flaky` that fails `failures` times first.
pub struct Flaky(Counts);

#[async_trait]
impl TaskHandler for Flaky {
    type Data = FlakyInput;
    type Output = usize;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        input: FlakyInput,
    ) -> Result<usize, TaskError> {
        let id = ctx.execution_id().to_owned();
        let retry =
            RetryConfig::exponential(input.max_attempts, Duration::from_millis(input.base_ms));
        let counts = self.0.clone();
        ctx.step_with_retry("flaky", retry, || {
            let n = counts.hit(&id, "flaky");
            async move {
                if n <= input.failures {
                    return Err(io::Error::other(format!("attempt {n} failed on purpose")));
                }
                Ok(n)
            }
        })
        .await
    }
}

/// Input of [`Sleeper`]: a sleep of `secs`, or until `until_ms` (milliseconds since the epoch).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SleepInput {
    /// Sleep this long.
    pub secs: Option<u64>,
    /// Or sleep until this time.
    pub until_ms: Option<u64>,
}

/// `sleeper`: step `before`, the durable sleep `nap`, step `after`; returns `"woke"`.
pub struct Sleeper(Counts);

#[async_trait]
impl TaskHandler for Sleeper {
    type Data = SleepInput;
    type Output = String;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        input: SleepInput,
    ) -> Result<String, TaskError> {
        counted(ctx, &self.0, "before", ()).await?;
        match (input.secs, input.until_ms) {
            (_, Some(ms)) => {
                ctx.sleep_until("nap", UNIX_EPOCH + Duration::from_millis(ms))
                    .await?
            }
            (secs, None) => {
                ctx.sleep("nap", Duration::from_secs(secs.unwrap_or(0)))
                    .await?
            }
        }
        counted(ctx, &self.0, "after", "woke".to_owned()).await
    }
}

/// `replay-aware`: step `first`, the durable sleep `pause` (`input` seconds), step `second`.
/// At four points (`start`, `after-first`, `after-pause`, `after-second`) it counts
/// `replaying@<point>=<ctx.is_replaying()>`, and each time it is not replaying,
/// `quiet@<point>`: what a replay-aware log line would do.
pub struct ReplayAware(Counts);

impl ReplayAware {
    fn note(&self, ctx: &TaskContext<impl Scheduler>, point: &str) {
        let id = ctx.execution_id();
        let replaying = ctx.is_replaying();
        self.0.hit(id, &format!("replaying@{point}={replaying}"));
        if !replaying {
            self.0.hit(id, &format!("quiet@{point}"));
        }
    }
}

#[async_trait]
impl TaskHandler for ReplayAware {
    type Data = u64;
    type Output = ();

    async fn run(&self, ctx: &mut TaskContext<impl Scheduler>, secs: u64) -> Result<(), TaskError> {
        self.note(ctx, "start");
        counted(ctx, &self.0, "first", ()).await?;
        self.note(ctx, "after-first");
        ctx.sleep("pause", Duration::from_secs(secs)).await?;
        self.note(ctx, "after-pause");
        counted(ctx, &self.0, "second", ()).await?;
        self.note(ctx, "after-second");
        Ok(())
    }
}

/// Milliseconds since the epoch of `t`, for [`SleepInput::until_ms`].
pub fn epoch_ms(t: SystemTime) -> u64 {
    u64::try_from(t.duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

/// Input of [`Waiter`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WaitInput {
    /// The event name.
    pub event: String,
    /// The timeout in seconds; none waits forever.
    pub timeout_secs: Option<u64>,
}

/// `waiter`: step `before`, a wait for the event, then step `after`, whose result is the
/// output: `{"received": payload}` or `{"timed_out": true}`.
pub struct Waiter(Counts);

#[async_trait]
impl TaskHandler for Waiter {
    type Data = WaitInput;
    type Output = Value;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        input: WaitInput,
    ) -> Result<Value, TaskError> {
        counted(ctx, &self.0, "before", ()).await?;
        let outcome = ctx
            .wait_for_event::<Value>(&input.event, input.timeout_secs.map(Duration::from_secs))
            .await?;
        counted(
            ctx,
            &self.0,
            "after",
            match outcome {
                EventOutcome::Received(payload) => json!({ "received": payload }),
                EventOutcome::TimedOut => json!({ "timed_out": true }),
                EventOutcome::Malformed { payload, .. } => json!({ "malformed": payload }),
            },
        )
        .await
    }
}

/// Input of [`Channel`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChannelInput {
    /// The event name.
    pub event: String,
    /// How many waits.
    pub waits: u32,
    /// Each wait's timeout in seconds; none waits forever.
    pub timeout_secs: Option<u64>,
}

/// `channel`: waits for the event `waits` times, each payload read as a `u32`, then step
/// `after`, whose result is the output: one entry per wait, the number received,
/// `{"malformed": payload}` or `"timed_out"`.
pub struct Channel(Counts);

#[async_trait]
impl TaskHandler for Channel {
    type Data = ChannelInput;
    type Output = Value;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        input: ChannelInput,
    ) -> Result<Value, TaskError> {
        let mut got = Vec::new();
        for _ in 0..input.waits {
            let outcome = ctx
                .wait_for_event::<u32>(&input.event, input.timeout_secs.map(Duration::from_secs))
                .await?;
            got.push(match outcome {
                EventOutcome::Received(n) => json!(n),
                EventOutcome::TimedOut => json!("timed_out"),
                EventOutcome::Malformed { payload, .. } => json!({ "malformed": payload }),
            });
        }
        counted(ctx, &self.0, "after", Value::Array(got)).await
    }
}

/// Input of [`Parent`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ParentInput {
    /// The child's task.
    pub task: String,
    /// The child's input.
    pub input: Value,
}

/// `parent`: step `before`, child `kid`, step `after`. A failed child is handled: the output
/// is `{"ok": child output}` or `{"failed": message, "kind": kind}`.
pub struct Parent(Counts);

#[async_trait]
impl TaskHandler for Parent {
    type Data = ParentInput;
    type Output = Value;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        input: ParentInput,
    ) -> Result<Value, TaskError> {
        counted(ctx, &self.0, "before", ()).await?;
        let outcome = match ctx
            .child::<_, Value>("kid", &input.task, &input.input)
            .await
        {
            Ok(output) => json!({ "ok": output }),
            Err(TaskError::StepFailed {
                message,
                kind: FailureKind::Child,
                ..
            }) => {
                json!({ "failed": message, "kind": FailureKind::Child.as_str() })
            }
            Err(other) => return Err(other),
        };
        counted(ctx, &self.0, "after", outcome).await
    }
}

/// `fails`: one step `charge` that fails with "card declined".
pub struct Fails(Counts);

#[async_trait]
impl TaskHandler for Fails {
    type Data = Value;
    type Output = u32;

    async fn run(&self, ctx: &mut TaskContext<impl Scheduler>, _: Value) -> Result<u32, TaskError> {
        let (counts, id) = (self.0.clone(), ctx.execution_id().to_owned());
        ctx.step("charge", || async move {
            counts.hit(&id, "charge");
            Err::<u32, _>(io::Error::other("card declined"))
        })
        .await
    }
}

/// `nest`: at depth 0 sleeps an hour, then step `woke`; above, runs child `kid` at depth - 1.
pub struct Nest(Counts);

#[async_trait]
impl TaskHandler for Nest {
    type Data = u32;
    type Output = u32;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        depth: u32,
    ) -> Result<u32, TaskError> {
        if depth == 0 {
            ctx.sleep("nap", Duration::from_secs(3600)).await?;
            return counted(ctx, &self.0, "woke", 0).await;
        }
        let below: u32 = ctx.child("kid", "nest", &(depth - 1)).await?;
        Ok(below + 1)
    }
}

/// `parallel`: `wait_all` of steps `a`, `b`, `c` returning 1, 2, 3.
pub struct ParallelSteps(Counts);

#[async_trait]
impl TaskHandler for ParallelSteps {
    type Data = ();
    type Output = Vec<u32>;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        _: (),
    ) -> Result<Vec<u32>, TaskError> {
        let id = ctx.execution_id().to_owned();
        let mut set = Parallel::new();
        for (name, value) in [("a", 1u32), ("b", 2), ("c", 3)] {
            let (counts, id) = (self.0.clone(), id.clone());
            set = set.step(name, move || async move {
                counts.hit(&id, name);
                Ok::<_, io::Error>(value)
            });
        }
        ctx.wait_all(set).await
    }
}

/// `hangs`: a step `quote` that never ends, under a 200 ms timeout.
pub struct Hangs(Counts);

#[async_trait]
impl TaskHandler for Hangs {
    type Data = ();
    type Output = u32;

    async fn run(&self, ctx: &mut TaskContext<impl Scheduler>, _: ()) -> Result<u32, TaskError> {
        let (counts, id) = (self.0.clone(), ctx.execution_id().to_owned());
        ctx.step_with_timeout("quote", Duration::from_millis(200), || async move {
            counts.hit(&id, "quote");
            std::future::pending::<()>().await;
            Ok::<u32, io::Error>(1)
        })
        .await
    }
}

/// `slow-once`: a retried step `quote` whose first attempt hangs past its 300 ms attempt
/// timeout; the next answers with its attempt number.
pub struct SlowOnce(Counts);

#[async_trait]
impl TaskHandler for SlowOnce {
    type Data = ();
    type Output = usize;

    async fn run(&self, ctx: &mut TaskContext<impl Scheduler>, _: ()) -> Result<usize, TaskError> {
        let (counts, id) = (self.0.clone(), ctx.execution_id().to_owned());
        let retry = RetryConfig::exponential(3, Duration::from_millis(10))
            .with_attempt_timeout(Duration::from_millis(300));
        ctx.step_with_retry("quote", retry, || {
            let n = counts.hit(&id, "quote");
            async move {
                if n == 1 {
                    std::future::pending::<()>().await;
                }
                Ok::<usize, io::Error>(n)
            }
        })
        .await
    }
}

/// `gated`: step `first`, then step `gated`, which holds until [`Counts::open_gate`], then
/// step `last`. Returns 3.
pub struct Gated(Counts);

#[async_trait]
impl TaskHandler for Gated {
    type Data = ();
    type Output = u32;

    async fn run(&self, ctx: &mut TaskContext<impl Scheduler>, _: ()) -> Result<u32, TaskError> {
        counted(ctx, &self.0, "first", 1).await?;
        let (counts, i) = (self.0.clone(), ctx.execution_id().to_owned());
        ctx.step("gated", || async move {
            counts.hit(&i, "gated");
            let _permit = counts.gate.acquire().await.map_err(io::Error::other)?;
            counts.hit(&i, "gated-done");
            Ok::<_, io::Error>(2)
        })
        .await?;
        counted(ctx, &self.0, "last", 3).await
    }
}

/// `publisher`: publishes `progress` 1 and `phase` "loading", then `progress` 2, then holds
/// in step `gated` until [`Counts::open_gate`], then publishes `progress` 3 and `phase`
/// "done". With input `""`, publishes under an empty name (refused). Returns 3.
pub struct Publisher(Counts);

#[async_trait]
impl TaskHandler for Publisher {
    type Data = Value;
    type Output = u32;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        input: Value,
    ) -> Result<u32, TaskError> {
        if input == json!("") {
            ctx.set_state("", &1).await?;
        }
        ctx.set_state("progress", &1).await?;
        ctx.set_state("phase", &"loading").await?;
        ctx.set_state("progress", &2).await?;
        let (counts, i) = (self.0.clone(), ctx.execution_id().to_owned());
        ctx.step("gated", || async move {
            counts.hit(&i, "gated");
            let _permit = counts.gate.acquire().await.map_err(io::Error::other)?;
            Ok::<_, io::Error>(())
        })
        .await?;
        ctx.set_state("progress", &3).await?;
        ctx.set_state("phase", &"done").await?;
        Ok(3)
    }
}

/// `launcher`: starts the detached child `audit` of the task named by the input's `task`,
/// then, with `"wait": true`, waits for the event `never`; returns the child's id.
pub struct Launcher;

#[async_trait]
impl TaskHandler for Launcher {
    type Data = Value;
    type Output = String;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        input: Value,
    ) -> Result<String, TaskError> {
        let task = input["task"].as_str().unwrap_or("echo").to_owned();
        let id = ctx.start_detached("audit", &task, &Value::Null).await?;
        if input["wait"] == json!(true) {
            ctx.wait_for_event::<Value>("never", None).await?;
        }
        Ok(id)
    }
}

/// `repeats`: uses the step name `same` twice.
pub struct Repeats;

#[async_trait]
impl TaskHandler for Repeats {
    type Data = ();
    type Output = ();

    async fn run(&self, ctx: &mut TaskContext<impl Scheduler>, _: ()) -> Result<(), TaskError> {
        for _ in 0..2 {
            ctx.step("same", || async { Ok::<_, io::Error>(()) })
                .await?;
        }
        Ok(())
    }
}

/// The key of [`Fixable`]'s fix: a case "deploys the fix" with `counts.hit(FIX.0, FIX.1)`.
pub const FIX: (&str, &str) = ("*", "fixed");

/// `fixable`: step `first`; with input `{"kid": true}`, child `kid` (a `fixable` without one),
/// whose failure fails this execution; then step `risky`, which fails ("not fixed yet") until
/// the fix is deployed ([`FIX`]); then step `last`. Returns 3.
pub struct Fixable(Counts);

#[async_trait]
impl TaskHandler for Fixable {
    type Data = Value;
    type Output = u32;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        input: Value,
    ) -> Result<u32, TaskError> {
        counted(ctx, &self.0, "first", 1).await?;
        if input["kid"] == json!(true) {
            ctx.child::<_, u32>("kid", "fixable", &json!(null)).await?;
        }
        let (counts, id) = (self.0.clone(), ctx.execution_id().to_owned());
        ctx.step("risky", || async move {
            counts.hit(&id, "risky");
            if counts.get(FIX.0, FIX.1) == 0 {
                return Err(io::Error::other("not fixed yet"));
            }
            Ok(2)
        })
        .await?;
        counted(ctx, &self.0, "last", 3).await
    }
}

/// The key of [`Billing`]'s upgrade: a case "deploys the new code" with
/// `counts.hit(DEPLOYED.0, DEPLOYED.1)`.
pub const DEPLOYED: (&str, &str) = ("*", "deployed");

/// `billing`: step `order`; then on the old code (before [`DEPLOYED`]) step `charge`, and on
/// the new code `ctx.patched("new-billing")` choosing step `charge-v2` (new path) or `charge`;
/// then a sleep `settle` of an hour; then (new code) the patch asked again; then step
/// `receipt`. Returns which charge ran and, on the new code, the two answers of the patch.
pub struct Billing(Counts);

#[async_trait]
impl TaskHandler for Billing {
    type Data = Value;
    type Output = Value;

    async fn run(
        &self,
        ctx: &mut TaskContext<impl Scheduler>,
        _: Value,
    ) -> Result<Value, TaskError> {
        counted(ctx, &self.0, "order", 1).await?;
        let deployed = self.0.get(DEPLOYED.0, DEPLOYED.1) > 0;
        let first = if deployed {
            Some(ctx.patched("new-billing").await?)
        } else {
            None
        };
        let charged = if first == Some(true) {
            counted(ctx, &self.0, "charge-v2", "v2".to_owned()).await?
        } else {
            counted(ctx, &self.0, "charge", "v1".to_owned()).await?
        };
        ctx.sleep("settle", Duration::from_secs(3600)).await?;
        let again = if deployed {
            Some(ctx.patched("new-billing").await?)
        } else {
            None
        };
        counted(ctx, &self.0, "receipt", ()).await?;
        Ok(json!({ "charged": charged, "patched": [first, again] }))
    }
}

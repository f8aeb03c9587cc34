//! Replay-aware workflow code on a real PostgreSQL: a run that crashes (its lease still held,
//! nothing released) is resumed by a worker once the lease expires; `ctx.is_replaying()` is
//! true up to the last step recorded before the crash and false after it, and
//! `zart::durable_info!` lines before that step are not logged again. The task is written with
//! `#[zart_durable]`, so its typed client is exercised too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::sync::Semaphore;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use zart::scheduler::ClaimTasksParams;
use zart::{zart_durable, Scheduler, TaskContext, TaskError, TaskHandler, TaskRegistry};
use zart_tests::{count, wait_for, Harness};

/// Holds the body of step `third` until the test lets it through.
static GATE: Semaphore = Semaphore::const_new(0);

/// `(attempt, point, is_replaying)` at each point the workflow passes.
static POINTS: Mutex<Vec<(u32, &'static str, bool)>> = Mutex::new(Vec::new());

fn note(ctx: &TaskContext<impl Scheduler>, point: &'static str) {
    POINTS
        .lock()
        .unwrap()
        .push((ctx.attempt(), point, ctx.is_replaying()));
    zart::durable_info!(ctx, point, "replay-aware point");
}

fn unit() -> Result<(), std::io::Error> {
    Ok(())
}

/// Three steps, with a point before them and after each; `third` waits for [`GATE`].
#[zart_durable(name = "replay-aware")]
async fn replay_aware(
    ctx: &mut TaskContext<impl Scheduler>,
    label: String,
) -> Result<String, TaskError> {
    note(ctx, "start");
    ctx.step("first", || async { unit() }).await?;
    note(ctx, "after-first");
    ctx.step("second", || async { unit() }).await?;
    note(ctx, "after-second");
    ctx.step("third", || async {
        let _permit = GATE.acquire().await;
        unit()
    })
    .await?;
    note(ctx, "after-third");
    Ok(format!("{label} done"))
}

/// The `point` field of every `replay-aware point` event logged in this process.
fn logged_points() -> &'static Arc<Mutex<Vec<String>>> {
    static LOGGED: OnceLock<Arc<Mutex<Vec<String>>>> = OnceLock::new();
    LOGGED.get_or_init(|| {
        let logged = Arc::new(Mutex::new(Vec::new()));
        tracing_subscriber::registry()
            .with(Capture(logged.clone()))
            .try_init()
            .expect("this test binary installs the only subscriber");
        logged
    })
}

/// Records the `point` field of each event.
struct Capture(Arc<Mutex<Vec<String>>>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Point(Option<String>);
        impl tracing::field::Visit for Point {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                if field.name() == "point" {
                    self.0 = Some(value.to_owned());
                }
            }
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
        }
        let mut point = Point(None);
        event.record(&mut point);
        if let Some(point) = point.0 {
            self.0.lock().unwrap().push(point);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_crash_is_replaying_holds_until_the_last_recorded_step_and_quiet_logs_are_not_repeated(
) {
    let logged = logged_points();
    let mut registry = TaskRegistry::new();
    ReplayAware::register(&mut registry).unwrap();
    let h = Harness::with_registry(registry).await;
    let client = h.db.client().await;
    let id = "aware-1";
    assert!(
        ReplayAware::start(&h.durable, id, &"signup".to_owned())
            .await
            .unwrap()
            .created
    );

    // Run 1, by hand as a worker would: it records "first" and "second", then hangs in
    // "third" and dies (the task is dropped, the lease stays held, nothing is released).
    let lease = Duration::from_secs(30);
    let claimed = h
        .scheduler
        .claim_tasks(ClaimTasksParams {
            worker_id: "doomed".to_owned(),
            queue: "default".to_owned(),
            task_names: vec![ReplayAware::NAME.to_owned()],
            limit: 1,
            lease,
            ..Default::default()
        })
        .await
        .unwrap()
        .pop()
        .unwrap();
    let mut ctx = TaskContext::from_claim(h.scheduler.clone(), &claimed, Duration::from_secs(1));
    let input: String = serde_json::from_value(claimed.input.clone()).unwrap();
    let run = tokio::spawn(async move { ReplayAware.run(&mut ctx, input).await });
    wait_for(
        "steps first and second",
        Duration::from_secs(20),
        || async {
            (count(
                &client,
                "select count(*) from zart_steps where execution_id = 'aware-1'",
            )
            .await
                == 2)
                .then_some(())
        },
    )
    .await;
    run.abort();
    assert!(run.await.unwrap_err().is_cancelled());

    // Run 2: a worker takes the execution over once the lease has expired.
    GATE.add_permits(1);
    h.spawn_worker(zart::WorkerConfig::default());
    h.db.advance_clock(lease + Duration::from_secs(1)).await;
    let output = ReplayAware::wait(&h.durable, id, Some(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(output, "signup done", "the typed wait returns the output");

    assert_eq!(
        *POINTS.lock().unwrap(),
        [
            (1, "start", false),
            (1, "after-first", false),
            (1, "after-second", false),
            (2, "start", true),
            (2, "after-first", true),
            // "second" is the last step recorded before the crash: from here on, run 2 is
            // past anything recorded, though run 1 got here too.
            (2, "after-second", false),
            (2, "after-third", false),
        ]
    );
    assert_eq!(
        *logged.lock().unwrap(),
        [
            "start",
            "after-first",
            "after-second",
            "after-second",
            "after-third"
        ],
        "lines before the last recorded step are logged once; the one after it, like a step \
         body, once per run that reaches it"
    );
    h.stop().await;
}

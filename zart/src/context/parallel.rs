//! Parallel steps and children: several step bodies run concurrently and several child
//! workflows run at once; each is recorded on its own, so after a crash only the unfinished
//! ones run again, and the parent waits for all its children in one suspension.

use std::future::Future;
use std::pin::Pin;

use futures_util::future::join_all;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::waits::{finished_child, recorded_child};
use super::{Replay, TaskContext};
use crate::error::BoxError;
use crate::scheduler::{ChildSpec, ChildWait, StartChildrenParams, StepKind};
use crate::{Scheduler, TaskError};

type BodyFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send + 'a>>;
type Body<'a, T> = Box<dyn FnOnce() -> BodyFuture<'a, T> + Send + 'a>;

/// A set of named steps to run concurrently, and child workflows to run at once, for
/// [`TaskContext::wait_all`]. Members take their positions in the order they are added.
///
/// # Examples
/// ```no_run
/// # use zart::{Parallel, Scheduler, TaskContext, TaskError};
/// # async fn price(_: &str) -> Result<u64, std::io::Error> { Ok(1) }
/// # async fn example(ctx: &mut TaskContext<impl Scheduler>) -> Result<(), TaskError> {
/// let prices: Vec<u64> = ctx
///     .wait_all(
///         Parallel::new()
///             .step("price-a", || async { price("a").await })
///             .step("price-b", || async { price("b").await })
///             .child("price-c", "quote-partner", &serde_json::json!({"sku": "c"})),
///     )
///     .await?;
/// # Ok(()) }
/// ```
pub struct Parallel<'a, T> {
    members: Vec<Member<'a, T>>,
}

/// One member of a [`Parallel`].
enum Member<'a, T> {
    Step(String, Body<'a, T>),
    Child {
        name: String,
        task: String,
        input: Result<serde_json::Value, serde_json::Error>,
    },
}

impl<T> Member<'_, T> {
    fn name(&self) -> &str {
        match self {
            Member::Step(name, _) | Member::Child { name, .. } => name,
        }
    }
}

impl<T> std::fmt::Debug for Parallel<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.members.iter().map(Member::name).collect();
        f.debug_struct("Parallel").field("members", &names).finish()
    }
}

impl<T> Default for Parallel<'_, T> {
    fn default() -> Self {
        Parallel {
            members: Vec::new(),
        }
    }
}

impl<'a, T: Send + 'a> Parallel<'a, T> {
    /// An empty set.
    pub fn new() -> Self {
        Parallel::default()
    }

    /// Adds a step named `name` whose body is `f`.
    pub fn step<E, F, Fut>(mut self, name: impl Into<String>, f: F) -> Self
    where
        E: Into<BoxError> + 'a,
        F: FnOnce() -> Fut + Send + 'a,
        Fut: Future<Output = Result<T, E>> + Send + 'a,
    {
        let body: Body<'a, T> = Box::new(move || {
            let fut = f();
            Box::pin(async move { fut.await.map_err(Into::into) })
        });
        self.members.push(Member::Step(name.into(), body));
        self
    }

    /// Adds a child workflow: the execution `<this execution's id>/<name>` of task `task` with
    /// `input`, as [`TaskContext::child`] starts it; its output (the child task's `Output`) is
    /// this member's result.
    pub fn child<I: Serialize>(
        mut self,
        name: impl Into<String>,
        task: impl Into<String>,
        input: &I,
    ) -> Self {
        self.members.push(Member::Child {
            name: name.into(),
            task: task.into(),
            input: serde_json::to_value(input),
        });
        self
    }

    /// How many members are in the set.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// True when no member was added.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }
}

/// A child of a [`Parallel`] still to start or to wait for: its index in the set, and itself.
type PendingChild = (usize, ChildSpec);

impl<S: Scheduler> TaskContext<S> {
    /// Runs the steps of `parallel` concurrently, runs its children at once, and returns every
    /// member's result in the order they were added. Each step is recorded as soon as it ends;
    /// on replay, recorded steps return their results and only unfinished ones run. When steps
    /// fail, all still run to their end and are recorded, and the first failure in order is
    /// returned with its kind and message. Step members have no timeout or retry of their own:
    /// each is one attempt, as with [`TaskContext::step`].
    ///
    /// Children are started together (one call to the store), before the step bodies run, so
    /// they run on other workers meanwhile. Once the steps are recorded, the execution waits
    /// for its unfinished children in one suspension, holding no worker slot, and is woken at
    /// most once per child (when the first unfinished one in order ends, at which point every
    /// child finished by then is recorded). A failed or cancelled child is a failure of kind
    /// `child_failed`, as with [`TaskContext::child`]. If a step fails, the children are not
    /// waited for: the failure is returned at once (the children run on; if the failure fails
    /// the execution, they are cancelled with it).
    ///
    /// # Errors
    /// As [`TaskContext::step`] and [`TaskContext::child`]; [`TaskError::Suspended`] while
    /// children run.
    pub async fn wait_all<'a, T>(&mut self, parallel: Parallel<'a, T>) -> Result<Vec<T>, TaskError>
    where
        T: Serialize + DeserializeOwned + Send + 'a,
    {
        let mut done: Vec<Option<Result<T, TaskError>>> = Vec::with_capacity(parallel.len());
        let mut to_run = Vec::new();
        let mut children: Vec<PendingChild> = Vec::new();
        // A step failed, now or in the recorded run: children are then not waited for (on
        // replay too, so a replay does what the first run did).
        let mut step_failed = false;
        for (index, member) in parallel.members.into_iter().enumerate() {
            done.push(None);
            match member {
                Member::Step(name, body) => match self.begin_step(&name)? {
                    Replay::Done(result) => {
                        step_failed |= result.is_err();
                        done[index] = Some(result);
                    }
                    Replay::Run {
                        seq,
                        prior_attempts,
                    } => to_run.push((index, name, seq, prior_attempts + 1, body)),
                },
                Member::Child { name, task, input } => {
                    let child_id = self.child_id(&name)?;
                    let (seq, recorded) = self.enter(&name, StepKind::Child)?;
                    if let Some(result) = recorded.and_then(|r| recorded_child(&name, &child_id, r))
                    {
                        done[index] = Some(result);
                        continue;
                    }
                    let input = input.map_err(|source| TaskError::Serialization {
                        action: "serialize",
                        what: format!("the input of child {child_id:?}"),
                        source,
                    })?;
                    let spec = ChildSpec {
                        name,
                        seq,
                        child_id,
                        task_name: task,
                        input,
                    };
                    children.push((index, spec));
                }
            }
        }
        // Children first, so they run while the steps do (the wait comes after the steps).
        if !children.is_empty() && !to_run.is_empty() {
            children = self.start_children(children, false, &mut done).await?;
        }

        let this = &*self;
        let finished = join_all(to_run.into_iter().map(
            |(index, name, seq, attempt, body)| async move {
                let outcome = this.run_body(&name, attempt, None, body()).await;
                (
                    index,
                    this.record_outcome(&name, seq, attempt, outcome).await,
                )
            },
        ))
        .await;
        for (index, result) in finished {
            step_failed |= result.is_err();
            done[index] = Some(result);
        }

        if !children.is_empty() && !step_failed {
            let waiting = self.start_children(children, true, &mut done).await?;
            if !waiting.is_empty() {
                return Err(self.suspend(None));
            }
        }
        let mut results = Vec::with_capacity(done.len());
        for result in done {
            match result {
                Some(result) => results.push(result?),
                // A child not waited for because a step failed: that failure came first
                // or later in order, and is returned when reached.
                None => continue,
            }
        }
        Ok(results)
    }

    /// Starts (or finds) `children` in one call, suspending the run while any is unfinished if
    /// `suspend`; puts each finished child's result in `done` and returns the unfinished ones.
    async fn start_children<T: DeserializeOwned>(
        &mut self,
        children: Vec<PendingChild>,
        suspend: bool,
        done: &mut [Option<Result<T, TaskError>>],
    ) -> Result<Vec<PendingChild>, TaskError> {
        let waits = self
            .scheduler
            .start_children(StartChildrenParams {
                lease: self.lease.clone(),
                queue: self.queue.clone(),
                children: children.iter().map(|(_, spec)| spec.clone()).collect(),
                suspend,
            })
            .await?;
        if waits.len() != children.len() {
            return Err(TaskError::failed(crate::Error::Database {
                message: format!(
                    "the store answered for {} of {} children",
                    waits.len(),
                    children.len()
                ),
                source: None,
            }));
        }
        let mut unfinished = Vec::new();
        for ((index, spec), wait) in children.into_iter().zip(waits) {
            match wait {
                ChildWait::Finished {
                    status,
                    output,
                    error,
                } => {
                    done[index] = Some(finished_child(
                        &spec.name,
                        &spec.child_id,
                        status,
                        output,
                        error,
                    ));
                }
                ChildWait::Waiting | ChildWait::Detached => unfinished.push((index, spec)),
            }
        }
        Ok(unfinished)
    }
}

//! Parallel steps: several step bodies run concurrently; each is recorded on its own, so after
//! a crash only the unfinished ones run again.

use std::future::Future;
use std::pin::Pin;

use futures_util::future::join_all;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Replay, TaskContext};
use crate::error::BoxError;
use crate::{Scheduler, TaskError};

type BodyFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, BoxError>> + Send + 'a>>;
type Body<'a, T> = Box<dyn FnOnce() -> BodyFuture<'a, T> + Send + 'a>;

/// A set of named steps to run concurrently with [`TaskContext::wait_all`]. They take their
/// positions in the order they are added.
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
///             .step("price-b", || async { price("b").await }),
///     )
///     .await?;
/// # Ok(()) }
/// ```
pub struct Parallel<'a, T> {
    steps: Vec<(String, Body<'a, T>)>,
}

impl<T> std::fmt::Debug for Parallel<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.steps.iter().map(|(n, _)| n.as_str()).collect();
        f.debug_struct("Parallel").field("steps", &names).finish()
    }
}

impl<T> Default for Parallel<'_, T> {
    fn default() -> Self {
        Parallel { steps: Vec::new() }
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
        self.steps.push((name.into(), body));
        self
    }

    /// How many steps are in the set.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// True when no step was added.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }
}

impl<S: Scheduler> TaskContext<S> {
    /// Runs the steps of `parallel` concurrently and returns their results in the order they
    /// were added. Each step is recorded as soon as it ends; on replay, recorded steps return
    /// their results and only unfinished ones run. When steps fail, all still run to their end
    /// and are recorded, and the first failure in order is returned with its kind and message.
    /// Members have no timeout or retry of their own: each is one attempt, as with
    /// [`TaskContext::step`].
    ///
    /// # Errors
    /// As [`TaskContext::step`].
    pub async fn wait_all<'a, T>(&mut self, parallel: Parallel<'a, T>) -> Result<Vec<T>, TaskError>
    where
        T: Serialize + DeserializeOwned + Send + 'a,
    {
        let mut done: Vec<Option<Result<T, TaskError>>> = Vec::with_capacity(parallel.len());
        let mut to_run = Vec::new();
        for (index, (name, body)) in parallel.steps.into_iter().enumerate() {
            match self.begin_step(&name)? {
                Replay::Done(result) => done.push(Some(result)),
                Replay::Run {
                    seq,
                    prior_attempts,
                } => {
                    done.push(None);
                    to_run.push((index, name, seq, prior_attempts + 1, body));
                }
            }
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
            done[index] = Some(result);
        }
        done.into_iter()
            .map(|r| r.unwrap_or(Err(TaskError::failed("parallel step lost its result"))))
            .collect()
    }
}

//! The [`TaskRegistry`]: task names mapped to handlers.
//!
//! `TaskHandler::run` is generic over the scheduler, so handlers cannot be trait objects. The
//! registry keeps each one behind a small adapter that takes and returns JSON and calls the
//! typed `run` with the type-erased [`DynScheduler`]. That is where the scheduler type is fixed,
//! once, for every backend.

use std::any::TypeId;
use std::collections::btree_map::Entry;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::scheduler::DynScheduler;
use crate::{Error, TaskContext, TaskError, TaskHandler};

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A handler with its types erased: JSON in, JSON out.
pub(crate) trait ErasedHandler: Send + Sync {
    fn run<'a>(
        &'a self,
        ctx: &'a mut TaskContext<DynScheduler>,
        input: serde_json::Value,
    ) -> BoxFuture<'a, Result<serde_json::Value, TaskError>>;

    fn data_type(&self) -> (TypeId, &'static str);
}

struct Adapter<H>(H);

impl<H: TaskHandler> ErasedHandler for Adapter<H> {
    fn run<'a>(
        &'a self,
        ctx: &'a mut TaskContext<DynScheduler>,
        input: serde_json::Value,
    ) -> BoxFuture<'a, Result<serde_json::Value, TaskError>> {
        Box::pin(async move {
            let data: H::Data =
                serde_json::from_value(input).map_err(|source| TaskError::Serialization {
                    action: "deserialize",
                    what: format!("the input of task {:?}", ctx.task_name()),
                    source,
                })?;
            let output = self.0.run(ctx, data).await?;
            serde_json::to_value(output).map_err(|source| TaskError::Serialization {
                action: "serialize",
                what: format!("the output of task {:?}", ctx.task_name()),
                source,
            })
        })
    }

    fn data_type(&self) -> (TypeId, &'static str) {
        (TypeId::of::<H::Data>(), std::any::type_name::<H::Data>())
    }
}

/// Maps task names to [`TaskHandler`]s. Share it with [`crate::Worker`] and
/// [`crate::DurableScheduler`] behind an `Arc`.
///
/// # Examples
/// ```
/// # use async_trait::async_trait;
/// # use zart::{Scheduler, TaskContext, TaskError, TaskHandler};
/// # struct Onboarding;
/// # #[async_trait]
/// # impl TaskHandler for Onboarding {
/// #     type Data = ();
/// #     type Output = ();
/// #     async fn run(&self, _: &mut TaskContext<impl Scheduler>, _: ()) -> Result<(), TaskError> { Ok(()) }
/// # }
/// use zart::TaskRegistry;
///
/// let mut registry = TaskRegistry::new();
/// registry.register("onboarding", Onboarding)?;
/// assert!(registry.contains("onboarding"));
/// assert_eq!(registry.task_names(), vec!["onboarding".to_string()]);
/// # Ok::<(), zart::Error>(())
/// ```
#[derive(Default, Clone)]
pub struct TaskRegistry {
    handlers: BTreeMap<String, Arc<dyn ErasedHandler>>,
}

impl std::fmt::Debug for TaskRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskRegistry")
            .field("tasks", &self.task_names())
            .finish()
    }
}

impl TaskRegistry {
    /// An empty registry.
    pub fn new() -> Self {
        TaskRegistry::default()
    }

    /// Registers `handler` under `name`. Returns the registry, so registrations chain with
    /// `?`. The name is checked (1 to 255 bytes, no NUL) when a worker or client uses the
    /// registry.
    ///
    /// # Errors
    /// [`Error::DuplicateTask`] when a handler is already registered under `name`; the
    /// registry is left as it was. A worker runs one handler per name, so a second one would
    /// silently replace the first.
    ///
    /// # Examples
    /// ```
    /// # use zart::{Scheduler, TaskContext, TaskError, TaskHandler, TaskRegistry};
    /// # struct Onboarding;
    /// # #[zart::async_trait]
    /// # impl TaskHandler for Onboarding {
    /// #     type Data = ();
    /// #     type Output = ();
    /// #     async fn run(&self, _: &mut TaskContext<impl Scheduler>, _: ()) -> Result<(), TaskError> { Ok(()) }
    /// # }
    /// let mut registry = TaskRegistry::new();
    /// registry.register("onboarding", Onboarding)?;
    /// let err = registry.register("onboarding", Onboarding).unwrap_err();
    /// assert_eq!(err.code(), "duplicate_task");
    /// # Ok::<(), zart::Error>(())
    /// ```
    pub fn register<H: TaskHandler>(
        &mut self,
        name: impl Into<String>,
        handler: H,
    ) -> Result<&mut Self, Error> {
        match self.handlers.entry(name.into()) {
            Entry::Occupied(taken) => Err(Error::DuplicateTask {
                name: taken.key().clone(),
            }),
            Entry::Vacant(slot) => {
                slot.insert(Arc::new(Adapter(handler)));
                Ok(self)
            }
        }
    }

    /// True if a handler is registered under `name`.
    pub fn contains(&self, name: &str) -> bool {
        self.handlers.contains_key(name)
    }

    /// The registered task names, sorted.
    pub fn task_names(&self) -> Vec<String> {
        self.handlers.keys().cloned().collect()
    }

    /// Checks every registered name against the limits in [`crate::limits`].
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for the first bad name, and when nothing is registered.
    pub fn validate(&self) -> Result<(), Error> {
        if self.handlers.is_empty() {
            return Err(Error::invalid(
                "task registry",
                "no task is registered; call TaskRegistry::register first",
            ));
        }
        self.handlers
            .keys()
            .try_for_each(|name| crate::limits::check_name("task name", name))
    }

    /// The `Data` type of the handler registered under `name`, if any.
    pub(crate) fn data_type(&self, name: &str) -> Option<(TypeId, &'static str)> {
        self.handlers.get(name).map(|h| h.data_type())
    }

    pub(crate) fn get(&self, name: &str) -> Option<Arc<dyn ErasedHandler>> {
        self.handlers.get(name).cloned()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::Scheduler;

    struct Returns(u32);

    #[async_trait::async_trait]
    impl TaskHandler for Returns {
        type Data = ();
        type Output = u32;
        async fn run(&self, _: &mut TaskContext<impl Scheduler>, _: ()) -> Result<u32, TaskError> {
            Ok(self.0)
        }
    }

    #[test]
    fn a_second_handler_under_one_name_is_refused_and_the_first_kept() {
        let mut registry = TaskRegistry::new();
        registry
            .register("a", Returns(1))
            .unwrap()
            .register("b", Returns(2))
            .unwrap();
        let err = registry.register("a", Returns(3)).unwrap_err();
        assert_eq!(err.code(), "duplicate_task");
        assert_eq!(
            err.to_string(),
            "task \"a\" is registered twice: a task name takes exactly one handler"
        );
        assert_eq!(registry.task_names(), ["a", "b"]);
        assert_eq!(
            registry.data_type("a").map(|(_, name)| name),
            Some("()"),
            "the first handler stays"
        );
    }
}

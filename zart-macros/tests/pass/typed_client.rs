// The generated struct, name, registration and typed client, for both default and given names.
use serde::{Deserialize, Serialize};
use zart::scheduler::DynScheduler;
use zart::{Scheduler, TaskContext, TaskError, TaskHandler, TaskRegistry};
use zart_macros::zart_durable;

#[derive(Serialize, Deserialize)]
pub struct Signup {
    email: String,
}

/// Sends the welcome email.
#[zart_durable]
pub async fn onboarding_v2(
    ctx: &mut TaskContext<impl Scheduler>,
    data: Signup,
) -> Result<u64, TaskError> {
    let now = ctx
        .step("now", || async {
            Ok::<_, std::io::Error>(std::time::SystemTime::now())
        })
        .await?;
    let _ = now;
    let len = data.email.len() as u64;
    zart::durable_info!(ctx, len, "email length");
    Ok(len)
}

#[zart_durable(name = "billing/setup", struct = SetupBilling, allow_replay_hazards)]
async fn billing(ctx: &mut zart::TaskContext<impl zart::Scheduler>, (): ()) -> Result<(), zart::TaskError> {
    let _started = std::time::Instant::now();
    let _ = ctx.is_replaying();
    Ok(())
}

fn takes_handler<H: TaskHandler<Data = D, Output = O>, D, O>(_: &H) {}

fn main() {
    assert_eq!(OnboardingV2::NAME, "onboarding_v2");
    assert_eq!(SetupBilling::NAME, "billing/setup");
    takes_handler::<_, Signup, u64>(&OnboardingV2);
    takes_handler::<_, (), ()>(&SetupBilling);

    let mut registry = TaskRegistry::new();
    OnboardingV2::register(&mut registry).unwrap();
    SetupBilling::register(&mut registry).unwrap();
    assert_eq!(registry.task_names(), ["billing/setup", "onboarding_v2"]);
    let err = OnboardingV2::register(&mut registry).unwrap_err();
    assert_eq!(err.code(), "duplicate_task");

    // The typed client's signatures.
    let _start = OnboardingV2::start::<DynScheduler>;
    let _status = OnboardingV2::status::<DynScheduler>;
    let _wait = SetupBilling::wait::<DynScheduler>;
}

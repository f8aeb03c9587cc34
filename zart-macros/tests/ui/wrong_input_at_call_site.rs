// The typed client checks the input and output types where the task is used.
use zart::{DurableScheduler, Scheduler, TaskContext, TaskError};

#[derive(serde::Serialize, serde::Deserialize)]
struct Signup {
    email: String,
}

#[zart_macros::zart_durable]
async fn onboarding(ctx: &mut TaskContext<impl Scheduler>, data: Signup) -> Result<u64, TaskError> {
    let _ = ctx;
    Ok(data.email.len() as u64)
}

async fn client<S: Scheduler>(durable: &DurableScheduler<S>) -> Result<(), zart::Error> {
    Onboarding::start(durable, "signup-user-42", &"alice@example.com".to_owned()).await?;
    let customer: String = Onboarding::wait(durable, "signup-user-42", None).await?;
    let _ = customer;
    Ok(())
}

fn main() {
    let _ = client::<zart::scheduler::DynScheduler>;
}

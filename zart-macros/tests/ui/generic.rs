use zart::{Scheduler, TaskContext, TaskError};

#[zart_macros::zart_durable]
async fn onboarding<T: serde::de::DeserializeOwned>(
    ctx: &mut TaskContext<impl Scheduler>,
    data: T,
) -> Result<(), TaskError> {
    let _ = (ctx, data);
    Ok(())
}

fn main() {}

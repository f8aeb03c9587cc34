use zart::{Scheduler, TaskContext, TaskError};

#[zart_macros::zart_durable]
async fn onboarding(ctx: &mut TaskContext<impl Scheduler>) -> Result<(), TaskError> {
    let _ = ctx;
    Ok(())
}

#[zart_macros::zart_durable]
async fn nothing() -> Result<(), TaskError> {
    Ok(())
}

fn main() {}

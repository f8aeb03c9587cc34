use zart::{Scheduler, TaskContext, TaskError};

#[zart_macros::zart_durable]
async fn onboarding(ctx: &mut TaskContext<impl Scheduler>, data: &str) -> Result<(), TaskError> {
    let _ = (ctx, data);
    Ok(())
}

fn main() {}

use zart::{Scheduler, TaskContext, TaskError};

#[zart_macros::zart_durable]
async fn onboarding(ctx: &TaskContext<impl Scheduler>, data: String) -> Result<(), TaskError> {
    let _ = (ctx, data);
    Ok(())
}

fn main() {}

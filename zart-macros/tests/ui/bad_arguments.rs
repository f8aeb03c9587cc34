use zart::{Scheduler, TaskContext, TaskError};

#[zart_macros::zart_durable(queue = "emails")]
async fn onboarding(ctx: &mut TaskContext<impl Scheduler>, data: String) -> Result<(), TaskError> {
    let _ = (ctx, data);
    Ok(())
}

#[zart_macros::zart_durable(name = "")]
async fn billing(ctx: &mut TaskContext<impl Scheduler>, data: String) -> Result<(), TaskError> {
    let _ = (ctx, data);
    Ok(())
}

fn main() {}

use zart::{Scheduler, TaskContext, TaskError};

#[zart_macros::zart_durable]
fn onboarding(ctx: &mut TaskContext<impl Scheduler>, data: String) -> Result<(), TaskError> {
    let _ = (ctx, data);
    Ok(())
}

fn main() {}

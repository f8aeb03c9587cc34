use zart::scheduler::DynScheduler;
use zart::{TaskContext, TaskError};

#[zart_macros::zart_durable]
async fn onboarding(ctx: &mut String, data: String) -> Result<(), TaskError> {
    let _ = (ctx, data);
    Ok(())
}

#[zart_macros::zart_durable]
async fn billing(ctx: &mut TaskContext<DynScheduler>, data: String) -> Result<(), TaskError> {
    let _ = (ctx, data);
    Ok(())
}

fn main() {}

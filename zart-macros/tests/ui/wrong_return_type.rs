use zart::{Scheduler, TaskContext, TaskError};

#[zart_macros::zart_durable]
async fn onboarding(ctx: &mut TaskContext<impl Scheduler>, data: String) -> Result<(), String> {
    let _ = (ctx, data);
    Ok(())
}

#[zart_macros::zart_durable]
async fn billing(ctx: &mut TaskContext<impl Scheduler>, data: String) {
    let _ = (ctx, data);
}

#[zart_macros::zart_durable]
async fn invoice(ctx: &mut TaskContext<impl Scheduler>, data: String) -> u64 {
    let _ = (ctx, data);
    7
}

fn _uses(_: TaskError) {}

fn main() {}

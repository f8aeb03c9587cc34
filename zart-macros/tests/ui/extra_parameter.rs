use zart::{Scheduler, TaskContext, TaskError};

#[zart_macros::zart_durable]
async fn onboarding(
    ctx: &mut TaskContext<impl Scheduler>,
    email: String,
    user_id: u64,
) -> Result<(), TaskError> {
    let _ = (ctx, email, user_id);
    Ok(())
}

fn main() {}

use zart::{Scheduler, TaskContext, TaskError};

struct Mailer;

impl Mailer {
    #[zart_macros::zart_durable]
    async fn onboarding(&self, ctx: &mut TaskContext<impl Scheduler>) -> Result<(), TaskError> {
        let _ = ctx;
        Ok(())
    }
}

fn main() {}

// Calls that break replay outside a step are warned about (denied here, to show the warnings);
// the same calls inside a step body are not.
#![deny(deprecated)]

use std::time::{Duration, Instant, SystemTime};
use zart::{Scheduler, TaskContext, TaskError};

#[zart_macros::zart_durable]
async fn onboarding(ctx: &mut TaskContext<impl Scheduler>, data: String) -> Result<(), TaskError> {
    let started = Instant::now();
    println!("{data} at {:?}", SystemTime::now());
    tokio::time::sleep(Duration::from_secs(1)).await;
    tokio::spawn(async {});
    let pick: u32 = rand::random();
    let recorded = ctx
        .step("now", || async { Ok::<_, std::io::Error>(SystemTime::now()) })
        .await?;
    let _ = (started, pick, recorded);
    Ok(())
}

fn main() {}

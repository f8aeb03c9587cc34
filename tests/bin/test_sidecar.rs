//! A sidecar process running the test tasks (`zart_tests::tasks::registry`): what
//! `zart_sidecar::run` makes of a registry, for tests/sidecar.rs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::ExitCode;

fn main() -> ExitCode {
    // The tasks write their side effects through a pool of their own.
    let url = std::env::var("DATABASE_URL").unwrap_or_default();
    let Ok(pool) = zart_pg::PgPool::connect_lazy(&url, 4) else {
        eprintln!("zart-test-sidecar: DATABASE_URL must be a PostgreSQL URL");
        return ExitCode::from(zart_sidecar::exit::CONFIG);
    };
    zart_sidecar::run(zart_tests::tasks::registry(pool.pool().clone()))
}

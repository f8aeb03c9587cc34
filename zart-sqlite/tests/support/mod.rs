//! What several test files share: a fresh, migrated database file per test, a scheduler on it
//! with the test clock on, and a plain connection for counting rows the API does not show.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::Connection;
use zart_sqlite::{SqliteOptions, SqliteScheduler};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// One test's database: the scheduler (test clock on) and a plain connection. The files are
/// removed when it drops, unless the test failed.
pub struct Db {
    dir: PathBuf,
    pub s: SqliteScheduler,
    pub conn: Mutex<Connection>,
}

impl Drop for Db {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A fresh database under a temporary directory named after `name`.
pub async fn db_with(name: &str, options: SqliteOptions) -> Db {
    let dir = std::env::temp_dir().join(format!(
        "zart-sqlite-{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("zart.db");
    let url = format!("sqlite://{}", file.display());
    zart_sqlite::migrate(&url).await.unwrap();
    let s = SqliteScheduler::connect_with(&url, options.test_clock(true))
        .await
        .unwrap();
    let conn = Connection::open(&file).unwrap();
    conn.busy_timeout(Duration::from_secs(5)).unwrap();
    Db {
        dir,
        s,
        conn: Mutex::new(conn),
    }
}

//! Wake-ups from other processes: a [`ChangeProbe`] that reads `PRAGMA data_version` on a
//! dedicated read connection, for [`zart::wakeups::Poller`].
//!
//! `data_version` changes when a connection other than the reading one commits: another
//! process, and also this process's writer (whose wake-ups were already sent at once, so such
//! a change costs one extra look). The poller reads it every 10 ms right after a change and
//! backs off to 40 ms while idle; an idle poll touches no Zart table.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::Connection;
use zart::wakeups::{ChangeProbe, PollSettings};
use zart::Error;

use crate::ops::read::data_version;
use crate::writer::lock;

/// How often the probe is read: 10 ms after a change, backing off to 40 ms while idle.
pub const POLL_SETTINGS: PollSettings = PollSettings {
    min_interval: Duration::from_millis(10),
    max_interval: Duration::from_millis(40),
};

/// Reads `PRAGMA data_version` on its own connection.
pub(crate) struct DataVersionProbe {
    conn: Arc<Mutex<Connection>>,
}

impl DataVersionProbe {
    pub(crate) fn new(conn: Arc<Mutex<Connection>>) -> Self {
        DataVersionProbe { conn }
    }
}

#[async_trait]
impl ChangeProbe for DataVersionProbe {
    async fn version(&self) -> Result<u64, Error> {
        // Inline, not on the blocking pool: the connection is this probe's alone, and the
        // pragma reads the shared WAL index in memory without waiting for any lock.
        data_version(&lock(&self.conn))
    }
}

//! Live updates for the web UI: one snapshot (queue counts and the newest executions) read per
//! interval per server, whatever the number of browsers, and pushed to each of them as
//! server-sent events. Nothing is read while no browser listens.

use std::convert::Infallible;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::Stream;
use serde::Serialize;
use tokio::sync::watch;
use zart::admin::{Admin, ListExecutionsParams};
use zart::view::{time, ExecutionPageView};

use crate::api::{queue_views, QueueView};
use crate::Backend;

/// How many of the newest executions a snapshot carries.
const RECENT: u32 = 50;

/// The latest snapshot, and the task that refreshes it (started by the first listener).
pub(crate) struct Live {
    latest: watch::Sender<Option<Arc<str>>>,
    started: OnceLock<()>,
    refresh: Duration,
}

impl Live {
    pub(crate) fn new(refresh: Duration) -> Self {
        Live {
            latest: watch::channel(None).0,
            started: OnceLock::new(),
            refresh,
        }
    }

    /// Starts the refresh task once: it reads a snapshot every `refresh` while someone
    /// listens, and publishes it when it changed.
    fn start(self: &Arc<Self>, backend: Arc<dyn Backend>) {
        self.started.get_or_init(|| {
            // Weak: the task ends once the router (and every stream) is gone.
            let live = Arc::downgrade(self);
            tokio::spawn(async move {
                // The data of the last snapshot sent, without its time: only a change of data
                // is news.
                let mut last = String::new();
                while let Some(live) = live.upgrade() {
                    if live.latest.receiver_count() > 0 {
                        match snapshot(&*backend).await {
                            Ok((data, json)) => {
                                if data != last {
                                    last = data;
                                    live.latest.send_replace(Some(Arc::from(json.as_str())));
                                }
                            }
                            Err(e) => tracing::warn!(
                                error = %zart::error::error_chain(&e),
                                "admin UI: reading a live snapshot failed"
                            ),
                        }
                    }
                    let refresh = live.refresh;
                    drop(live);
                    tokio::time::sleep(refresh).await;
                }
            });
        });
    }
}

/// What a browser gets on each change.
#[derive(Serialize)]
struct Snapshot {
    /// When it was read (this server's clock).
    at: String,
    queues: Vec<QueueView>,
    recent: ExecutionPageView,
}

/// A snapshot: its data alone (to compare), and with the time it was read (to send).
async fn snapshot(backend: &dyn Backend) -> Result<(String, String), zart::Error> {
    let queues = queue_views(backend.queue_stats().await?);
    let page = Admin::list_executions(backend, ListExecutionsParams::new(RECENT)).await?;
    let mut snapshot = Snapshot {
        at: String::new(),
        queues,
        recent: ExecutionPageView::from(&page),
    };
    let json = |s: &Snapshot| {
        serde_json::to_string(s).map_err(|source| zart::Error::Serialization {
            action: "serialize",
            what: "a live snapshot".into(),
            source,
        })
    };
    let data = json(&snapshot)?;
    snapshot.at = time(SystemTime::now());
    Ok((data, json(&snapshot)?))
}

/// `GET /api/stream`: server-sent events named `snapshot`, the latest one first.
pub(crate) async fn stream(
    State(state): State<crate::api::State>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    state.live.start(state.backend.clone());
    let mut rx = state.live.latest.subscribe();
    rx.mark_changed();
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        loop {
            rx.changed().await.ok()?;
            let latest = rx.borrow_and_update().clone();
            if let Some(json) = latest {
                return Some((Ok(Event::default().event("snapshot").data(&*json)), rx));
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::default())
}

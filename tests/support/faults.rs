//! Faults the chaos suites inject besides kills and restarts: a process whose wall clock is
//! skewed (libfaketime), and a network path between a worker and the database that the test can
//! stall ([`StallProxy`]).

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The environment `faketime -f <skew>` runs a program with (`LD_PRELOAD` of libfaketime and
/// `FAKETIME`), checked to shift the wall clock of a process started with it by `skew_secs`.
/// Passing it to a process directly keeps that process our own child (faketime(1) would fork
/// it).
///
/// # Errors
/// When `faketime` is missing (Debian: `apt-get install -y faketime`) or does not shift the
/// clock as asked.
pub fn faketime_env(skew: &str, skew_secs: i64) -> Result<Vec<(String, String)>, String> {
    // The wrapper names a semaphore after its pid; one left behind by a process of an earlier
    // run with that pid (killed, so it never removed it) makes it fail with "sem_open: File
    // exists". A new process has a new pid: try again.
    let mut tries = 0;
    loop {
        match faketime_env_once(skew, skew_secs) {
            Err(e) if e.contains("sem_open") && tries < 5 => tries += 1,
            other => return other,
        }
    }
}

/// Removes the shared memory and semaphore libfaketime made for process `pid`, which a
/// process killed with SIGKILL leaves in /dev/shm (and a later process with its pid trips on).
pub fn remove_faketime_leftovers(pid: u32) {
    let _ = std::fs::remove_file(format!("/dev/shm/faketime_shm_{pid}"));
    let _ = std::fs::remove_file(format!("/dev/shm/sem.faketime_sem_{pid}"));
}

fn faketime_env_once(skew: &str, skew_secs: i64) -> Result<Vec<(String, String)>, String> {
    let out = std::process::Command::new("faketime")
        .args(["-f", skew, "env"])
        .output()
        .map_err(|e| {
            format!(
                "cannot run `faketime` ({e}): a worker with a wall clock {skew} off needs it; \
                 install it with `apt-get install -y faketime`"
            )
        })?;
    if !out.status.success() {
        return Err(format!(
            "`faketime -f {skew} env` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let env: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_once('='))
        // FAKETIME_SHARED names the shared memory of that faketime process, gone by now.
        .filter(|(k, _)| *k == "LD_PRELOAD" || *k == "FAKETIME")
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    if !env
        .iter()
        .any(|(k, v)| k == "LD_PRELOAD" && v.contains("faketime"))
    {
        return Err(format!("faketime did not set LD_PRELOAD: {env:?}"));
    }
    // The shift is real for a process started with this environment.
    let date = std::process::Command::new("date")
        .arg("+%s")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .map_err(|e| format!("running date under faketime: {e}"))?;
    let theirs: i64 = String::from_utf8_lossy(&date.stdout)
        .trim()
        .parse()
        .map_err(|e| format!("date under faketime printed no number: {e}"))?;
    let ours = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if (theirs - ours - skew_secs).abs() > 5 {
        return Err(format!(
            "a process under {env:?} sees {theirs}, {} s from our {ours}; expected {skew_secs}",
            theirs - ours
        ));
    }
    Ok(env)
}

/// A TCP proxy on 127.0.0.1 in front of a database, whose traffic the test can stall: while
/// stalled, no byte moves in either direction on any of its connections (they stay open, as
/// over a network link that stopped passing packets), and everything queued flows once it is
/// resumed. Give each worker its own proxy to stall one worker's path alone.
pub struct StallProxy {
    port: u16,
    stalled: watch::Sender<bool>,
    accept: tokio::task::JoinHandle<()>,
}

impl StallProxy {
    /// Starts a proxy to `upstream` (`host:port`).
    ///
    /// # Errors
    /// When no local port can be bound.
    pub async fn start(upstream: String) -> std::io::Result<StallProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let (stalled, watcher) = watch::channel(false);
        let upstream = Arc::new(upstream);
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (upstream, watcher) = (upstream.clone(), watcher.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream.as_str()).await {
                        let _ = client.set_nodelay(true);
                        let _ = server.set_nodelay(true);
                        let (cr, cw) = client.into_split();
                        let (sr, sw) = server.into_split();
                        tokio::join!(pipe(cr, sw, watcher.clone()), pipe(sr, cw, watcher));
                    }
                });
            }
        });
        Ok(StallProxy {
            port,
            stalled,
            accept,
        })
    }

    /// The local port clients connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops (`true`) or resumes (`false`) all traffic through the proxy.
    pub fn stall(&self, stalled: bool) {
        let _ = self.stalled.send(stalled);
    }
}

impl Drop for StallProxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Copies `from` to `to`, holding each chunk while the proxy is stalled.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut stalled: watch::Receiver<bool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if stalled.wait_for(|s| !*s).await.is_err() {
            break;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}

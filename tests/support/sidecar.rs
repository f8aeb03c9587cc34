//! Sidecar processes for tests: start one (a binary built with `zart_sidecar::run`) with
//! short test settings, wait for `/readyz`, scrape `/metrics`, send SIGTERM and read its log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A GET over HTTP/1.1: the status and body, or `None` when nothing answers.
pub async fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .ok()?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).await.ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    Some((status, body.to_owned()))
}

/// The value of one sample line of a Prometheus text page (`name{labels} value`).
pub fn sample(page: &str, series: &str) -> Option<f64> {
    page.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .trim()
            .parse()
            .ok()
    })
}

/// A sidecar child process, its HTTP port and its log file.
pub struct Sidecar {
    pub child: tokio::process::Child,
    pub port: u16,
    log: PathBuf,
    _dir: TempDir,
}

impl Sidecar {
    /// Starts the sidecar binary `bin` on `url` with short test settings, plus `env`.
    pub fn start(bin: &str, url: &str, env: &[(&str, &str)]) -> Sidecar {
        let dir = TempDir::new();
        let log = dir.0.join("sidecar.log");
        let port = free_port();
        let child = tokio::process::Command::new(bin)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", url)
            .env("ZART_LISTEN", format!("127.0.0.1:{port}"))
            .env("ZART_STATS_INTERVAL", "200ms")
            .env("ZART_SHUTDOWN_GRACE", "5s")
            .env("ZART_LOG_FORMAT", "json")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Sidecar {
            child,
            port,
            log,
            _dir: dir,
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until `/readyz` answers 200.
    pub async fn ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((200, _)) = get(self.port, "/readyz").await {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the sidecar exited with {status} before it was ready:\n{}",
                    self.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "not ready in 30 s:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn metrics(&self) -> String {
        let (status, body) = get(self.port, "/metrics").await.expect("no /metrics");
        assert_eq!(status, 200);
        body
    }

    /// Sends SIGTERM.
    pub fn sigterm(&self) {
        let pid = self.child.id().expect("running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Sends SIGTERM and returns the exit code and how long the exit took.
    pub async fn terminate(self) -> (Option<i32>, Duration, String) {
        let sent = Instant::now();
        self.sigterm();
        self.wait_exit(sent).await
    }

    /// Waits (up to 20 s) for the process to exit; the code, the time since `since`, the log.
    pub async fn wait_exit(mut self, since: Instant) -> (Option<i32>, Duration, String) {
        let exit = tokio::time::timeout(Duration::from_secs(20), self.child.wait())
            .await
            .unwrap_or_else(|_| panic!("no exit 20 s after SIGTERM:\n{}", self.log()))
            .unwrap();
        (exit.code(), since.elapsed(), self.log())
    }
}

/// A temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl Default for TempDir {
    fn default() -> Self {
        TempDir::new()
    }
}

impl TempDir {
    pub fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "zart-sidecar-test-{}-{}",
            std::process::id(),
            rand_part()
        ));
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn rand_part() -> u128 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    nanos * 1000 + u128::from(N.fetch_add(1, Ordering::Relaxed))
}

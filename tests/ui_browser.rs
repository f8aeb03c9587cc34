//! The web UI in a real browser: Debian's Chromium, headless, driven over WebDriver by
//! chromedriver, against the admin API over a real PostgreSQL with seeded executions. It signs
//! in (a wrong token is refused), filters the list, opens an execution and sees why it waits
//! and its timeline, cancels it, sees the state change and the audit log naming who acted; in
//! read-only mode no action is offered. Screenshots go to `target/ui-screenshots/` (or
//! `$ZART_UI_SCREENSHOTS`, which is how docs/ui/ gets them).
//!
//! Needs `chromium` and `chromedriver` (Debian: `apt-get install -y chromium chromium-driver`;
//! ci/test installs them).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zart::WorkerConfig;
use zart_tests::{init_tracing, Harness};
use zart_ui::{router, UiConfig};

const TOKEN: &str = "browser-t0ken";

/// A chromedriver process on a free port, killed when dropped.
struct Driver {
    port: u16,
    _child: tokio::process::Child,
}

impl Driver {
    async fn start() -> Driver {
        let port = zart_tests::sidecar::free_port();
        let child = tokio::process::Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect(
                "run chromedriver: the browser tests need Debian's chromium and chromium-driver \
                 (apt-get install -y chromium chromium-driver)",
            );
        let driver = Driver {
            port,
            _child: child,
        };
        for _ in 0..100 {
            if let Ok((200, status)) = driver.http("GET", "/status", None).await {
                if status["value"]["ready"] == true {
                    return driver;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("chromedriver did not get ready");
    }

    /// One WebDriver call: the status and the JSON answer.
    async fn http(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> std::io::Result<(u16, Value)> {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        stream
            .write_all(
                format!(
                    "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
                     Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            )
            .await?;
        // Read the head, then exactly Content-Length bytes (chromedriver keeps the connection).
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        let (head_end, length) = loop {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break (raw.len(), 0);
            }
            raw.extend_from_slice(&buf[..n]);
            if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&raw[..at]).to_ascii_lowercase();
                let length = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (at + 4, length);
            }
        };
        while raw.len() < head_end + length {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            raw.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&raw[..head_end.min(raw.len())]);
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let json = serde_json::from_slice(&raw[head_end.min(raw.len())..]).unwrap_or(Value::Null);
        Ok((status, json))
    }
}

/// A browser session.
struct Browser<'a> {
    driver: &'a Driver,
    session: String,
}

impl<'a> Browser<'a> {
    async fn open(driver: &'a Driver) -> Browser<'a> {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,900"]
            }
        }}});
        let (status, answer) = driver.http("POST", "/session", Some(caps)).await.unwrap();
        assert_eq!(status, 200, "a browser session: {answer}");
        Browser {
            driver,
            session: answer["value"]["sessionId"].as_str().unwrap().to_owned(),
        }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, answer) = self
            .driver
            .http(method, &format!("/session/{}{path}", self.session), body)
            .await
            .unwrap();
        assert_eq!(status, 200, "{method} {path}: {answer}");
        answer["value"].clone()
    }

    async fn go(&self, url: &str) {
        self.call("POST", "/url", Some(json!({"url": url}))).await;
    }

    /// Runs `script` in the page and returns its value.
    async fn eval(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(json!({"script": script, "args": []})),
        )
        .await
    }

    /// Waits until `script` returns something truthy; returns it.
    async fn until(&self, what: &str, script: &str) -> Value {
        for _ in 0..200 {
            let v = self.eval(script).await;
            if !(v.is_null() || v == false || v == "" || v == 0) {
                return v;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let body = self.eval("return document.body.innerText").await;
        panic!("{what}: never true; the page says:\n{body}");
    }

    async fn screenshot(&self, name: &str) {
        let png = self.call("GET", "/screenshot", None).await;
        let dir = std::env::var("ZART_UI_SCREENSHOTS")
            .map(PathBuf::from)
            .unwrap_or_else(|_| {
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/ui-screenshots")
            });
        std::fs::create_dir_all(&dir).unwrap();
        let bytes = base64_decode(png.as_str().unwrap());
        std::fs::write(dir.join(format!("{name}.png")), bytes).unwrap();
    }

    async fn close(self) {
        let _ = self
            .driver
            .http("DELETE", &format!("/session/{}", self.session), None)
            .await;
    }
}

/// Standard base64 (the screenshot's encoding), decoded.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' => 62,
        _ => 63,
    };
    let clean: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let n = chunk
            .iter()
            .fold(0u32, |acc, &c| (acc << 6) | u32::from(value(c)))
            << (6 * (4 - chunk.len()));
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

async fn serve(h: &Harness, config: UiConfig) -> String {
    let backend: Arc<dyn zart_ui::Backend> = h.scheduler.clone();
    let app = axum::Router::new().nest(
        "/zart",
        router(backend, config.refresh(Duration::from_millis(300))),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    // Nested at /zart, the page is /zart (axum routes a nested "/" to the prefix itself).
    format!("http://127.0.0.1:{port}/zart")
}

async fn seeded() -> Harness {
    let h = Harness::new().await;
    h.spawn_worker(WorkerConfig::default());
    h.durable
        .start("order-1001", "echo", json!({"n": 1}))
        .await
        .unwrap();
    h.durable
        .start("order-1002", "panicky", json!("card declined"))
        .await
        .unwrap();
    h.durable
        .start("approve-7", "approver", json!({}))
        .await
        .unwrap();
    h.durable
        .start("nightly-report", "sleeper", json!(3600))
        .await
        .unwrap();
    for id in ["order-1001", "order-1002"] {
        h.durable
            .wait(id, Some(Duration::from_secs(20)))
            .await
            .unwrap();
    }
    let client = h.db.client().await;
    zart_tests::wait_for("the waits to begin", Duration::from_secs(20), || async {
        (zart_tests::count(
            &client,
            "select count(*) from zart_executions where status in ('waiting', 'sleeping')",
        )
        .await
            == 2)
            .then_some(())
    })
    .await;
    h
}

async fn sign_in(b: &Browser<'_>, token: &str) {
    b.until(
        "the sign-in form",
        "return document.querySelector('#token')",
    )
    .await;
    b.eval(&format!(
        "document.querySelector('#token').value = {}; document.querySelector('#login button').click(); return true",
        serde_json::to_string(token).unwrap()
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_signs_in_filters_opens_an_execution_and_cancels_it() {
    init_tracing();
    let h = seeded().await;
    let url = serve(&h, UiConfig::with_tokens([TOKEN])).await;
    let driver = Driver::start().await;
    let b = Browser::open(&driver).await;
    b.go(&url).await;

    // A wrong token is refused.
    sign_in(&b, "not-it").await;
    b.until(
        "the refusal",
        "return document.body.innerText.includes('That token was refused.')",
    )
    .await;
    sign_in(&b, TOKEN).await;
    b.until(
        "four executions listed live",
        "return document.querySelectorAll('#executions tbody tr').length === 4",
    )
    .await;
    b.until(
        "the queue counts",
        "return document.querySelector('#queues').innerText.includes('waiting')",
    )
    .await;
    b.screenshot("executions").await;

    // Filter: failed only.
    b.eval(
        "document.querySelector('input[value=failed]').click(); \
         document.querySelector('#filters button').click(); return true",
    )
    .await;
    let only = b
        .until(
            "the failed one alone",
            "const rows = [...document.querySelectorAll('#executions tbody tr')]; \
             return rows.length === 1 && rows[0].dataset.id",
        )
        .await;
    assert_eq!(only, "order-1002");

    // Open the waiting one: why it waits, at the top, and its timeline.
    b.go(&format!("{url}#/e/approve-7")).await;
    let why = b
        .until(
            "why it waits",
            "return document.querySelector('#why') && document.querySelector('#why').innerText",
        )
        .await;
    assert!(
        why.as_str().unwrap().contains("Waiting for event approval"),
        "{why}"
    );
    let bars = b
        .eval("return document.querySelectorAll('.tl-bar').length")
        .await;
    assert_eq!(
        bars, 2,
        "two timeline bars: the step before and the open wait"
    );
    b.screenshot("execution").await;

    // Cancel it (confirming), and see the state change.
    b.eval("window.confirm = () => true; document.querySelector('#cancel').click(); return true")
        .await;
    b.until(
        "the cancelled state",
        "return document.querySelector('h2 .status') && document.querySelector('h2 .status').innerText === 'cancelled'",
    )
    .await;
    assert_eq!(
        h.durable.status("approve-7").await.unwrap().status,
        zart::ExecutionStatus::Cancelled
    );

    // The audit log names who cancelled it.
    b.go(&format!("{url}#/audit")).await;
    let entry = b
        .until(
            "the audit entry",
            "const row = document.querySelector('#audit tbody tr'); return row && row.innerText",
        )
        .await;
    let entry = entry.as_str().unwrap();
    for part in ["token-1", "cancel", "approve-7", "ok"] {
        assert!(entry.contains(part), "{part} in {entry}");
    }
    b.screenshot("audit").await;
    b.close().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_mode_offers_no_action() {
    init_tracing();
    let h = seeded().await;
    let url = serve(&h, UiConfig::with_tokens([TOKEN]).read_only(true)).await;
    let driver = Driver::start().await;
    let b = Browser::open(&driver).await;
    b.go(&format!("{url}#/e/nightly-report")).await;
    sign_in(&b, TOKEN).await;
    let why = b
        .until(
            "why it waits",
            "return document.querySelector('#why') && document.querySelector('#why').innerText",
        )
        .await;
    assert!(why.as_str().unwrap().contains("Sleeping in step"), "{why}");
    let buttons = b
        .eval("return document.querySelectorAll('#cancel, #retry, #event').length")
        .await;
    assert_eq!(buttons, 0, "no action offered in read-only mode");
    b.go(&format!("{url}#/")).await;
    b.until(
        "the list",
        "return document.querySelectorAll('#executions tbody tr').length > 0",
    )
    .await;
    let bulk = b
        .eval("return document.querySelectorAll('#bulk-cancel, #bulk-retry').length")
        .await;
    assert_eq!(bulk, 0, "no bulk action offered in read-only mode");
    b.close().await;
    h.stop().await;
}

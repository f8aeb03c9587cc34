//! The admin HTTP API (`zart-ui`) served for real over PostgreSQL: tokens, read-only mode,
//! filters and their refusals, an execution and why it waits, cancel, retry and events, and
//! the OpenAPI document.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use zart::{ExecutionStatus, WorkerConfig};
use zart_tests::{init_tracing, Harness};
use zart_ui::{router, UiConfig};

const TOKEN: &str = "t0k-3n";

/// Serves `config`'s API over `h`'s scheduler on a free port; returns the port.
async fn serve(h: &Harness, config: UiConfig) -> u16 {
    let backend: Arc<dyn zart_ui::Backend> = h.scheduler.clone();
    let app = router(backend, config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await });
    port
}

/// One HTTP/1.1 request: the status and the body as JSON (`Null` when empty).
async fn call(
    port: u16,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response.split(' ').nth(1).unwrap().parse().unwrap();
    let (_, body) = response.split_once("\r\n\r\n").unwrap();
    let json = if body.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
    };
    (status, json)
}

async fn get(port: u16, path: &str) -> (u16, Value) {
    call(port, "GET", path, Some(TOKEN), None).await
}

async fn post(port: u16, path: &str, body: Option<Value>) -> (u16, Value) {
    call(port, "POST", path, Some(TOKEN), body).await
}

/// Executions in each interesting state: `done` completed, `boom` failed, `ask` waiting for
/// its event, `nap` sleeping an hour.
async fn seeded() -> Harness {
    let h = Harness::new().await;
    h.spawn_worker(WorkerConfig::default());
    h.durable
        .start("done", "echo", json!({"n": 1}))
        .await
        .unwrap();
    h.durable
        .start("boom", "panicky", json!("kaput"))
        .await
        .unwrap();
    h.durable.start("ask", "approver", json!({})).await.unwrap();
    h.durable
        .start("nap", "sleeper", json!(3600))
        .await
        .unwrap();
    for id in ["done", "boom"] {
        h.durable
            .wait(id, Some(Duration::from_secs(20)))
            .await
            .unwrap();
    }
    let client = h.db.client().await;
    zart_tests::wait_for("ask and nap to suspend", Duration::from_secs(20), || async {
        (zart_tests::count(
            &client,
            "select count(*) from zart_executions where id in ('ask', 'nap') and status in ('waiting', 'sleeping')",
        )
        .await
            == 2)
            .then_some(())
    })
    .await;
    h
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_need_a_token_and_read_only_refuses_actions() {
    init_tracing();
    let h = seeded().await;
    let port = serve(&h, UiConfig::with_tokens([TOKEN])).await;
    let (status, body) = call(port, "GET", "/api/executions", None, None).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("unauthorized")));
    let (status, _) = call(port, "GET", "/api/executions", Some("guess"), None).await;
    assert_eq!(status, 401);
    let (status, _) = call(
        port,
        "POST",
        "/api/executions/nap/cancel",
        Some("guess"),
        None,
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        h.durable.status("nap").await.unwrap().status,
        ExecutionStatus::Sleeping
    );

    let read_only = serve(&h, UiConfig::with_tokens([TOKEN]).read_only(true)).await;
    let (status, body) = get(read_only, "/api/executions").await;
    assert_eq!(status, 200, "{body}");
    for action in ["cancel", "retry"] {
        let (status, body) = post(read_only, &format!("/api/executions/nap/{action}"), None).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (403, Some("read_only")),
            "{action}"
        );
    }
    let (status, _) = post(
        read_only,
        "/api/executions/ask/events",
        Some(json!({"name": "approval"})),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        h.durable.status("nap").await.unwrap().status,
        ExecutionStatus::Sleeping
    );
    assert_eq!(
        h.durable.status("ask").await.unwrap().status,
        ExecutionStatus::Waiting
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_filter_and_refuse_bad_filters_by_name() {
    init_tracing();
    let h = seeded().await;
    let port = serve(&h, UiConfig::with_tokens([TOKEN])).await;
    let (status, page) = get(port, "/api/executions").await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = page["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 4, "{page}");
    let (_, page) = get(port, "/api/executions?status=failed").await;
    assert_eq!(page["executions"][0]["id"], "boom");
    assert_eq!(page["executions"].as_array().unwrap().len(), 1);
    let (_, page) = get(port, "/api/executions?status=waiting,sleeping&task=sleeper").await;
    assert_eq!(page["executions"].as_array().unwrap().len(), 1);
    assert_eq!(page["executions"][0]["id"], "nap");
    // Paging: two at a time, then the rest.
    let (_, first) = get(port, "/api/executions?limit=2").await;
    let after = first["next_after"].as_str().unwrap().to_owned();
    let (_, second) = get(port, &format!("/api/executions?limit=2&after={after}")).await;
    assert_eq!(second["executions"].as_array().unwrap().len(), 2);
    for (query, names) in [
        ("limit=0", "limit"),
        ("limit=1001", "limit"),
        ("status=later", "status"),
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
    ] {
        let (status, body) = get(port, &format!("/api/executions?{query}")).await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_eq!(body["code"], "bad_request");
        assert!(
            body["message"].as_str().unwrap().starts_with(names),
            "{query}: {body}"
        );
    }
    let (status, body) = get(port, "/api/executions?after=nobody").await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (status, queues) = get(port, "/api/queues").await;
    assert_eq!(status, 200);
    assert_eq!(queues[0]["queue"], "default");
    assert_eq!(queues[0]["by_status"]["waiting"], 1);
    assert_eq!(queues[0]["by_status"]["sleeping"], 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_execution_says_why_it_waits_and_actions_change_state() {
    init_tracing();
    let h = seeded().await;
    let port = serve(&h, UiConfig::with_tokens([TOKEN])).await;

    let (status, ask) = get(port, "/api/executions/ask").await;
    assert_eq!(status, 200);
    assert_eq!(ask["execution"]["status"], "waiting");
    assert_eq!(ask["waiting"][0]["reason"], "event");
    assert_eq!(ask["waiting"][0]["event"], "approval");
    assert_eq!(ask["steps"][0]["name"], "before");
    let (status, body) = get(port, "/api/executions/nobody").await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));

    // An event resolves the wait.
    let (status, body) = post(
        port,
        "/api/executions/ask/events",
        Some(json!({"name": "approval", "payload": {"ok": true}})),
    )
    .await;
    assert_eq!(
        (status, body["sent"].as_bool()),
        (202, Some(true)),
        "{body}"
    );
    let done = h
        .durable
        .wait("ask", Some(Duration::from_secs(20)))
        .await
        .unwrap();
    assert_eq!(done.output, Some(json!({"ok": true})));
    let (status, body) = post(
        port,
        "/api/executions/ask/events",
        Some(json!({"name": "approval"})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("finished")),
        "{body}"
    );
    let (status, body) = post(
        port,
        "/api/executions/ask/events",
        Some(json!({"payload": 1})),
    )
    .await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );

    // Cancel the sleeper; retry the failure; retrying a completed one is a conflict.
    let (status, body) = post(port, "/api/executions/nap/cancel", None).await;
    assert_eq!((status, body["cancelled"].clone()), (200, json!(["nap"])));
    assert_eq!(
        h.durable.status("nap").await.unwrap().status,
        ExecutionStatus::Cancelled
    );
    let (status, body) = post(port, "/api/executions/boom/retry", None).await;
    assert_eq!(
        (status, body["revived"].clone()),
        (200, json!(["boom"])),
        "{body}"
    );
    let (status, body) = post(port, "/api/executions/done/retry", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("not_retryable")),
        "{body}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_with_slashes_are_percent_encoded_and_the_openapi_document_describes_the_api() {
    init_tracing();
    let h = Harness::new().await;
    h.durable.start("order/7", "echo", json!(7)).await.unwrap();
    let port = serve(&h, UiConfig::with_tokens([TOKEN])).await;
    let (status, body) = get(port, "/api/executions/order%2F7").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["execution"]["id"], "order/7");

    let (status, doc) = get(port, "/api/openapi.json").await;
    assert_eq!(status, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."), "{doc}");
    for path in [
        "/api/executions",
        "/api/executions/{id}",
        "/api/executions/{id}/cancel",
        "/api/executions/{id}/retry",
        "/api/executions/{id}/events",
        "/api/queues",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} is documented");
    }
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    assert!(doc["components"]["schemas"]["ExecutionDetailView"].is_object());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_is_served_without_a_token_and_the_stream_pushes_snapshots() {
    init_tracing();
    let h = seeded().await;
    let port = serve(
        &h,
        UiConfig::with_tokens([TOKEN]).refresh(Duration::from_millis(200)),
    )
    .await;

    // The page: no data of its own, so no token needed; nothing loaded from elsewhere.
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut page = String::new();
    stream.read_to_string(&mut page).await.unwrap();
    assert!(page.starts_with("HTTP/1.1 200"), "{}", &page[..80]);
    assert!(page.contains("<title>Zart</title>"));
    for outside in ["http://", "https://", "//cdn"] {
        assert!(
            !page.contains(&format!("src=\"{outside}")),
            "the page loads {outside}"
        );
    }
    let (status, config) = get(port, "/api/config").await;
    assert_eq!((status, config["read_only"].as_bool()), (200, Some(false)));

    // The stream: a snapshot at once, then one after a change.
    let (status, _) = call(port, "GET", "/api/stream", None, None).await;
    assert_eq!(status, 401, "the stream needs a token too");
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    stream
        .write_all(
            format!(
                "GET /api/stream HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut seen = String::new();
    let mut buf = vec![0u8; 65536];
    let next_snapshot = |seen: &mut String| -> Option<Value> {
        let at = seen.find("event: snapshot\ndata: ")?;
        let rest = &seen[at + "event: snapshot\ndata: ".len()..];
        let end = rest.find('\n')?;
        let value = serde_json::from_str(&rest[..end]).ok()?;
        let cut = at + "event: snapshot\ndata: ".len() + end;
        seen.drain(..cut);
        Some(value)
    };
    let mut snapshots = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while snapshots.len() < 2 {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .expect("snapshots within 20 s")
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        while let Some(s) = next_snapshot(&mut seen) {
            snapshots.push(s);
            if snapshots.len() == 1 {
                // A change for the next snapshot to carry.
                h.durable.cancel("nap").await.unwrap();
            }
        }
    }
    let first = &snapshots[0];
    assert_eq!(first["recent"]["executions"].as_array().unwrap().len(), 4);
    assert_eq!(first["queues"][0]["by_status"]["sleeping"], 1);
    let second = &snapshots[1];
    let nap = second["recent"]["executions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == "nap")
        .unwrap();
    assert_eq!(nap["status"], "cancelled");
    h.stop().await;
}

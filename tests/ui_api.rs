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

/// The rows of the audit log, oldest first, read with plain SQL.
async fn audit_rows(h: &Harness) -> Vec<(String, String, String, String)> {
    let client = h.db.client().await;
    client
        .query(
            "select actor, action, target, outcome from zart_audit_log order by id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

fn row(actor: &str, action: &str, target: &str, outcome: &str) -> (String, String, String, String) {
    (actor.into(), action.into(), target.into(), outcome.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn actions_are_audited_by_token_name_and_refused_when_the_log_cannot_be_written() {
    init_tracing();
    let h = seeded().await;
    let config = UiConfig::with_named_tokens([("alice", TOKEN), ("bob", "b0b")]);
    let port = serve(&h, config).await;
    let (status, _) = post(port, "/api/executions/nap/cancel", None).await;
    assert_eq!(status, 200);
    let (status, _) = call(
        port,
        "POST",
        "/api/executions/done/retry",
        Some("b0b"),
        None,
    )
    .await;
    assert_eq!(status, 409);
    let (status, _) = post(
        port,
        "/api/executions/ask/events",
        Some(json!({"name": "approval", "payload": {"secret": "not logged"}})),
    )
    .await;
    assert_eq!(status, 202);
    // Refused calls act on nothing and are not audited: no token, a read-only API.
    let (status, _) = call(port, "POST", "/api/executions/boom/retry", None, None).await;
    assert_eq!(status, 401);
    let read_only = serve(&h, UiConfig::with_tokens([TOKEN]).read_only(true)).await;
    let (status, _) = post(read_only, "/api/executions/boom/retry", None).await;
    assert_eq!(status, 403);

    assert_eq!(
        audit_rows(&h).await,
        [
            row("alice", "cancel", "nap", "ok"),
            row("bob", "retry", "done", "not_retryable"),
            row("alice", "send_event", "ask", "ok"),
        ]
    );
    let client = h.db.client().await;
    let params: Value = client
        .query_one(
            "select params from zart_audit_log where action = 'send_event'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        params,
        json!({"name": "approval"}),
        "the payload is not logged"
    );
    let (status, log) = get(port, "/api/audit?limit=2").await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(log.as_array().unwrap().len(), 2);
    assert_eq!(log[0]["action"], "send_event", "newest first");
    assert_eq!(log[1]["outcome"], "not_retryable");
    assert!(log[1]["detail"].as_str().unwrap().contains("done"), "{log}");
    let before = log[1]["id"].as_i64().unwrap();
    let (_, older) = get(port, &format!("/api/audit?before={before}")).await;
    assert_eq!(older[0]["action"], "cancel");
    let (status, body) = get(port, "/api/audit?limit=0").await;
    assert_eq!(
        (status, body["code"].as_str()),
        (400, Some("invalid_input"))
    );

    // Without the log, nothing is done: the action is refused and the execution untouched.
    client
        .batch_execute("alter table zart_audit_log rename to zart_audit_log_away")
        .await
        .unwrap();
    let (status, body) = post(port, "/api/executions/boom/retry", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("audit_unavailable")),
        "{body}"
    );
    assert_eq!(
        h.durable.status("boom").await.unwrap().status,
        ExecutionStatus::Failed
    );
    client
        .batch_execute("alter table zart_audit_log_away rename to zart_audit_log")
        .await
        .unwrap();
    assert_eq!(audit_rows(&h).await.len(), 3);
    h.stop().await;
}

/// The ids of a bulk outcome's list `field`, sorted.
fn ids(body: &Value, field: &str) -> Vec<String> {
    let mut ids: Vec<String> = body[field]
        .as_array()
        .unwrap_or_else(|| panic!("{field} in {body}"))
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_actions_take_one_page_of_a_filter_and_a_dry_run_changes_nothing() {
    init_tracing();
    let h = seeded().await;
    for n in 0..3 {
        h.durable
            .start(&format!("boom-{n}"), "panicky", json!("again"))
            .await
            .unwrap();
        h.durable
            .start(&format!("later-{n}"), "sleeper", json!(3600))
            .await
            .unwrap();
    }
    for n in 0..3 {
        h.durable
            .wait(&format!("boom-{n}"), Some(Duration::from_secs(20)))
            .await
            .unwrap();
    }
    let port = serve(&h, UiConfig::with_tokens([TOKEN])).await;

    // A dry run lists what a bulk cancel of the sleeper's executions would take.
    let (status, body) = post(
        port,
        "/api/executions/cancel",
        Some(json!({"filter": {"task": "sleeper"}, "dry_run": true})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        ids(&body, "matched"),
        ["later-0", "later-1", "later-2", "nap"]
    );
    assert!(ids(&body, "done").is_empty());
    assert_eq!(
        h.durable.status("later-0").await.unwrap().status,
        ExecutionStatus::Sleeping
    );
    // One page of two, then the rest.
    let (_, first) = post(
        port,
        "/api/executions/cancel",
        Some(json!({"filter": {"task": "sleeper", "id": "later-"}, "max": 2})),
    )
    .await;
    assert_eq!(ids(&first, "done").len(), 2, "{first}");
    assert_eq!(first["more"], true);
    let (_, rest) = post(
        port,
        "/api/executions/cancel",
        Some(json!({"filter": {"task": "sleeper", "id": "later-"}, "max": 2})),
    )
    .await;
    assert_eq!(ids(&rest, "done").len(), 1, "{rest}");
    assert_eq!(rest["more"], false);
    assert_eq!(
        h.durable.status("nap").await.unwrap().status,
        ExecutionStatus::Sleeping,
        "outside the id filter"
    );

    // A bulk retry takes the failed ones only.
    let (status, body) = post(
        port,
        "/api/executions/retry",
        Some(json!({"filter": {"status": "cancelled"}})),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (400, Some("bad_request")));
    let (status, body) = post(
        port,
        "/api/executions/retry",
        Some(json!({"filter": {"id": "boom-"}})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(ids(&body, "done"), ["boom-0", "boom-1", "boom-2"]);
    // Bad bodies are refused by name; read-only refuses all but dry runs.
    for bad in [
        json!({"filter": {"status": "later"}}),
        json!({"filter": {"since": "yesterday"}}),
        json!({"max": 0}),
        json!({"filters": {}}),
    ] {
        let (status, body) = post(port, "/api/executions/cancel", Some(bad.clone())).await;
        assert_eq!(
            (status, body["code"].as_str()),
            (400, Some("bad_request")),
            "{bad}: {body}"
        );
    }
    let read_only = serve(&h, UiConfig::with_tokens([TOKEN]).read_only(true)).await;
    let (status, _) = post(read_only, "/api/executions/cancel", Some(json!({}))).await;
    assert_eq!(status, 403);
    let (status, _) = post(
        read_only,
        "/api/executions/cancel",
        Some(json!({"dry_run": true})),
    )
    .await;
    assert_eq!(status, 200);
    let actions: Vec<String> = audit_rows(&h).await.into_iter().map(|r| r.1).collect();
    assert_eq!(actions, ["bulk_cancel", "bulk_cancel", "bulk_retry"]);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_filter_by_prefix_and_schedules_are_listed_paused_and_resumed() {
    init_tracing();
    let h = Harness::new().await;
    for id in ["order-1", "order-2", "Order-3", "invoice-1"] {
        h.durable.start(id, "echo", json!(1)).await.unwrap();
    }
    let schedule = zart::schedule::Schedule::new("nightly", "0 3 * * *", "echo");
    zart::Scheduler::upsert_schedule(&*h.scheduler, schedule)
        .await
        .unwrap();
    let port = serve(&h, UiConfig::with_tokens([TOKEN])).await;
    let (_, page) = get(port, "/api/executions?id=order-").await;
    let mut found: Vec<&str> = page["executions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    found.sort_unstable();
    assert_eq!(found, ["order-1", "order-2"], "case counts");
    let (_, page) = get(port, "/api/executions?id=%25").await;
    assert!(
        page["executions"].as_array().unwrap().is_empty(),
        "% is no wildcard"
    );

    let (status, schedules) = get(port, "/api/schedules").await;
    assert_eq!(status, 200);
    assert_eq!(schedules[0]["id"], "nightly");
    assert_eq!(schedules[0]["paused"], false);
    let (status, body) = post(port, "/api/schedules/nightly/pause", None).await;
    assert_eq!(
        (status, body["paused"].as_bool()),
        (200, Some(true)),
        "{body}"
    );
    let (_, schedules) = get(port, "/api/schedules").await;
    assert_eq!(schedules[0]["paused"], true);
    let (status, _) = post(port, "/api/schedules/nightly/resume", None).await;
    assert_eq!(status, 200);
    let (status, body) = post(port, "/api/schedules/weekly/pause", None).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let actions: Vec<(String, String)> = audit_rows(&h)
        .await
        .into_iter()
        .map(|r| (r.1, r.3))
        .collect();
    assert_eq!(
        actions,
        [
            ("pause_schedule".to_owned(), "ok".to_owned()),
            ("resume_schedule".to_owned(), "ok".to_owned()),
            ("pause_schedule".to_owned(), "not_found".to_owned()),
        ]
    );
    h.stop().await;
}

/// Transactions committed in the harness's database so far, after the other sessions had time
/// to report theirs (PostgreSQL 15 flushes a session's counts within a second of it going
/// idle).
async fn settled_transactions(client: &tokio_postgres::Client) -> i64 {
    tokio::time::sleep(Duration::from_millis(2500)).await;
    zart_tests::transactions(client).await
}

/// Opens `n` event streams; they stay open while the returned connections live.
async fn listeners(port: u16, n: usize) -> Vec<tokio::net::TcpStream> {
    let mut streams = Vec::new();
    for _ in 0..n {
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        s.write_all(
            format!(
                "GET /api/stream HTTP/1.1\r\nHost: test\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        let mut first = [0u8; 12];
        s.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
        streams.push(s);
    }
    streams
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_view_reads_once_per_interval_whatever_the_number_of_browsers() {
    init_tracing();
    let h = Harness::new().await;
    for n in 0..5 {
        h.durable
            .start(&format!("e-{n}"), "echo", json!(n))
            .await
            .unwrap();
    }
    // A short interval so a window holds many refreshes: the idle count is background noise
    // (the measuring session, autovacuum on a fresh cluster; 10 once on a loaded CI machine),
    // and the margin against it must be wide.
    let refresh = Duration::from_millis(100);
    let window = Duration::from_secs(4);
    let port = serve(&h, UiConfig::with_tokens([TOKEN]).refresh(refresh)).await;
    let client = h.db.client().await;

    // Nobody listens: nothing is read.
    let t0 = settled_transactions(&client).await;
    tokio::time::sleep(window).await;
    let t1 = settled_transactions(&client).await;
    // One browser, then twenty.
    let one = listeners(port, 1).await;
    tokio::time::sleep(window).await;
    drop(one);
    let t2 = settled_transactions(&client).await;
    let twenty = listeners(port, 20).await;
    tokio::time::sleep(window).await;
    drop(twenty);
    let t3 = settled_transactions(&client).await;

    // Each count includes the two transactions of the measuring session itself.
    let (idle, single, many) = (t1 - t0, t2 - t1, t3 - t2);
    eprintln!("transactions: idle {idle}, one browser {single}, twenty browsers {many}");
    let per_window = (window.as_millis() / refresh.as_millis()) as i64;
    // Nothing is read while nobody listens: a view that refreshed anyway would add a whole
    // window's worth (`per_window` reads of two statements); the few left are the measuring
    // session's own and, on a fresh cluster, autovacuum's visits to the new database.
    assert!(
        idle < per_window / 2,
        "nothing read while nobody listens: {idle} (a window's refreshes: {per_window})"
    );
    // Two statements a snapshot (queue counts, newest executions), one per interval, plus the
    // settling time after the window while the last listener's read may still run.
    assert!(single >= per_window, "the view refreshes: {single}");
    assert!(
        many <= single * 3 / 2 + 4,
        "twenty browsers cost what one does: {many} against {single}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_log_holds_its_contract_on_postgres() {
    init_tracing();
    let h = Harness::new().await;
    zart_conformance::audit::audit_log_contract(&*h.scheduler).await;
    let client = h.db.client().await;
    let db_role: String = client
        .query_one(
            "select db_role from zart_audit_log order by id limit 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(db_role, "postgres", "the login that wrote it");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_are_recorded_and_listed_on_postgres() {
    init_tracing();
    let h = Harness::new().await;
    zart_conformance::presence::presence_contract(&*h.scheduler).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_workers_are_seen_and_a_graceful_stop_is_recorded() {
    init_tracing();
    let h = Harness::new().await;
    let config = WorkerConfig::default()
        .with_worker_id("api-worker-1")
        .with_presence_interval(Some(Duration::from_secs(1)));
    let stop = h.spawn_worker(config);
    let port = serve(&h, UiConfig::with_tokens([TOKEN])).await;
    let seen = zart_tests::wait_for("the worker's record", Duration::from_secs(20), || async {
        let (_, workers) = get(port, "/api/workers").await;
        workers
            .as_array()
            .and_then(|w| w.iter().find(|w| w["worker_id"] == "api-worker-1").cloned())
    })
    .await;
    assert_eq!(seen["state"], "alive", "{seen}");
    assert_eq!(seen["queue"], "default");
    assert!(
        seen["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "echo"),
        "{seen}"
    );
    assert_eq!(seen["interval_ms"], 1000);
    stop.shutdown();
    let stopped = zart_tests::wait_for("the recorded stop", Duration::from_secs(40), || async {
        let (_, workers) = get(port, "/api/workers").await;
        workers
            .as_array()
            .and_then(|w| w.iter().find(|w| w["state"] == "stopped").cloned())
    })
    .await;
    assert_eq!(stopped["worker_id"], "api-worker-1");
    assert!(stopped["stopped_at"].is_string());
    h.stop().await;
}

//! Every statement on a bucketed Zart table filters on its bucket, or is a documented
//! exception: the property that lets one execution's work run on one Citus shard (issue #19,
//! docs/scale.md), checked on the source so it cannot rot.
//!
//! The bucketed tables are `zart_executions`, `zart_tasks`, `zart_steps`, `zart_events` and
//! `zart_limit_runs` (each leads its keys with `bucket`; on Citus they are distributed by it,
//! co-located), and the view `zart_execution_status` that joins two of them. The check reads every function body and view of `sql/zart.sql` and every
//! statement constant of `src/queries.rs`, splits them at `;`, and for each piece that reads or writes
//! one of those tables (`from`, `join`, `update`, `into` followed by its name) requires a
//! bucket condition in the same piece (views are read whole: a view's joins of bucketed
//! tables are on `bucket`, or the view is an exception): `bucket =`, `bucket in`, `bucket = any`, or an insert
//! whose column list starts with `bucket`. It is a text check, not a parser: a piece is a
//! statement with whatever control flow sits between two semicolons, so it can pass a
//! statement whose bucket condition belongs to a neighbour; it never misses a statement with no
//! bucket condition near it at all, which is the regression it is for.
//!
//! The exceptions are the statements that are fleet-wide by design (a claim or a sweep across
//! every bucket, the queue-limit accounting of a whole queue, the children of a parent, the
//! admin reads). Each is listed in [`EXCEPTIONS`] with its reason, must still be needed, and
//! must be named in docs/scale.md.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::collections::BTreeSet;

/// The tables distributed by `bucket` on Citus.
const BUCKETED: &[&str] = &[
    "zart_executions",
    "zart_tasks",
    "zart_steps",
    "zart_events",
    "zart_limit_runs",
    // A view joining two of them on `bucket`: reading it is reading them.
    "zart_execution_status",
];

/// (function or constant, table): statements that read or write across buckets by design.
const EXCEPTIONS: &[(&str, &str, &str)] = &[
    (
        "zart_limit_counts",
        "zart_tasks",
        "a limited queue's running count covers the whole queue",
    ),
    (
        "zart_limit_counts",
        "zart_limit_runs",
        "a limited queue's started-within-the-interval count covers the whole queue",
    ),
    (
        "zart_claim_tasks",
        "zart_limit_runs",
        "a claim in a limited queue forgets the queue's spent runs",
    ),
    (
        "zart_next_run_at",
        "zart_tasks",
        "when the next task of a queue falls due, whatever its bucket",
    ),
    (
        "zart_next_run_at",
        "zart_limit_runs",
        "when a limited queue's next rate slot opens",
    ),
    (
        "zart_set_queue_limits",
        "zart_limit_runs",
        "removing a queue's limits forgets its runs",
    ),
    (
        "zart_cancel_tree",
        "zart_executions",
        "an execution's unfinished descendants, a generation at a time: children live in their own buckets",
    ),
    (
        "zart_complete_executions",
        "zart_executions",
        "a failed parent's unfinished children, which live in their own buckets",
    ),
    (
        "zart_execution_counts",
        "zart_execution_status",
        "a view for SQL users: counts over every execution",
    ),
    (
        "zart_step_timeline",
        "zart_steps",
        "a view for SQL users: every step of every execution",
    ),
    (
        "zart_state",
        "zart_steps",
        "a view for SQL users: every execution's published values",
    ),
    (
        "DESCRIBE_CHILDREN",
        "zart_execution_status",
        "an execution's children, which live in their own buckets",
    ),
    (
        "QUEUE_STATS",
        "zart_tasks",
        "queue depth and lag over every task of a queue",
    ),
];

/// A statement that touches a bucketed table without a bucket condition.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Unfiltered {
    owner: String,
    table: String,
    statement: String,
}

fn words(text: &str) -> Vec<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '.'))
        .filter(|w| !w.is_empty())
        .collect()
}

/// The bucketed tables `statement` reads or writes.
fn tables(statement: &str) -> BTreeSet<&'static str> {
    let words = words(statement);
    let mut found = BTreeSet::new();
    for pair in words.windows(3) {
        if !matches!(pair[0], "from" | "join" | "update" | "into") {
            continue;
        }
        let name = if pair[1] == "only" { pair[2] } else { pair[1] };
        let name = name.strip_prefix("public.").unwrap_or(name);
        if let Some(table) = BUCKETED.iter().find(|t| **t == name) {
            found.insert(*table);
        }
    }
    found
}

/// Whether `statement` has a bucket condition (or inserts the bucket).
fn filters_bucket(statement: &str) -> bool {
    let mut rest = statement;
    while let Some(at) = rest.find("bucket") {
        let before = rest[..at].chars().next_back();
        let after = rest[at + "bucket".len()..].trim_start();
        let word_start = !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
        if word_start
            && (after.starts_with('=')
                || after.starts_with("<>")
                || after.starts_with("in ")
                || after.starts_with("in("))
        {
            return true;
        }
        rest = &rest[at + "bucket".len()..];
    }
    // An insert names the bucket first in its column list.
    statement.contains("insert into") && statement.contains("(bucket,")
}

/// `text` without `--` comments, lower case, whitespace collapsed.
fn normalize(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let code = line.split("--").next().unwrap_or_default();
        out.push_str(code);
        out.push(' ');
    }
    out.to_lowercase()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Checks the statements of `owner`'s `body`.
fn check(owner: &str, body: &str, found: &mut Vec<Unfiltered>) -> usize {
    let mut checked = 0;
    for statement in normalize(body).split(';') {
        let touched = tables(statement);
        if touched.is_empty() {
            continue;
        }
        checked += 1;
        if filters_bucket(statement) {
            continue;
        }
        for table in touched {
            found.push(Unfiltered {
                owner: owner.to_owned(),
                table: table.to_owned(),
                statement: statement.chars().take(160).collect(),
            });
        }
    }
    checked
}

/// Each item of `text` that starts with `marker` and a name: (name, its text as `body`
/// finds it in what follows the name). `body` returns the text and how much it used, so the
/// next item is looked for after it (a function body may itself hold the marker).
fn items(
    text: &str,
    marker: &str,
    body: impl Fn(&str) -> (String, usize),
) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        rest = &rest[at + marker.len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let (text, used) = body(rest);
        out.push((name, text));
        rest = &rest[used..];
    }
    out
}

/// The functions of zart.sql: (name, body between its dollar quotes).
fn functions(sql: &str) -> Vec<(String, String)> {
    items(sql, "create or replace function public.", |rest| {
        let start = rest.find("$$").expect("a function body in dollar quotes") + 2;
        let end = rest[start..].find("$$").expect("a closing dollar quote") + start;
        (rest[start..end].to_owned(), end + 2)
    })
}

/// The views of zart.sql: (name, definition up to its semicolon).
fn views(sql: &str) -> Vec<(String, String)> {
    items(sql, "create or replace view public.", |rest| {
        let end = rest.find(';').unwrap_or(rest.len());
        (rest[..end].to_owned(), end)
    })
}

/// The string constants of queries.rs: (name, the statement's text: its string literals'
/// contents, Rust's line continuations removed).
fn constants(rust: &str) -> Vec<(String, String)> {
    items(rust, "pub const ", |rest| {
        let end = rest.find(";\n").unwrap_or(rest.len());
        let mut text = String::new();
        for (i, piece) in rest[..end].split('"').enumerate() {
            if i % 2 == 1 {
                text.push_str(&piece.replace("\\\n", " "));
                text.push(' ');
            }
        }
        (text, end)
    })
}

#[test]
fn every_statement_on_a_bucketed_table_filters_on_its_bucket_or_is_a_documented_exception() {
    let root = env!("CARGO_MANIFEST_DIR");
    let sql = std::fs::read_to_string(format!("{root}/sql/zart.sql")).unwrap();
    let rust = std::fs::read_to_string(format!("{root}/src/queries.rs")).unwrap();
    let docs = std::fs::read_to_string(format!("{root}/../docs/scale.md")).unwrap();

    let mut found = Vec::new();
    let mut checked = 0;
    let functions = functions(&sql);
    assert!(functions.len() > 50, "found {} functions", functions.len());
    for (name, body) in &functions {
        checked += check(name, body, &mut found);
    }
    for (name, text) in views(&sql) {
        checked += check(&name, &text, &mut found);
    }
    for (name, text) in constants(&rust) {
        checked += check(&name, &text, &mut found);
    }
    assert!(
        checked > 50,
        "only {checked} statements on bucketed tables found"
    );

    let excepted = |u: &Unfiltered| {
        EXCEPTIONS
            .iter()
            .any(|(owner, table, _)| *owner == u.owner && *table == u.table)
    };
    let unexcused: Vec<&Unfiltered> = found.iter().filter(|u| !excepted(u)).collect();
    assert!(
        unexcused.is_empty(),
        "statements on bucketed tables without a bucket condition (add one, or list the \
         statement in EXCEPTIONS and docs/scale.md with why it spans buckets):\n{unexcused:#?}"
    );
    for (owner, table, why) in EXCEPTIONS {
        assert!(
            found.iter().any(|u| u.owner == *owner && u.table == *table),
            "exception ({owner}, {table}) is no longer needed: remove it"
        );
        assert!(!why.is_empty());
        assert!(
            docs.contains(&format!("`{owner}`")),
            "docs/scale.md does not name the exception `{owner}`"
        );
    }
}

#[test]
fn the_check_sees_a_statement_without_a_bucket_condition() {
    let mut found = Vec::new();
    let body = "begin
        update public.zart_tasks t set run_at = now() where t.bucket = p_bucket and t.id = p_id;
        insert into public.zart_steps as s (bucket, execution_id) values (p_bucket, p_id);
        delete from public.zart_events where execution_id = p_id; -- no bucket
        select 1 from zart_executions e join public.zart_steps s on s.execution_id = e.id;
    end";
    assert_eq!(check("f", body, &mut found), 4);
    let missed: Vec<(&str, &str)> = found
        .iter()
        .map(|u| (u.owner.as_str(), u.table.as_str()))
        .collect();
    assert_eq!(
        missed,
        [
            ("f", "zart_events"),
            ("f", "zart_executions"),
            ("f", "zart_steps")
        ]
    );
}

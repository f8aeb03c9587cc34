//! A MySQL/MariaDB server for tests outside zart-mysql (the CLI's, the sidecar's): the server
//! URL and a fresh database each, as zart-mysql's own tests/support does (zart-mysql cannot
//! use this crate: zart-sidecar, which this crate uses, depends on zart-mysql).
//!
//! The server is `ZART_MYSQL_URL` (a URL without a database; `eval "$(ci/mariadb-up)"` prints
//! one, starting a throwaway MariaDB when none answers), default
//! `mysql://root@127.0.0.1:3306`.
#![allow(clippy::unwrap_used)]

use mysql_async::prelude::Queryable;

/// The server URL, without a database.
pub fn server_url() -> String {
    std::env::var("ZART_MYSQL_URL")
        .unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".to_owned())
        .trim_end_matches('/')
        .to_owned()
}

/// Runs one statement on the server (no database selected).
pub async fn admin(sql: &str) {
    let pool = mysql_async::Pool::new(server_url().as_str());
    let mut conn = pool.get_conn().await.unwrap();
    conn.query_drop(sql).await.unwrap();
    drop(conn);
    pool.disconnect().await.unwrap();
}

/// A fresh, empty database `name` (dropped first if left from an earlier run); returns its URL.
pub async fn fresh_database(name: &str) -> String {
    admin(&format!("drop database if exists {name}")).await;
    admin(&format!("create database {name}")).await;
    format!("{}/{name}", server_url())
}

/// Drops database `name`.
pub async fn drop_database(name: &str) {
    admin(&format!("drop database if exists {name}")).await;
}

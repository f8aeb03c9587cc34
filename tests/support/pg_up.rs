//! A private throwaway cluster started with `ci/pg-up` (never the shared server), for tests
//! that change the server itself (restart it, stop it, turn TLS on); stopped and deleted with
//! `ci/pg-down` when dropped, so a failing test still cleans up.

use std::path::{Path, PathBuf};
use std::str::FromStr;

/// The repository's root (where `ci/` is).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A cluster from `ci/pg-up`; dropping it runs `ci/pg-down`.
pub struct PgUp {
    /// What ci/pg-up printed (DATABASE_URL, ZART_PG_DIR, ZART_PG_CTL, ZART_PG_USER, ...),
    /// handed back to ci/pg-down.
    exports: Vec<(String, String)>,
}

impl PgUp {
    /// Starts a fresh cluster (blocking: call it from `spawn_blocking`). Panics unless ci/pg-up
    /// started one of its own on a port other than the shared server's.
    pub fn start() -> PgUp {
        PgUp::start_with(false)
    }

    /// Like [`PgUp::start`], with PostgreSQL's durability defaults (`fsync`,
    /// `synchronous_commit`: ci/pg-up's `ZART_PG_DURABLE=1`), for tests that crash the server
    /// (an immediate shutdown loses asynchronously committed transactions, which an
    /// acknowledged write must never be).
    pub fn start_durable() -> PgUp {
        PgUp::start_with(true)
    }

    fn start_with(durable: bool) -> PgUp {
        let mut command = std::process::Command::new(repo_root().join("ci/pg-up"));
        if durable {
            command.env("ZART_PG_DURABLE", "1");
        } else {
            command.env_remove("ZART_PG_DURABLE");
        }
        let out = command
            .env_remove("DATABASE_URL")
            .env_remove("ZART_PG_DIR")
            .env_remove("ZART_PG_STARTED")
            .env_remove("ZART_PG_FRESH")
            .stderr(std::process::Stdio::inherit())
            .output()
            .expect("run ci/pg-up");
        assert!(out.status.success(), "ci/pg-up failed: {}", out.status);
        // The guard exists from here on: a failure below still stops the cluster.
        let cluster = PgUp {
            exports: parse_exports(&String::from_utf8_lossy(&out.stdout)),
        };
        assert_eq!(cluster.get("ZART_PG_STARTED"), "1");
        assert_ne!(
            cluster.port(),
            5432,
            "a private cluster must not be the shared server"
        );
        cluster
    }

    /// One of ci/pg-up's exports.
    pub fn get(&self, key: &str) -> String {
        self.exports
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("ci/pg-up printed no {key}: {:?}", self.exports))
    }

    /// The cluster's URL (database `postgres`, user `postgres`, no password).
    pub fn url(&self) -> String {
        self.get("DATABASE_URL")
    }

    /// The data directory.
    pub fn dir(&self) -> PathBuf {
        PathBuf::from(self.get("ZART_PG_DIR"))
    }

    /// The port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        tokio_postgres::Config::from_str(&self.url())
            .unwrap()
            .get_ports()
            .first()
            .copied()
            .expect("a port in the URL")
    }
}

impl PgUp {
    /// `pg_ctl -D <dir> <args>` as the cluster's OS user (blocking: call it from
    /// `spawn_blocking`); the server's output goes to `server.log` in the data dir.
    ///
    /// # Panics
    /// When pg_ctl fails, with the tail of the server log.
    pub fn pg_ctl(&self, args: &[&str]) {
        let (dir, pg_ctl, user) = (
            self.get("ZART_PG_DIR"),
            self.get("ZART_PG_CTL"),
            self.get("ZART_PG_USER"),
        );
        let mut cmd = if is_root() && user != "root" {
            let mut c = std::process::Command::new("runuser");
            c.args(["-u", &user, "--", &pg_ctl]);
            c
        } else {
            std::process::Command::new(&pg_ctl)
        };
        // The server inherits pg_ctl's output unless -l is given: send it to the log so that
        // nothing here waits for the server's end of a pipe.
        let log = format!("{dir}/server.log");
        let status = cmd
            .current_dir("/")
            .args(["-D", &dir])
            .args(args)
            .args(if args.contains(&"stop") {
                vec![]
            } else {
                vec!["-l", log.as_str()]
            })
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::inherit())
            .status()
            .expect("run pg_ctl");
        if !status.success() {
            let tail = std::fs::read_to_string(&log).unwrap_or_default();
            let tail: Vec<_> = tail.lines().rev().take(20).collect();
            panic!(
                "pg_ctl {args:?} failed ({status}); server log tail:\n{}",
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
        }
    }

    /// Restarts the server with shutdown mode `mode` (`fast` or `immediate`), waiting for it.
    pub fn restart(&self, mode: &str) {
        self.pg_ctl(&["-m", mode, "-w", "-t", "60", "restart"]);
    }

    /// Stops the server (fast shutdown), waiting for it.
    pub fn stop(&self) {
        self.pg_ctl(&["-m", "fast", "-w", "-t", "60", "stop"]);
    }

    /// Starts it again on the same port, with the options ci/pg-up uses.
    pub fn start_again(&self) {
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c max_connections=300 -c fsync=off \
             -c synchronous_commit=off -c full_page_writes=off",
            self.port(),
            self.get("ZART_PG_DIR")
        );
        self.pg_ctl(&["-w", "-t", "60", "-o", &opts, "start"]);
    }
}

/// Whether this process runs as root (servers then run as their own OS user).
pub fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

impl Drop for PgUp {
    fn drop(&mut self) {
        let status = std::process::Command::new(repo_root().join("ci/pg-down"))
            .envs(self.exports.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .status();
        if !matches!(status, Ok(s) if s.success()) {
            eprintln!(
                "ci/pg-down failed for {}: {status:?}",
                self.get("ZART_PG_DIR")
            );
        }
    }
}

/// Parses `export KEY='value'` lines (single quotes, `'\''` for a quote).
pub fn parse_exports(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|line| line.strip_prefix("export "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let v = v
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .unwrap_or(v);
            (k.to_owned(), v.replace("'\\''", "'"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::parse_exports;

    #[test]
    fn exports_parse() {
        let parsed = parse_exports(
            "export DATABASE_URL='postgres://postgres@127.0.0.1:55433/postgres'\n\
             export ZART_PG_DIR='/tmp/it'\\''s'\n",
        );
        assert_eq!(
            parsed,
            vec![
                (
                    "DATABASE_URL".to_owned(),
                    "postgres://postgres@127.0.0.1:55433/postgres".to_owned()
                ),
                ("ZART_PG_DIR".to_owned(), "/tmp/it's".to_owned()),
            ]
        );
    }
}

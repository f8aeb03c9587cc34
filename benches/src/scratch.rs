//! Scratch databases: one per run, created on the server the user names, migrated by the
//! caller, and dropped again when the run ends, also after an error or Ctrl-C.

use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use tokio_postgres::{Client, Config, NoTls};

/// Parses a server URL, with a 10 s connect timeout unless the URL sets one and the given
/// application name (shown in `pg_stat_activity`).
///
/// # Errors
/// When the URL does not parse.
pub fn server_config(url: &str, application_name: &str) -> Result<Config> {
    let mut config = Config::from_str(url)
        .context("--database-url / DATABASE_URL does not parse as a PostgreSQL URL")?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    config.application_name(application_name);
    Ok(config)
}

/// `<prefix>_<pid>`: a database name unique to this process.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}_{}", std::process::id())
}

/// Connects and drives the connection on a background task.
///
/// # Errors
/// When the server cannot be reached.
pub async fn connect(config: &Config) -> Result<Client> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// A database created for one run.
#[derive(Debug)]
pub struct Scratch {
    admin: Config,
    config: Config,
    name: String,
    server_version: String,
}

impl Scratch {
    /// Creates (after dropping any leftover of the same name) the database `name` on the
    /// server of `server`; the `postgres` database is used to create and drop it.
    ///
    /// # Errors
    /// When the server cannot be reached or the database cannot be created.
    pub async fn create(server: &Config, name: &str) -> Result<Scratch> {
        let mut admin = server.clone();
        admin.dbname("postgres");
        let mut config = server.clone();
        config.dbname(name);
        let client = connect(&admin)
            .await
            .context("connecting to the `postgres` database")?;
        let server_version: String = client
            .query_one("select current_setting('server_version')", &[])
            .await
            .context("reading the server version")?
            .try_get(0)?;
        // Separate statements: DROP/CREATE DATABASE cannot run in a multi-statement batch.
        for sql in [
            format!("drop database if exists \"{name}\" with (force)"),
            format!("create database \"{name}\""),
        ] {
            client
                .batch_execute(&sql)
                .await
                .with_context(|| format!("creating the scratch database {name}"))?;
        }
        Ok(Scratch {
            admin,
            config,
            name: name.to_owned(),
            server_version,
        })
    }

    /// The connection settings of the scratch database.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `server_version` of the server.
    pub fn server_version(&self) -> &str {
        &self.server_version
    }

    /// Runs `f` on the scratch database and drops the database afterwards, whether `f`
    /// succeeded, failed or was interrupted by Ctrl-C. `f`'s error comes first.
    ///
    /// # Errors
    /// `f`'s error, "interrupted", or the failure to drop the database.
    pub async fn run<T, F, Fut>(self, f: F) -> Result<T>
    where
        F: FnOnce(Config) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let result = tokio::select! {
            result = f(self.config.clone()) => result,
            _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
        };
        let dropped = self.drop_database().await;
        match (result, dropped) {
            (Ok(value), Ok(())) => Ok(value),
            (Ok(_), Err(d)) => Err(d),
            (Err(e), Ok(())) => Err(e),
            (Err(e), Err(d)) => Err(e.context(format!("and then failed to drop it: {d:#}"))),
        }
    }

    /// Drops the database, disconnecting anything still attached to it.
    ///
    /// # Errors
    /// When the server cannot be reached or the drop fails.
    pub async fn drop_database(self) -> Result<()> {
        let client = connect(&self.admin)
            .await
            .context("connecting to the `postgres` database to drop the scratch database")?;
        client
            .batch_execute(&format!(
                "drop database if exists \"{}\" with (force)",
                self.name
            ))
            .await
            .with_context(|| format!("dropping the scratch database {}", self.name))
    }
}

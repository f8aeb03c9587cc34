//! LOGIN roles made for one test, members of Zart's group roles (`zart_worker`, `zart_client`,
//! `zart_reader`, set up by `zart migrate`). Names are unique per test, since roles belong to
//! the whole cluster and tests run side by side; all of them are dropped, with their
//! privileges, when the [`Logins`] is dropped, also after a failure.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use tokio_postgres::NoTls;
use zart_pg::PgPool;

use crate::{server_url, url_with_db, TestDb};

/// The LOGIN roles of one test.
pub struct Logins {
    suffix: String,
    db_name: String,
    config: tokio_postgres::Config,
    made: Mutex<Vec<String>>,
}

impl Logins {
    /// No logins yet; [`Logins::create`] makes them in `db`'s cluster.
    pub fn new(db: &TestDb) -> Logins {
        static N: AtomicU32 = AtomicU32::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        Logins {
            suffix: format!(
                "t{}_{}_{}",
                std::process::id(),
                N.fetch_add(1, Ordering::SeqCst),
                nanos % 100_000
            ),
            db_name: db.name.clone(),
            config: db.config(),
            made: Mutex::new(Vec::new()),
        }
    }

    /// The role name of the login called `name` in this test.
    pub fn name(&self, name: &str) -> String {
        format!("zart_login_{name}_{}", self.suffix)
    }

    /// Creates the login `name`, a member of each of `groups` (none: a login with no Zart
    /// grant). Returns its role name.
    pub async fn create(
        &self,
        admin: &tokio_postgres::Client,
        name: &str,
        groups: &[&str],
    ) -> String {
        let role = self.name(name);
        let member = if groups.is_empty() {
            String::new()
        } else {
            format!(" in role {}", groups.join(", "))
        };
        admin
            .batch_execute(&format!("create role {role} login{member}"))
            .await
            .unwrap_or_else(|e| panic!("create role {role}: {e:?}"));
        self.made.lock().unwrap().push(role.clone());
        role
    }

    /// Connection settings for the login `name`.
    pub fn config(&self, name: &str) -> tokio_postgres::Config {
        let mut config = self.config.clone();
        config.user(self.name(name));
        config
    }

    /// A connection as the login `name`.
    pub async fn client(&self, name: &str) -> tokio_postgres::Client {
        let (client, connection) = self
            .config(name)
            .connect(NoTls)
            .await
            .unwrap_or_else(|e| panic!("connecting as {name}: {e:?}"));
        tokio::spawn(connection);
        client
    }

    /// A pool of connections as the login `name`.
    pub fn pool(&self, name: &str) -> PgPool {
        PgPool::from_config(self.config(name), 4).unwrap()
    }
}

impl Drop for Logins {
    fn drop(&mut self) {
        let names = std::mem::take(&mut *self.made.lock().unwrap_or_else(|e| e.into_inner()));
        if names.is_empty() {
            return;
        }
        let server = server_url();
        let list = names.join(", ");
        let quoted = names
            .iter()
            .map(|n| format!("'{n}'"))
            .collect::<Vec<_>>()
            .join(", ");
        let db_url = url_with_db(&server, &self.db_name);
        let admin_url = url_with_db(&server, "postgres");
        // From a thread with its own runtime: Drop cannot await.
        let result = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut errors = Vec::new();
                // The privileges in the test database first (it may be kept after a failure).
                if let Ok((client, conn)) = tokio_postgres::connect(&db_url, NoTls).await {
                    tokio::spawn(conn);
                    if let Err(e) = client
                        .batch_execute(&format!(
                            "select pg_terminate_backend(pid) from pg_stat_activity
                              where usename in ({quoted});
                             drop owned by {list}"
                        ))
                        .await
                    {
                        errors.push(format!("drop owned: {e:?}"));
                    }
                }
                match tokio_postgres::connect(&admin_url, NoTls).await {
                    Ok((client, conn)) => {
                        tokio::spawn(conn);
                        for name in &names {
                            if let Err(e) = client
                                .batch_execute(&format!("drop role if exists {name}"))
                                .await
                            {
                                errors.push(format!("drop role {name}: {e:?}"));
                            }
                        }
                    }
                    Err(e) => errors.push(format!("connect: {e}")),
                }
                errors
            })
        })
        .join();
        match result {
            Ok(errors) if errors.is_empty() => {}
            Ok(errors) => eprintln!("could not drop the test logins: {errors:?}"),
            Err(_) => eprintln!("could not drop the test logins"),
        }
    }
}

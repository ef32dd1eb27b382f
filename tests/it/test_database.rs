//! A database of its own for each test: a SQLite file in a temporary directory, or a schema of
//! its own in the PostgreSQL test database, dropped after; a side connection to it, for what a
//! test must do behind the app's back; and whether PostgreSQL can be reached at all.

use sqlx::{Connection, Executor};
use tempfile::TempDir;

use maestro::{
    config::{DatabaseArgs, Secret},
    store::secrets::MasterKey,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where the test PostgreSQL server is; CI points at the machine's own.
fn postgres_base_url() -> String {
    std::env::var("MAESTRO_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

const TEST_DATABASE: &str = "maestro_test";

/// Whether tests on `backend` can run here. PostgreSQL being unreachable fails the test under
/// CI (`CI=true`) and skips it, loudly, elsewhere. Found out once per test run.
pub async fn backend_available(backend: Backend) -> bool {
    static POSTGRES: tokio::sync::OnceCell<bool> = tokio::sync::OnceCell::const_new();
    match backend {
        Backend::Sqlite => true,
        Backend::Postgres => *POSTGRES.get_or_init(postgres_available).await,
    }
}

async fn postgres_available() -> bool {
    match sqlx::PgConnection::connect(&postgres_base_url()).await {
        Ok(mut admin) => {
            let exists: bool =
                sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
                    .bind(TEST_DATABASE)
                    .fetch_one(&mut admin)
                    .await
                    .unwrap();
            if !exists {
                // Test binaries running at once may race to create it; losing is fine.
                let _ = admin
                    .execute(format!("CREATE DATABASE {TEST_DATABASE}").as_str())
                    .await;
            }
            true
        }
        Err(err) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!(
                "PostgreSQL at {} is unreachable under CI: {err}",
                postgres_base_url()
            )
        }
        Err(err) => {
            // Once per run, and straight to the terminal: the test harness would swallow an
            // eprintln! of a passing test.
            static ANNOUNCED: std::sync::Once = std::sync::Once::new();
            ANNOUNCED.call_once(|| {
                use std::io::Write;
                let _ = writeln!(
                    std::io::stderr(),
                    "SKIPPED: the PostgreSQL tests; PostgreSQL at {} is unreachable ({err}). \
                     Set MAESTRO_TEST_POSTGRES_URL to run them.",
                    postgres_base_url()
                );
            });
            false
        }
    }
}

/// A database of its own for one test: a SQLite file in a temporary directory, or a fresh
/// schema in the PostgreSQL test database (dropped afterwards).
pub struct TestDatabase {
    pub backend: Backend,
    pub url: String,
    /// `MAESTRO_MASTER_KEY` for this database: PostgreSQL requires one; SQLite uses the key file
    /// beside the database instead, as it does by default.
    pub master_key: Option<String>,
    _dir: TempDir,
    schema: Option<String>,
}

impl TestDatabase {
    pub async fn new(backend: Backend) -> TestDatabase {
        let dir = tempfile::tempdir().unwrap();
        match backend {
            Backend::Sqlite => TestDatabase {
                backend,
                url: format!("sqlite://{}", dir.path().join("maestro.db").display()),
                master_key: None,
                _dir: dir,
                schema: None,
            },
            Backend::Postgres => {
                let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
                let mut conn = sqlx::PgConnection::connect(&test_database_url())
                    .await
                    .unwrap();
                conn.execute(format!("CREATE SCHEMA {schema}").as_str())
                    .await
                    .unwrap();
                TestDatabase {
                    backend,
                    url: format!("{}?options[search_path]={schema}", test_database_url()),
                    master_key: Some(MasterKey::generate().to_base64()),
                    _dir: dir,
                    schema: Some(schema),
                }
            }
        }
    }

    /// What the app and the CLI are given to open this database.
    pub fn database_args(&self) -> DatabaseArgs {
        DatabaseArgs {
            url: self.url.clone(),
            master_key: self.master_key.as_deref().map(Secret::new),
            ..DatabaseArgs::default()
        }
    }

    /// The folder of the SQLite file (where its key file is), the CLI's working directory.
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Runs the real `maestro` binary on this database (`--database-url` appended, the master
    /// key in `MAESTRO_MASTER_KEY` where the database has one), off the test's runtime.
    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_maestro"));
        command
            .args(args)
            .args(["--database-url", &self.url])
            .current_dir(self._dir.path())
            .env_remove("MAESTRO_DATABASE_URL")
            .env_remove("MAESTRO_MASTER_KEY");
        if let Some(key) = &self.master_key {
            command.env("MAESTRO_MASTER_KEY", key);
        }
        tokio::task::spawn_blocking(move || command.output().unwrap())
            .await
            .unwrap()
    }

    /// A connection of the test's own to the same database (to break or lock it).
    pub async fn side_connection(&self) -> SideConnection {
        match self.backend {
            Backend::Sqlite => SideConnection::Sqlite(
                rusqlite::Connection::open(self.url.trim_start_matches("sqlite://")).unwrap(),
            ),
            Backend::Postgres => {
                SideConnection::Postgres(sqlx::PgConnection::connect(&self.url).await.unwrap())
            }
        }
    }

    /// A side connection holding a lock that keeps the app from writing alerts until it ends.
    pub async fn hold_write_lock(&self) -> SideConnection {
        let mut conn = self.side_connection().await;
        match self.backend {
            Backend::Sqlite => conn.execute("BEGIN IMMEDIATE").await,
            Backend::Postgres => {
                conn.execute("BEGIN").await;
                conn.execute("LOCK TABLE alerts IN ACCESS EXCLUSIVE MODE")
                    .await;
            }
        }
        conn
    }
}

pub enum SideConnection {
    Sqlite(rusqlite::Connection),
    Postgres(sqlx::PgConnection),
}

impl SideConnection {
    /// The first column of every row `sql` returns, as text (NULL as the empty string).
    pub async fn strings(&mut self, sql: &str) -> Vec<String> {
        match self {
            SideConnection::Sqlite(conn) => conn
                .prepare(sql)
                .and_then(|mut statement| {
                    statement
                        .query_map([], |row| row.get::<_, Option<String>>(0))?
                        .map(|value| value.map(Option::unwrap_or_default))
                        .collect()
                })
                .unwrap_or_else(|err| panic!("{sql}: {err}")),
            SideConnection::Postgres(conn) => sqlx::query_scalar::<_, Option<String>>(sql)
                .fetch_all(conn)
                .await
                .unwrap_or_else(|err| panic!("{sql}: {err}"))
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect(),
        }
    }

    pub async fn execute(&mut self, sql: &str) {
        match self {
            SideConnection::Sqlite(conn) => conn
                .execute_batch(sql)
                .unwrap_or_else(|err| panic!("{sql}: {err}")),
            SideConnection::Postgres(conn) => {
                conn.execute(sql)
                    .await
                    .unwrap_or_else(|err| panic!("{sql}: {err}"));
            }
        }
    }
}

pub(crate) fn test_database_url() -> String {
    let base = postgres_base_url();
    let (without_db, _) = base.rsplit_once('/').unwrap();
    format!("{without_db}/{TEST_DATABASE}")
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if let Some(schema) = self.schema.take() {
            // Drop runs outside async code: a thread of its own with a small runtime.
            let _ = std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                runtime.block_on(async {
                    if let Ok(mut conn) = sqlx::PgConnection::connect(&test_database_url()).await {
                        let _ = conn
                            .execute(format!("DROP SCHEMA {schema} CASCADE").as_str())
                            .await;
                    }
                });
            })
            .join();
        }
    }
}

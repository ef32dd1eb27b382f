//! Reaching the PostgreSQL server: the pool, its timeouts, and the schema's migrations.

use std::str::FromStr;

use sqlx::{
    PgPool,
    postgres::{PgConnectOptions, PgPoolOptions},
};

use super::super::{Open, migrations};
use crate::config::DatabaseArgs;

const MIGRATIONS: &[migrations::EmbeddedMigration] = &[
    (1, "init", include_str!("migrations/0001_init.sql")),
    (
        2,
        "subscriptions",
        include_str!("migrations/0002_subscriptions.sql"),
    ),
    (
        3,
        "company events",
        include_str!("migrations/0003_company_events.sql"),
    ),
    (4, "delivery", include_str!("migrations/0004_delivery.sql")),
    (5, "inbox", include_str!("migrations/0005_inbox.sql")),
    (
        6,
        "delivery partner cap",
        include_str!("migrations/0006_delivery_partner_cap.sql"),
    ),
    (
        7,
        "key and secret rotation",
        include_str!("migrations/0007_key_and_secret_rotation.sql"),
    ),
    (
        8,
        "app center",
        include_str!("migrations/0008_app_center.sql"),
    ),
    (
        9,
        "withdrawal",
        include_str!("migrations/0009_withdrawal.sql"),
    ),
    (
        10,
        "downstream",
        include_str!("migrations/0010_downstream.sql"),
    ),
    (
        11,
        "inbox resume snooze sessions",
        include_str!("migrations/0011_inbox_resume_snooze_sessions.sql"),
    ),
    (
        12,
        "group commit",
        include_str!("migrations/0012_group_commit.sql"),
    ),
    (
        13,
        "outbox notify",
        include_str!("migrations/0013_outbox_notify.sql"),
    ),
    (
        14,
        "delivery leases",
        include_str!("migrations/0014_delivery_leases.sql"),
    ),
    (
        15,
        "delivery queue",
        include_str!("migrations/0015_delivery_queue.sql"),
    ),
    (
        16,
        "delivery step",
        include_str!("migrations/0016_delivery_step.sql"),
    ),
    (
        17,
        "delivery path without key checks",
        include_str!("migrations/0017_delivery_path_without_key_checks.sql"),
    ),
    (
        18,
        "delivery worker lag",
        include_str!("migrations/0018_delivery_worker_lag.sql"),
    ),
];

/// Connects the pool and migrates the schema (unless `open` forbids making it). Returns the
/// options too: the outbox signal's connection of its own connects the same way. Errors name
/// the server and database, never the URL, which may hold a password.
pub(super) async fn pool(
    database: &DatabaseArgs,
    open: Open,
) -> anyhow::Result<(PgPool, PgConnectOptions)> {
    let timeout = database.database_timeout;
    // sqlx's message does not repeat the URL, which may hold a password.
    let options = PgConnectOptions::from_str(&database.url)
        .map_err(|err| anyhow::anyhow!("the PostgreSQL URL is not valid: {err}"))?
        .options([(
            "statement_timeout",
            format!("{}", timeout.as_millis().max(1)),
        )]);
    let place = format!(
        "PostgreSQL at {}:{} (database {})",
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap_or("of the user's name")
    );
    let pool = PgPoolOptions::new()
        .max_connections(database.database_max_connections.max(1))
        .acquire_timeout(timeout)
        .connect_with(options.clone())
        .await
        .map_err(|err| match err {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Tls(_) => {
                anyhow::anyhow!("{place} is unreachable: {err}")
            }
            err => anyhow::anyhow!("{place}: {err}"),
        })?;
    if open == Open::Existing {
        let migrated: bool =
            sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NOT NULL")
                .fetch_one(&pool)
                .await?;
        anyhow::ensure!(
            migrated,
            "{place} holds no maestro schema (only `maestro serve` and `maestro migrate` \
             create it; check --database-url or MAESTRO_DATABASE_URL)"
        );
    }
    let migrator = migrations::migrator(MIGRATIONS).await?;
    migrator.run(&pool).await.map_err(|err| match err {
        sqlx::migrate::MigrateError::VersionMissing(version) => anyhow::anyhow!(
            "{place}: its schema has migration {version}, which this maestro does not know: \
             a newer maestro upgraded it; run that version"
        ),
        err => anyhow::anyhow!("{place}: migrating the schema failed: {err}"),
    })?;
    Ok((pool, options))
}

//! Migrations compiled into the binary, run by sqlx's migrator.
//!
//! sqlx's `migrate!` macro would embed them too, but it needs sqlx's proc-macro crate, which
//! builds every database driver a second time for the host; a tiny `MigrationSource` is cheaper.

use std::{borrow::Cow, future::Future, pin::Pin};

use sqlx::{
    error::BoxDynError,
    migrate::{Migration, MigrationSource, MigrationType, Migrator},
};

/// One migration file: version, description and SQL.
pub(crate) type EmbeddedMigration = (i64, &'static str, &'static str);

#[derive(Debug)]
struct Embedded(&'static [EmbeddedMigration]);

impl<'s> MigrationSource<'s> for Embedded {
    fn resolve(
        self,
    ) -> Pin<Box<dyn Future<Output = Result<Vec<Migration>, BoxDynError>> + Send + 's>> {
        Box::pin(async move {
            Ok(self
                .0
                .iter()
                .map(|(version, description, sql)| {
                    Migration::new(
                        *version,
                        Cow::Borrowed(description),
                        MigrationType::Simple,
                        Cow::Borrowed(sql),
                        false,
                    )
                })
                .collect())
        })
    }
}

pub(crate) async fn migrator(migrations: &'static [EmbeddedMigration]) -> anyhow::Result<Migrator> {
    Ok(Migrator::new(Embedded(migrations)).await?)
}

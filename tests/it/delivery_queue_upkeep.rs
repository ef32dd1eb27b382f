//! PostgreSQL: the store vacuums the delivery workers' queue and leases itself, whatever the
//! server's autovacuum settings (`store/postgres/queue_upkeep.rs`); here, when it opens.

use crate::helpers::*;

#[tokio::test]
async fn opening_the_store_vacuums_the_delivery_queue_and_leases() {
    if !backend_available(Backend::Postgres).await {
        return;
    }
    let db = TestDatabase::new(Backend::Postgres).await;
    let _store =
        maestro::store::connect(&db.database_args(), maestro::store::Open::CreateIfMissing)
            .await
            .unwrap();
    let vacuumed = db
        .side_connection()
        .await
        .strings(
            "SELECT relname FROM pg_stat_user_tables WHERE schemaname = current_schema() \
             AND vacuum_count > 0 AND relname IN ('delivery_queue', 'delivery_leases') \
             ORDER BY relname",
        )
        .await;
    assert_eq!(vacuumed, ["delivery_leases", "delivery_queue"]);
}

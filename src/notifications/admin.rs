//! What an operator sees of deliveries, and the replay of one that ended.

use std::sync::Arc;

use super::DeliveryWorker;
use crate::{
    auth::{Principal, SCOPE_ADMIN},
    clock::Clock,
    error::{Error, ErrorCode, Problem, Result},
    store::{
        AttemptRecord, DELIVERY_DELIVERED, DELIVERY_FAILED, DELIVERY_PENDING, DeliveryFilter,
        DeliverySummary, DynStore, ReplayOutcome,
    },
};

pub const DEFAULT_LIST_LIMIT: i64 = 50;
pub const MAX_LIST_LIMIT: i64 = 500;

pub struct DeliveryAdmin {
    store: DynStore,
    /// Woken after a replay, when this process runs a worker.
    worker: Option<Arc<DeliveryWorker>>,
    clock: Arc<Clock>,
}

/// The admin API needs `maestro.admin`; the CLI, which holds the database itself, does not.
pub fn authorize(caller: &Principal) -> Result<()> {
    caller.require_scope(SCOPE_ADMIN)
}

impl DeliveryAdmin {
    pub fn new(store: DynStore, worker: Option<Arc<DeliveryWorker>>, clock: Arc<Clock>) -> Self {
        DeliveryAdmin {
            store,
            worker,
            clock,
        }
    }

    /// Newest first; `status` one of pending, delivered, failed.
    pub async fn list(
        &self,
        status: Option<&str>,
        partner_id: Option<&str>,
        limit: Option<i64>,
    ) -> Result<Vec<DeliverySummary>> {
        let mut problems = Vec::new();
        if let Some(status) = status
            && ![DELIVERY_PENDING, DELIVERY_DELIVERED, DELIVERY_FAILED].contains(&status)
        {
            problems.push(Problem::at(
                ErrorCode::InvalidField,
                "status",
                "status must be pending, delivered or failed.",
            ));
        }
        let limit = limit.unwrap_or(DEFAULT_LIST_LIMIT);
        if !(1..=MAX_LIST_LIMIT).contains(&limit) {
            problems.push(Problem::at(
                ErrorCode::InvalidField,
                "limit",
                format!("limit must be between 1 and {MAX_LIST_LIMIT}."),
            ));
        }
        if !problems.is_empty() {
            return Err(Error::Rejected(problems));
        }
        let filter = DeliveryFilter {
            status: status.map(str::to_owned),
            partner_id: partner_id.map(str::to_owned),
            limit,
        };
        Ok(self.store.deliveries(&filter).await?)
    }

    /// A delivery with every attempt made.
    pub async fn show(&self, delivery_id: &str) -> Result<(DeliverySummary, Vec<AttemptRecord>)> {
        self.store
            .delivery(delivery_id)
            .await?
            .ok_or_else(not_found)
    }

    /// Makes a failed (or delivered) delivery pending again, due now, under the same
    /// `webhook-id`; its retry schedule starts over.
    pub async fn replay(&self, delivery_id: &str) -> Result<DeliverySummary> {
        match self
            .store
            .replay_delivery(delivery_id, self.clock.now())
            .await?
        {
            ReplayOutcome::Replayed => {}
            ReplayOutcome::NotFound => return Err(not_found()),
            ReplayOutcome::StillPending => {
                return Err(Error::new(
                    ErrorCode::DeliveryPending,
                    "The delivery is still pending; it will be attempted without a replay.",
                ));
            }
        }
        if let Some(worker) = &self.worker {
            worker.wake();
        }
        Ok(self.show(delivery_id).await?.0)
    }
}

fn not_found() -> Error {
    Error::new(ErrorCode::DeliveryNotFound, "No delivery with that id.")
}

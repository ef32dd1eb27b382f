//! Withdrawing an alert that is no longer valid (SPEC §4.1): it leaves every inbox at once,
//! `alert.withdrawn` tells the live streams, and it takes no more updates.

use super::{AlertService, Receipt, ReceiptStatus, Submitter, is_alert_id};
use crate::{
    error::{Error, ErrorCode, Result},
    store::{WithdrawOutcome, WithdrawTarget},
};

impl AlertService {
    /// `DELETE /maestro/v4/alerts/{alertId}`: idempotent, a repeat answers the same. The alert
    /// must be the partner's and, when the token carries a company, that company's; a token
    /// without one (an app token) acts for the partner in every company, as it may create
    /// alerts in any.
    pub async fn withdraw(&self, submitter: &Submitter, alert_id: &str) -> Result<Receipt> {
        let not_found = || {
            Error::new(
                ErrorCode::AlertNotFound,
                "No such alert for this partner and company.",
            )
        };
        // An id this server never hands out names no alert: no need to ask the store.
        if !is_alert_id(alert_id) {
            return Err(not_found());
        }
        let caller = &submitter.caller;
        let target = WithdrawTarget {
            partner_id: caller.partner.partner.id.clone(),
            company_id: caller.principal.company_id.clone(),
            alert_id: alert_id.to_owned(),
        };
        let message = match self.store.withdraw_alert(&target, self.clock.now()).await? {
            WithdrawOutcome::Withdrawn => {
                self.feed.poke();
                "Alert withdrawn"
            }
            WithdrawOutcome::AlreadyWithdrawn => "Alert already withdrawn",
            WithdrawOutcome::NotFound => return Err(not_found()),
        };
        Ok(Receipt {
            alert_id: target.alert_id,
            status: ReceiptStatus::Withdrawn,
            message,
        })
    }
}

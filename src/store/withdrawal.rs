//! The records of a partner's withdrawal of an alert (SPEC §4.1).

/// The alert a partner withdraws: its id, among the partner's alerts of one company, or of every
/// company when the caller acts for the partner as a whole (an app token carries no company).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WithdrawTarget {
    pub partner_id: String,
    pub company_id: Option<String>,
    pub alert_id: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WithdrawOutcome {
    /// Withdrawn now, with its `alert.withdrawn` event.
    Withdrawn,
    /// Withdrawn before: nothing was written.
    AlreadyWithdrawn,
    NotFound,
}

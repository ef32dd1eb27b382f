//! Conversions between SQLite's column types and the store's records.

use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// Timestamps are stored as RFC 3339 text in UTC, which sorts and reads well.
pub(super) fn ts(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .expect("a UTC timestamp always formats as RFC 3339")
}

pub(super) fn parse_ts(text: &str) -> Result<OffsetDateTime, sqlx::Error> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

/// Expiry is stored as unix milliseconds so that "not yet expired" is an index range.
pub(super) fn millis(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(super) fn from_millis(ms: i64) -> Result<OffsetDateTime, sqlx::Error> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

pub(super) fn decode_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, sqlx::Error> {
    serde_json::from_str(text).map_err(|e| sqlx::Error::Decode(Box::new(e)))
}

//! Conversions between SQLite's column types and the store's records.

use rusqlite::types::Type;
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

/// A value read from the database that does not decode.
fn undecodable(err: impl std::error::Error + Send + Sync + 'static) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(0, Type::Text, Box::new(err))
}

/// Timestamps are stored as RFC 3339 text in UTC, which sorts and reads well.
pub(super) fn ts(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&Rfc3339)
        .expect("a UTC timestamp always formats as RFC 3339")
}

pub(super) fn parse_ts(text: &str) -> rusqlite::Result<OffsetDateTime> {
    OffsetDateTime::parse(text, &Rfc3339).map_err(undecodable)
}

/// Expiry is stored as unix milliseconds so that "not yet expired" is an index range.
pub(super) fn millis(at: OffsetDateTime) -> i64 {
    (at.unix_timestamp_nanos() / 1_000_000) as i64
}

pub(super) fn from_millis(ms: i64) -> rusqlite::Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).map_err(undecodable)
}

/// Token lifetimes (`exp`) are unix seconds.
pub(super) fn from_secs(secs: i64) -> rusqlite::Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp(secs).map_err(undecodable)
}

pub(super) fn decode_json<T: serde::de::DeserializeOwned>(text: &str) -> rusqlite::Result<T> {
    serde_json::from_str(text).map_err(undecodable)
}

pub(super) fn encode_json<T: serde::Serialize>(value: &T) -> rusqlite::Result<String> {
    serde_json::to_string(value).map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))
}

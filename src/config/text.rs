//! How settings are read from text and written back: a setting comes as text from a flag or a
//! variable, and as text or a TOML value from the configuration file, so each kind parses the
//! very syntax its flag accepts (humantime durations, `FromStr` types) and `config show` writes
//! it back in that syntax.

use std::{fmt::Display, str::FromStr, time::Duration};

use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

/// A duration in humantime's syntax (`300ms`, `5s`, `7days`).
pub mod duration {
    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(deserializer)?;
        humantime::parse_duration(&text)
            .map_err(|err| D::Error::custom(format!("invalid duration {text:?}: {err}")))
    }

    pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&format(*value))
    }

    /// In the largest unit that divides it (`180days` rather than humantime's `5months 27days
    /// 10h 30m`; days from two on, `24h` reads better than `1day`), so that defaults read as
    /// they are declared.
    pub fn format(value: Duration) -> String {
        const DAY: u128 = 86_400_000;
        const UNITS: [(u128, &str); 4] = [(3_600_000, "h"), (60_000, "m"), (1_000, "s"), (1, "ms")];
        let millis = value.as_millis();
        if value.is_zero() {
            return "0s".to_owned();
        }
        if !value.subsec_nanos().is_multiple_of(1_000_000) {
            return humantime::format_duration(value).to_string();
        }
        if millis >= 2 * DAY && millis.is_multiple_of(DAY) {
            return format!("{}days", millis / DAY);
        }
        let (unit, suffix) = UNITS
            .into_iter()
            .find(|(unit, _)| millis.is_multiple_of(*unit))
            .unwrap_or((1, "ms"));
        format!("{}{suffix}", millis / unit)
    }
}

/// A value of a `FromStr` type, written with its `Display`.
pub mod parsed {
    use super::*;

    pub fn deserialize<'de, D, T>(deserializer: D) -> Result<T, D::Error>
    where
        D: Deserializer<'de>,
        T: FromStr<Err: Display>,
    {
        let text = String::deserialize(deserializer)?;
        text.parse()
            .map_err(|err| D::Error::custom(format!("invalid value {text:?}: {err}")))
    }

    pub fn serialize<S: Serializer, T: Display>(
        value: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(value)
    }
}

/// One of the names a clap `ValueEnum` declares (`all`, `api`, `worker`).
pub mod choice {
    use clap::ValueEnum;

    use super::*;

    pub fn deserialize<'de, D: Deserializer<'de>, T: ValueEnum>(
        deserializer: D,
    ) -> Result<T, D::Error> {
        let text = String::deserialize(deserializer)?;
        T::from_str(&text, false).map_err(|_| {
            let names: Vec<String> = T::value_variants()
                .iter()
                .filter_map(|variant| Some(variant.to_possible_value()?.get_name().to_owned()))
                .collect();
            D::Error::custom(format!(
                "invalid value {text:?}: one of {}",
                names.join(", ")
            ))
        })
    }

    pub fn serialize<S: Serializer, T: ValueEnum>(
        value: &T,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match value.to_possible_value() {
            Some(name) => serializer.serialize_str(name.get_name()),
            None => Err(serde::ser::Error::custom("a hidden choice")),
        }
    }
}

/// A list of `FromStr` values: a TOML array of strings, or (from a flag, a variable or the
/// file) one comma-separated string, which the layers split before it gets here.
pub mod list {
    use super::*;

    pub fn deserialize<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
    where
        D: Deserializer<'de>,
        T: FromStr<Err: Display>,
    {
        Vec::<String>::deserialize(deserializer)?
            .into_iter()
            .map(|text| {
                text.trim()
                    .parse()
                    .map_err(|err| D::Error::custom(format!("invalid value {text:?}: {err}")))
            })
            .collect()
    }

    pub fn serialize<S, T>(values: &[T], serializer: S) -> Result<S::Ok, S::Error>
    where
        S: Serializer,
        T: Display,
    {
        serializer.collect_seq(values.iter().map(ToString::to_string))
    }
}

#[cfg(test)]
mod tests {
    use super::duration::format;
    use std::time::Duration;

    #[test]
    fn durations_are_written_in_their_largest_whole_unit() {
        let secs = Duration::from_secs;
        assert_eq!(format(secs(7 * 86_400)), "7days");
        assert_eq!(format(secs(180 * 86_400)), "180days");
        assert_eq!(format(secs(8 * 3_600)), "8h");
        assert_eq!(format(secs(24 * 3_600)), "24h");
        assert_eq!(format(secs(36 * 3_600)), "36h");
        assert_eq!(format(secs(90)), "90s");
        assert_eq!(format(Duration::from_millis(300)), "300ms");
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(Duration::from_nanos(1_500)), "1us 500ns");
        for text in [
            "7days",
            "180days",
            "8h",
            "24h",
            "90s",
            "300ms",
            "0s",
            "1us 500ns",
        ] {
            let parsed = humantime::parse_duration(text).unwrap();
            assert_eq!(format(parsed), text, "round trip");
        }
    }
}

/// Texts that must pass a check of their own (the NATS stream's name, its subjects' prefix),
/// the same checks the flags go through.
pub mod checked {
    use super::*;

    fn check<'de, D: Deserializer<'de>>(
        deserializer: D,
        check: fn(&str) -> Result<String, String>,
    ) -> Result<String, D::Error> {
        let text = String::deserialize(deserializer)?;
        check(&text).map_err(D::Error::custom)
    }

    pub fn stream_name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
        check(deserializer, crate::downstream::parse_stream_name)
    }

    pub fn subject_prefix<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
        check(deserializer, crate::downstream::parse_subject_prefix)
    }

    pub fn origins<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
        Vec::<String>::deserialize(deserializer)?
            .iter()
            .map(|text| crate::http::cors::parse_origin(text).map_err(D::Error::custom))
            .collect()
    }
}

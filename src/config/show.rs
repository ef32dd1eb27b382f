//! `maestro config show`: the effective settings of `maestro serve` as a TOML file, each line
//! with where its value came from. Secrets never appear: a `Secret` serializes as
//! [`REDACTED`] and its line is commented out, and a database URL's password is replaced.

use serde::Serializer;

use super::{Layered, Settings, declared};

pub const REDACTED: &str = "<redacted>";

/// The settings as a configuration file that would give them (secrets left out).
pub fn render(settings: &Layered<Settings>) -> anyhow::Result<String> {
    let mut values = toml::Table::try_from(&**settings)?;
    values.extend(toml::Table::try_from(&settings.database)?);
    values.extend(toml::Table::try_from(&settings.nats)?);
    let mut out = String::from(
        "# The effective configuration of `maestro serve`: defaults, then the configuration\n\
         # file, then MAESTRO_* variables, then flags. Each value says where it came from.\n",
    );
    for setting in declared::<Settings>() {
        let origin = settings
            .origin(&setting.key)
            .map_or_else(|| "not set".to_owned(), ToString::to_string);
        let line = match values.get(&setting.key) {
            None => format!("# {}", setting.key),
            Some(_) if setting.secret => format!("# {} = \"{REDACTED}\"", setting.key),
            Some(value) => format!("{} = {}", setting.key, inline(value)),
        };
        out.push_str(&format!("{line}  # {origin}\n"));
    }
    Ok(out)
}

fn inline(value: &toml::Value) -> String {
    match value {
        toml::Value::Array(items) => {
            let items: Vec<String> = items.iter().map(inline).collect();
            format!("[{}]", items.join(", "))
        }
        value => value.to_string(),
    }
}

/// A database URL with its password, if any, replaced: `postgres://maestro:<redacted>@db/x`.
pub fn without_password<S: Serializer>(url: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&redact_password(url))
}

pub fn redact_password(text: &str) -> String {
    match url::Url::parse(text) {
        Ok(mut url) if url.password().is_some() => {
            let _ = url.set_password(Some("redacted"));
            url.to_string()
        }
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_a_database_url_is_never_shown() {
        let shown = redact_password("postgres://maestro:s3cr3t@db.internal:5432/maestro");
        assert_eq!(
            shown,
            "postgres://maestro:redacted@db.internal:5432/maestro"
        );
        assert_eq!(
            redact_password("sqlite://maestro.db"),
            "sqlite://maestro.db"
        );
        assert_eq!(
            redact_password("postgres://maestro@db/maestro"),
            "postgres://maestro@db/maestro"
        );
    }
}

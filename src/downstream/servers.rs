//! `MAESTRO_NATS_URL`: the NATS servers, comma-separated, with the credentials they may carry.
//!
//! async-nats ignores credentials written in a URL, so they are taken out here and given to it
//! as options: `nats://USER:PASSWORD@host` is a user and password, `nats://TOKEN@host` a token
//! (the NATS tools' conventions). They never show: `Debug` and `Display` print `***` instead.

use std::{fmt, str::FromStr};

use url::Url;

#[derive(Clone, PartialEq, Eq)]
pub struct NatsServers {
    /// Without their credentials.
    addresses: Vec<Url>,
    credentials: Option<Credentials>,
}

#[derive(Clone, PartialEq, Eq)]
pub enum Credentials {
    UserAndPassword(String, String),
    Token(String),
}

impl NatsServers {
    /// The servers as async-nats reads them (no credentials).
    pub fn addresses(&self) -> Vec<String> {
        self.addresses.iter().map(Url::to_string).collect()
    }

    pub fn credentials(&self) -> Option<&Credentials> {
        self.credentials.as_ref()
    }

    /// `host:port` of each server, for documents and logs.
    pub fn hosts(&self) -> Vec<String> {
        self.addresses
            .iter()
            .map(|url| {
                let host = url.host_str().unwrap_or_default();
                format!("{host}:{}", url.port().unwrap_or(4222))
            })
            .collect()
    }

    /// Whether the connection is to use TLS (`tls://`).
    pub fn tls(&self) -> bool {
        self.addresses.iter().any(|url| url.scheme() == "tls")
    }
}

impl FromStr for NatsServers {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut addresses = Vec::new();
        let mut credentials = None;
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let written = match entry.contains("://") {
                true => entry.to_owned(),
                false => format!("nats://{entry}"),
            };
            // The error is url's own, which never repeats the text it was given.
            let mut url = Url::parse(&written).map_err(|err| format!("not a URL: {err}"))?;
            if !matches!(url.scheme(), "nats" | "tls") {
                return Err("a NATS server URL starts with nats:// or tls://".to_owned());
            }
            if url.host_str().is_none_or(str::is_empty) {
                return Err("a NATS server URL names a host".to_owned());
            }
            if !url.username().is_empty() {
                let user = decoded(url.username());
                credentials = Some(match url.password() {
                    Some(password) => Credentials::UserAndPassword(user, decoded(password)),
                    None => Credentials::Token(user),
                });
                let _ = url.set_username("");
                let _ = url.set_password(None);
            }
            addresses.push(url);
        }
        if addresses.is_empty() {
            return Err("no NATS server given".to_owned());
        }
        Ok(NatsServers {
            addresses,
            credentials,
        })
    }
}

fn decoded(text: &str) -> String {
    url::form_urlencoded::parse(format!("x={text}").as_bytes())
        .next()
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default()
}

impl fmt::Display for NatsServers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let shown: Vec<String> = self
            .addresses
            .iter()
            .map(|url| match &self.credentials {
                Some(_) => url.as_str().replacen("://", "://***@", 1),
                None => url.to_string(),
            })
            .collect();
        f.write_str(&shown.join(","))
    }
}

impl fmt::Debug for NatsServers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "NatsServers({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_taken_out_of_the_urls_and_never_shown() {
        let servers: NatsServers = "nats://app:s%40cret@a.example:4223, tls://b.example"
            .parse()
            .unwrap();
        assert_eq!(
            servers.addresses(),
            ["nats://a.example:4223", "tls://b.example"]
        );
        assert!(
            servers.credentials()
                == Some(&Credentials::UserAndPassword("app".into(), "s@cret".into()))
        );
        assert_eq!(servers.hosts(), ["a.example:4223", "b.example:4222"]);
        assert!(servers.tls());
        let shown = format!("{servers} {servers:?}");
        assert!(!shown.contains("cret") && !shown.contains("app"), "{shown}");
        assert!(shown.contains("nats://***@a.example:4223"), "{shown}");
    }

    #[test]
    fn a_user_alone_is_a_token_and_a_bare_host_is_nats() {
        let servers: NatsServers = "T0KEN@127.0.0.1".parse().unwrap();
        assert_eq!(servers.addresses(), ["nats://127.0.0.1"]);
        assert!(servers.credentials() == Some(&Credentials::Token("T0KEN".into())));
        assert!(!servers.tls());
        for refused in ["", " , ", "http://a.example", "nats://"] {
            assert!(refused.parse::<NatsServers>().is_err(), "{refused:?}");
        }
    }
}

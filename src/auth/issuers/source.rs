//! One entry of `MAESTRO_TRUSTED_JWKS`: `[ISSUER=]SOURCE`, where SOURCE is a JWKS file or an
//! `https://` URL.
//!
//! The setting is split on commas (by clap) before an entry gets here; a URL holding a comma
//! writes it `%2C`. Inside an entry, the first `=` ends the issuer, unless the text before it
//! holds a `?` or a `#`: then that `=` is part of a URL's query or fragment and the entry has no
//! issuer. The rule leans on what an issuer is: OpenID Connect and RFC 8414 issuers are URLs
//! without a query or fragment, so the text before an issuer's `=` never holds either, while an
//! `=` in a JWKS URL without an issuer can only come after the URL's `?`. So:
//!
//! - `https://idp.example.com=https://idp.example.com/jwks?x=1`: issuer, URL with a query;
//! - `https://idp.example.com/jwks?x=1`: a URL, no issuer;
//! - `/etc/idp.jwks`, `https://idp.example.com/.well-known/jwks.json`: no issuer.
//!
//! What it cannot say: an issuer holding `=`, `,`, `?` or `#`, and a file path holding `=`
//! without an issuer (`/etc/a=b.jwks` reads as the issuer `/etc/a` and the file `b.jwks`, which
//! fails at start-up unless it exists; rename the file).

use std::{fmt, path::PathBuf, str::FromStr};

use url::Url;

/// Where a source's keys come from, and which issuer (`iss`) its tokens must name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TrustedSource {
    /// `None`: tokens verified by this source may carry any `iss` (and `aud`).
    pub issuer: Option<String>,
    pub location: Location,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Location {
    /// Read once, at start-up.
    File(PathBuf),
    /// Fetched at start-up, then refreshed (see `super::fetch`).
    Url(Url),
}

impl FromStr for TrustedSource {
    type Err = String;

    fn from_str(entry: &str) -> Result<Self, String> {
        let entry = entry.trim();
        if entry.is_empty() {
            return Err("an empty trusted JWKS source (two commas in a row?)".into());
        }
        let (issuer, source) = match entry.split_once('=') {
            Some((issuer, source)) if !issuer.contains(['?', '#']) => (Some(issuer), source),
            _ => (None, entry),
        };
        if let Some(issuer) = issuer {
            // An issuer left empty (`${IDP_ISSUER}=/etc/idp.jwks` with the variable unset) must
            // not quietly become "any issuer".
            if issuer.trim().is_empty() {
                return Err(format!("{entry}: the issuer before `=` is empty"));
            }
            if issuer.trim() != issuer {
                return Err(format!("{entry}: the issuer starts or ends with a space"));
            }
        }
        if source.is_empty() {
            return Err(format!("{entry}: no JWKS file or URL after the issuer"));
        }
        Ok(TrustedSource {
            issuer: issuer.map(str::to_owned),
            location: location(source).map_err(|problem| format!("{entry}: {problem}"))?,
        })
    }
}

fn location(source: &str) -> Result<Location, String> {
    let Some((scheme, _)) = source.split_once("://") else {
        return Ok(Location::File(PathBuf::from(source)));
    };
    if !scheme.eq_ignore_ascii_case("https") {
        return Err(
            "a JWKS URL must be https:// (the keys decide who may call this server)".into(),
        );
    }
    let url = Url::parse(source).map_err(|err| format!("not a URL ({err})"))?;
    if url.host().is_none() {
        return Err("the URL names no host".into());
    }
    // URLs are logged (start-up, failed refreshes); a secret in one would end up in the logs.
    if !url.username().is_empty() || url.password().is_some() {
        return Err("the URL must not carry credentials".into());
    }
    Ok(Location::Url(url))
}

impl fmt::Display for TrustedSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(issuer) = &self.issuer {
            write!(f, "{issuer}=")?;
        }
        write!(f, "{}", self.location)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File(path) => write!(f, "{}", path.display()),
            Location::Url(url) => write!(f, "{url}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(entry: &str) -> TrustedSource {
        entry.parse().unwrap_or_else(|err| panic!("{entry}: {err}"))
    }

    fn url(text: &str) -> Location {
        Location::Url(Url::parse(text).unwrap())
    }

    #[test]
    fn an_issuer_ends_at_the_first_equals_sign_outside_a_query() {
        let cases = [
            (
                "https://idp.example.com=https://idp.example.com/jwks?x=1",
                Some("https://idp.example.com"),
                url("https://idp.example.com/jwks?x=1"),
            ),
            (
                "https://idp.example.com=/etc/idp.jwks",
                Some("https://idp.example.com"),
                Location::File("/etc/idp.jwks".into()),
            ),
            (
                "https://login.example.com/tenant/v2.0=https://login.example.com/keys?a=b&c==d",
                Some("https://login.example.com/tenant/v2.0"),
                url("https://login.example.com/keys?a=b&c==d"),
            ),
            (
                "internal-idp=idp.jwks",
                Some("internal-idp"),
                Location::File("idp.jwks".into()),
            ),
            (
                "/etc/idp.jwks",
                None,
                Location::File("/etc/idp.jwks".into()),
            ),
            (
                "https://idp.example.com/.well-known/jwks.json",
                None,
                url("https://idp.example.com/.well-known/jwks.json"),
            ),
            (
                "https://idp.example.com/jwks?x=1&y=2",
                None,
                url("https://idp.example.com/jwks?x=1&y=2"),
            ),
            (
                "  https://idp.example.com/jwks#k=v ",
                None,
                url("https://idp.example.com/jwks#k=v"),
            ),
            (
                "HTTPS://IDP.example.com:8443/jwks",
                None,
                url("https://idp.example.com:8443/jwks"),
            ),
        ];
        for (entry, issuer, location) in cases {
            let source = parse(entry);
            assert_eq!(source.issuer.as_deref(), issuer, "{entry}");
            assert_eq!(source.location, location, "{entry}");
        }
    }

    #[test]
    fn unsafe_or_meaningless_entries_are_refused_with_the_entry_named() {
        for (entry, why) in [
            ("", "empty"),
            ("   ", "empty"),
            ("=/etc/idp.jwks", "issuer before `=` is empty"),
            (
                " =https://idp.example.com/jwks",
                "issuer before `=` is empty",
            ),
            ("https://idp.example.com=", "no JWKS file or URL"),
            ("http://idp.example.com/jwks", "must be https://"),
            ("iss=http://127.0.0.1:9000/jwks", "must be https://"),
            ("file:///etc/idp.jwks", "must be https://"),
            ("https://user:secret@idp.example.com/jwks", "credentials"),
            ("https://", "not a URL"),
        ] {
            let err = entry.parse::<TrustedSource>().unwrap_err();
            assert!(err.contains(why), "{entry:?}: {err}");
            if !entry.trim().is_empty() {
                assert!(err.contains(entry.trim()), "{entry:?}: {err}");
            }
        }
    }

    #[test]
    fn a_source_is_shown_as_it_was_written() {
        for entry in [
            "https://idp.example.com=https://idp.example.com/jwks?x=1",
            "/etc/idp.jwks",
        ] {
            assert_eq!(parse(entry).to_string(), entry);
        }
    }
}

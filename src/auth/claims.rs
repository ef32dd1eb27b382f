//! The claims maestro reads from and writes into tokens (modelled on the platform's JWTs).

use serde::{Deserialize, Deserializer, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TokenKind {
    Company,
    User,
    App,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    #[serde(rename = "concur.type")]
    pub kind: TokenKind,
    #[serde(rename = "concur.scopes", default, deserialize_with = "scopes")]
    pub scopes: Vec<String>,
    #[serde(
        rename = "concur.appId",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub app_id: Option<String>,
    #[serde(
        rename = "concur.company",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub company: Option<String>,
    #[serde(
        rename = "concur.roles",
        default,
        skip_serializing_if = "Vec::is_empty"
    )]
    pub roles: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The grant a token from the token endpoint descends from (its refresh-token chain): when
    /// the chain is revoked, so is every access token that names it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

/// Scopes come as an array, or (as OAuth2 writes them) as one space-separated string.
fn scopes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scopes {
        List(Vec<String>),
        Joined(String),
    }
    Ok(match Scopes::deserialize(deserializer)? {
        Scopes::List(list) => list,
        Scopes::Joined(joined) => joined.split_whitespace().map(str::to_owned).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_are_read_from_an_array_or_a_string() {
        let from_array: Claims = serde_json::from_value(serde_json::json!({
            "sub": "c", "concur.type": "company", "exp": 1,
            "concur.scopes": ["a", "b"]
        }))
        .unwrap();
        let from_string: Claims = serde_json::from_value(serde_json::json!({
            "sub": "c", "concur.type": "company", "exp": 1,
            "concur.scopes": "a  b"
        }))
        .unwrap();
        assert_eq!(from_array.scopes, vec!["a", "b"]);
        assert_eq!(from_string.scopes, from_array.scopes);
    }
}

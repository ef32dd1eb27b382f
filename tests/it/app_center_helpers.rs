//! What the App Center tests share: credentials, a company administrator, a connection, and
//! requests to the token endpoint.

use maestro::{
    apps::Rotation,
    auth::{TokenKind, signing::TokenRequest},
};
use reqwest::Response;
use serde_json::{Value, json};

use crate::helpers::*;

/// The administrator who connects apps in the tests.
pub const ADMIN_USER: &str = "5e1c1b4a-93a4-4c4e-9d43-1f1d0b7e0a11";

impl TestApp {
    /// A partner's client secret, made (or, with `rotation`, made anew).
    pub async fn partner_secret(&self, partner: &str, rotation: Option<Rotation>) -> String {
        self.app
            .clients
            .partner_credentials(partner, rotation)
            .await
            .unwrap()
            .client_secret
    }

    /// A user token of `company` with an administrative role.
    pub fn admin_token(&self, company: &str) -> String {
        self.token(TokenRequest {
            kind: TokenKind::User,
            subject: ADMIN_USER.into(),
            app_id: None,
            scopes: vec![],
            company: Some(company.into()),
            roles: vec!["CompanyAdministrator".into()],
            ttl_secs: 600,
        })
    }

    pub async fn connect_app(&self, admin: &str, app_id: &str) -> Response {
        self.client
            .post(self.url("/app-mgmt/v0/connections"))
            .bearer_auth(admin)
            .json(&json!({ "appId": app_id }))
            .send()
            .await
            .unwrap()
    }

    /// Connects `app_id` to `company` and returns the request token.
    pub async fn request_token(&self, company: &str, app_id: &str) -> String {
        let response = self.connect_app(&self.admin_token(company), app_id).await;
        assert_eq!(response.status(), 201);
        let connected: Value = response.json().await.unwrap();
        connected["requestToken"].as_str().unwrap().to_owned()
    }

    /// POSTs the form to the token endpoint, the client authenticated by HTTP Basic.
    pub async fn token_request(
        &self,
        basic: Option<(&str, &str)>,
        form: &[(&str, &str)],
    ) -> Response {
        let mut request = self
            .client
            .post(self.url("/oauth2/v0/token"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form_body(form));
        if let Some((id, secret)) = basic {
            request = request.basic_auth(id, Some(secret));
        }
        request.send().await.unwrap()
    }

    /// The password grant for a request token; asserts a 200 and returns the answer.
    pub async fn redeem(&self, secret: &str, company: &str, request_token: &str) -> Value {
        let response = self
            .token_request(
                Some((GROUNDSPAN, secret)),
                &[
                    ("grant_type", "password"),
                    ("credtype", "authtoken"),
                    ("username", company),
                    ("password", request_token),
                ],
            )
            .await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        response.json().await.unwrap()
    }

    /// The refresh grant; the raw answer.
    pub async fn refresh(&self, secret: &str, refresh_token: &str) -> Response {
        self.token_request(
            Some((GROUNDSPAN, secret)),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
        )
        .await
    }
}

/// `application/x-www-form-urlencoded` of the pairs, in order.
pub fn form_body(form: &[(&str, &str)]) -> String {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish()
}

/// Asserts an OAuth error answer and returns its body.
pub async fn expect_oauth_error(response: Response, status: u16, error: &str) -> Value {
    assert_eq!(response.status(), status);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{body}");
    assert_eq!(body["code"], status, "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .is_some_and(|d| !d.is_empty())
    );
    body
}

/// The status of a POST of the seed alert with `token`.
pub async fn alert_status(t: &TestApp, token: &str) -> u16 {
    t.post_alert(token, &post_seed()).await.status().as_u16()
}

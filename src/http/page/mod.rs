//! The inbox page (`GET /inbox`): the user's rendered alert cards with an unread badge, mark
//! read and dismiss, kept current by the live stream. Signed in through a link from `maestro
//! inbox open-url` (`GET /inbox/login?token=…`), which leaves an `HttpOnly`, `SameSite=Strict`
//! session cookie (`Secure` when the public URL is https).
//!
//! The page is rendered here, from templates compiled into the binary, with HTML escaping on;
//! the cards are the partner templates' checked output. Every page carries a Content Security
//! Policy that allows scripts, styles and fetches from this server only and images over https,
//! so even a card that got past the checks could run nothing.

use std::{sync::Arc, sync::LazyLock};

use axum::{
    extract::{RawQuery, State},
    http::{HeaderName, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use minijinja::{AutoEscape, Environment, Value, context};
use time::{OffsetDateTime, format_description::well_known::Rfc3339, macros::format_description};

use super::extract::{InboxUser, cookie, marked_by_page};
use crate::{
    App,
    error::Error,
    inbox::{
        login::{self, COOKIE},
        service::MAX_PAGE,
    },
    store::InboxItem,
};

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src https:; \
     connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

static TEMPLATES: LazyLock<Environment<'static>> = LazyLock::new(|| {
    let mut env = Environment::new();
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    for (name, source) in [
        ("inbox.html", include_str!("inbox.html.jinja")),
        ("cards.html", include_str!("cards.html.jinja")),
        ("notice.html", include_str!("notice.html.jinja")),
    ] {
        env.add_template(name, source)
            .expect("the page templates compile");
    }
    env
});

/// `GET /inbox`.
pub async fn inbox(State(app): State<Arc<App>>, user: Result<InboxUser, Error>) -> Response {
    let Ok(InboxUser(owner)) = user else {
        let mut response = notice(
            StatusCode::UNAUTHORIZED,
            "Sign in to your inbox",
            "This page needs a sign-in link, and yours is missing or has run out.",
            false,
        );
        // A stale cookie is no use to anyone.
        if let Ok(value) = HeaderValue::from_str(&clear_cookie(&app)) {
            response.headers_mut().insert(header::SET_COOKIE, value);
        }
        return response;
    };
    let result = async {
        // Read before the cards: a stream resumed from here tells whatever the cards miss.
        let position = app.inbox.position();
        let (cards, unread_count) = cards_html(&app, &owner).await?;
        let unread_label = unread_label(unread_count);
        let document_title = if unread_count > 0 {
            format!("Inbox ({unread_count} unread) – maestro")
        } else {
            "Inbox – maestro".to_owned()
        };
        render(
            "inbox.html",
            context! {
                cards => Value::from_safe_string(cards), unread_count, unread_label,
                document_title, position,
            },
        )
    }
    .await;
    match result {
        Ok(html) => html_response(StatusCode::OK, html),
        Err(err) => err.into_response(),
    }
}

/// `GET /inbox/cards`: the list alone, for the page to swap in; `X-Unread-Count` carries the
/// badge's number.
pub async fn cards(
    State(app): State<Arc<App>>,
    InboxUser(owner): InboxUser,
) -> Result<Response, Error> {
    let (cards, unread_count) = cards_html(&app, &owner).await?;
    let mut response = html_response(StatusCode::OK, cards);
    response.headers_mut().insert(
        HeaderName::from_static("x-unread-count"),
        HeaderValue::from(unread_count),
    );
    Ok(response)
}

/// `GET /inbox/login?token=…`: exchanges a sign-in link for the session cookie, then moves on
/// to `/inbox` from a page of this site, so that the `SameSite=Strict` cookie goes along even
/// when the link was opened from another application.
pub async fn login(State(app): State<Arc<App>>, RawQuery(query): RawQuery) -> Response {
    let token = url::form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value.into_owned())
        .unwrap_or_default();
    let session = login::exchange(
        &app.store,
        &app.keyring,
        &token,
        app.settings.inbox_session_ttl,
        app.clock.now(),
    )
    .await;
    match session {
        Ok(session) => {
            let mut response = notice(
                StatusCode::OK,
                "Signed in",
                "You are signed in to your inbox.",
                true,
            );
            let cookie = format!(
                "{COOKIE}={}; Path=/; Max-Age={}; HttpOnly; SameSite=Strict{}",
                session.token,
                session.max_age.as_secs(),
                secure_attribute(&app)
            );
            if let Ok(value) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, value);
            }
            response
        }
        Err(_) => notice(
            StatusCode::UNAUTHORIZED,
            "This sign-in link does not work",
            "It is not a sign-in link of this server, it was used already (a link works once), \
             or it has run out (links last minutes).",
            false,
        ),
    }
}

/// `POST /inbox/logout`: ends the session on the server (every instance refuses its cookie
/// from then on) and clears the cookie. Like every change made with the cookie, it needs the
/// page's `X-Requested-With` header, so another site cannot sign the user out.
pub async fn logout(State(app): State<Arc<App>>, request: axum::extract::Request) -> Response {
    let (parts, _) = request.into_parts();
    if !marked_by_page(&parts) {
        return Error::unauthenticated(
            "Signing out needs the X-Requested-With: maestro-inbox header (the page sends it).",
        )
        .into_response();
    }
    if let Some(value) = cookie(&parts, COOKIE)
        && let Err(err) = login::sign_out(&app.store, value, app.clock.now()).await
    {
        return err.into_response();
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&clear_cookie(&app)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", include_str!("inbox.js"))
}

pub async fn styles() -> Response {
    asset("text/css; charset=utf-8", include_str!("inbox.css"))
}

async fn cards_html(app: &App, owner: &crate::store::InboxOwner) -> Result<(String, i64), Error> {
    let limit = MAX_PAGE.to_string();
    let page = app.inbox.page(owner, Some(&limit), None, None).await?;
    let items: Vec<Value> = page.items.iter().map(card).collect();
    let html = render(
        "cards.html",
        context! { items, more => page.next_cursor.is_some() },
    )?;
    Ok((html, page.unread_count))
}

fn card(item: &InboxItem) -> Value {
    context! {
        alert_id => &item.alert_id,
        title => &item.title,
        topic => &item.topic,
        read => item.read,
        revision => item.revision,
        expires_at => item.expires_at.format(&Rfc3339).unwrap_or_default(),
        expires_display => display_time(item.expires_at),
        // Rendered by the partner's template when the alert was stored, and checked then.
        html => Value::from_safe_string(item.html.clone()),
    }
}

fn display_time(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(format_description!(
            "[weekday repr:short] [day padding:none] [month repr:short] [year], [hour]:[minute] UTC"
        ))
        .unwrap_or_default()
}

fn unread_label(count: i64) -> String {
    if count == 1 {
        "1 unread alert".to_owned()
    } else {
        format!("{count} unread alerts")
    }
}

fn render(name: &str, context: Value) -> Result<String, Error> {
    TEMPLATES
        .get_template(name)
        .and_then(|template| template.render(context))
        .map_err(|err| Error::Internal(anyhow::anyhow!("page template {name}: {err:#}")))
}

/// A short page: a heading, a sentence, and either the way on to the inbox (`signed_in`) or
/// how to get a sign-in link.
fn notice(status: StatusCode, heading: &str, message: &str, signed_in: bool) -> Response {
    match render("notice.html", context! { heading, message, signed_in }) {
        Ok(html) => html_response(status, html),
        Err(err) => err.into_response(),
    }
}

fn html_response(status: StatusCode, html: String) -> Response {
    let mut response = (status, html).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn secure_attribute(app: &App) -> &'static str {
    if app.settings.public_url.starts_with("https://") {
        "; Secure"
    } else {
        ""
    }
}

fn clear_cookie(app: &App) -> String {
    format!(
        "{COOKIE}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict{}",
        secure_attribute(app)
    )
}

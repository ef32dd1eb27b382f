//! The filters templates may use besides minijinja's built-in ones.

use minijinja::{AutoEscape, State, Value};
use time::{
    Date, OffsetDateTime, format_description::well_known::Rfc3339, macros::format_description,
};

/// A link or image address: the URL itself when it is an absolute `http(s)` URL with a host
/// and no credentials, else empty. In the card it is escaped for a quoted attribute and
/// marked safe, so that the checked markup shows the address as written (not with every `/`
/// as an entity). A plain check rather than a URL parser: it runs for every link of every
/// alert, and what it lets through is only ever shown inside quotes.
pub(super) fn url(state: &State<'_, '_>, value: &Value) -> Value {
    match (
        value.as_str().filter(|text| is_http_url(text)),
        state.auto_escape(),
    ) {
        (None, _) => Value::from(""),
        (Some(url), AutoEscape::None) => Value::from(url),
        (Some(url), _) => Value::from_safe_string(escape_attribute(url)),
    }
}

fn is_http_url(text: &str) -> bool {
    let rest = match text.get(..8) {
        Some(head) if head.eq_ignore_ascii_case("https://") => &text[8..],
        _ => match text.get(..7) {
            Some(head) if head.eq_ignore_ascii_case("http://") => &text[7..],
            _ => return false,
        },
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    !authority.is_empty()
        && !authority.contains('@')
        && !text.chars().any(|c| c.is_control() || c.is_whitespace())
}

fn escape_attribute(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// `2025-08-01T10:00:00Z` as `Fri 1 Aug 2025, 10:00 UTC`; empty stays empty, and anything
/// else is shown as sent.
pub(super) fn datetime(value: &Value) -> String {
    let text = value.as_str().unwrap_or_default();
    match OffsetDateTime::parse(text, &Rfc3339) {
        Ok(at) => at
            .to_offset(time::UtcOffset::UTC)
            .format(format_description!(
                "[weekday repr:short] [day padding:none] [month repr:short] [year], [hour]:[minute] UTC"
            ))
            .unwrap_or_else(|_| text.to_owned()),
        Err(_) => text.to_owned(),
    }
}

/// `2025-08-01` as `Fri 1 Aug 2025`; anything else as sent.
pub(super) fn date(value: &Value) -> String {
    let text = value.as_str().unwrap_or_default();
    match Date::parse(text, format_description!("[year]-[month]-[day]")) {
        Ok(date) => date
            .format(format_description!(
                "[weekday repr:short] [day padding:none] [month repr:short] [year]"
            ))
            .unwrap_or_else(|_| text.to_owned()),
        Err(_) => text.to_owned(),
    }
}

/// A price `{amount, currency}` as `450.00 USD`; `{}` (no price) as empty.
pub(super) fn money(price: &Value) -> String {
    let amount = price.get_attr("amount").ok().filter(|a| a.is_number());
    let currency = price.get_attr("currency").ok();
    match (amount, currency.as_ref().and_then(Value::as_str)) {
        (Some(amount), Some(currency)) => {
            let amount = f64::try_from(amount).unwrap_or_default();
            format!("{amount:.2} {currency}")
        }
        _ => String::new(),
    }
}

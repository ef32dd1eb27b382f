//! Rendering an alert through its template: a title, an HTML card and a plain-text fallback.
//!
//! The engine is minijinja, set up as a sandbox for templates that an operator imports and data
//! that a partner sends:
//! - HTML auto-escaping for `card.html.jinja`; the title and the text are plain text, escaped
//!   wherever they are later shown;
//! - strict undefined: a misspelt field is an error, not an empty string (`is defined` and
//!   `default` serve optional fields);
//! - a step budget (fuel) per render, and a cap on the size of what comes out;
//! - no loader: nothing is read from disk, and the engine is built without `include`,
//!   `extends`, `import` and macros;
//! - the markup produced is checked ([`super::markup`]): links and images only `http(s)`, links
//!   open in a new tab with `rel="noopener noreferrer"`, images carry `alt`, no scripts.
//!
//! Each template version is compiled once (by the catalogue), then rendered per alert.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use sha2::{Digest, Sha256};

use minijinja::{
    AutoEscape, Environment, ErrorKind, UndefinedBehavior, Value,
    value::{Enumerator, Object},
};
use time::{OffsetDateTime, format_description::well_known::Rfc3339};

use super::markup;
use crate::store::Rendering;

pub const TITLE: &str = "title.jinja";
pub const CARD: &str = "card.html.jinja";
pub const TEXT: &str = "text.jinja";

/// Steps one render may take (minijinja's "fuel"): enough for the Groundspan card of fifty
/// packages of fifty variants (the schema's maximum), while a loop gone wild stops within
/// milliseconds.
const FUEL: u64 = 2_000_000;
/// What a template may produce at most; a larger card is refused (400), not shown.
const MAX_HTML_BYTES: usize = 512 * 1024;
const MAX_TEXT_BYTES: usize = 64 * 1024;
const MAX_TITLE_CHARS: usize = 200;

/// What the sources of a template that lacks one of them render.
const DEFAULT_TITLE: &str = "{{ alert.title or alert.templateId }}";
const DEFAULT_CARD: &str = "<article class=\"card\"><p>{{ title }}</p></article>";
const DEFAULT_TEXT: &str = "{{ title }}";

/// The common fields of an alert, as templates see them under `alert`.
#[derive(Clone, Copy, Debug)]
pub struct AlertFields<'a> {
    pub ext_ref: &'a str,
    pub template_id: &'a str,
    pub msg_type: &'a str,
    pub topic: Option<&'a str>,
    pub title: Option<&'a str>,
    pub created_at: &'a str,
    pub expires_at: OffsetDateTime,
}

/// Why an alert could not be rendered; said to the partner in a 400.
#[derive(Debug, thiserror::Error)]
#[error("{template}: {reason}")]
pub struct RenderError {
    pub template: &'static str,
    pub reason: String,
}

/// Renderings kept per template version. Partners fan one offer out to many travellers at once
/// (SPEC: bursts), and those alerts differ only in fields templates rarely show; the same
/// inputs render the same output, so it is rendered once.
const CACHED_RENDERINGS: usize = 256;

/// A template version's sources, compiled.
pub struct Renderer {
    env: Environment<'static>,
    /// The `alert` fields the sources read; `None` when they use `alert` as a whole.
    alert_fields_read: Option<Vec<String>>,
    /// Recent renderings by a digest of exactly what the templates read.
    /// Shared, not copied: a hit hands out the same rendering to every alert of a fan-out.
    cache: Mutex<HashMap<[u8; 32], Arc<Rendering>>>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Renderer")
    }
}

impl Renderer {
    /// Compiles a template's render sources (by file name); a missing one gets a plain default.
    pub fn compile(sources: &BTreeMap<String, String>) -> anyhow::Result<Renderer> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(FUEL));
        env.set_auto_escape_callback(|name| {
            if name == CARD {
                AutoEscape::Html
            } else {
                AutoEscape::None
            }
        });
        env.add_filter("url", filters::url);
        env.add_filter("datetime", filters::datetime);
        env.add_filter("date", filters::date);
        env.add_filter("money", filters::money);
        for (name, default) in [
            (TITLE, DEFAULT_TITLE),
            (CARD, DEFAULT_CARD),
            (TEXT, DEFAULT_TEXT),
        ] {
            let source = sources.get(name).map_or(default, String::as_str);
            env.add_template_owned(name, source.to_owned())
                .map_err(|err| anyhow::anyhow!("{name}: {}", describe(&err)))?;
        }
        let alert_fields_read = alert_fields_read(&env)?;
        Ok(Renderer {
            env,
            alert_fields_read,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Like [`Renderer::render`], answering from the cache when the templates would see the
    /// same values again.
    /// `metadata_digest` is the SHA-256 of the canonical JSON of `metadata` (made once per checked
    /// metadata), which the cache key includes.
    pub fn render_cached(
        &self,
        alert: &AlertFields<'_>,
        metadata: &serde_json::Value,
        metadata_digest: &[u8; 32],
    ) -> Result<Arc<Rendering>, RenderError> {
        let key = self.inputs_digest(alert, metadata_digest);
        if let Some(hit) = self.cache.lock().expect("not poisoned").get(&key) {
            return Ok(Arc::clone(hit));
        }
        let rendering = Arc::new(self.render(alert, metadata)?);
        let mut cache = self.cache.lock().expect("not poisoned");
        if cache.len() >= CACHED_RENDERINGS {
            // Bursts repeat one offer back to back; a cleared cache refills at once.
            cache.clear();
        }
        cache.insert(key, Arc::clone(&rendering));
        Ok(rendering)
    }

    /// SHA-256 of every input the templates read: the `alert` fields they name (all of them
    /// when they use `alert` whole) and the metadata.
    fn inputs_digest(&self, alert: &AlertFields<'_>, metadata_digest: &[u8; 32]) -> [u8; 32] {
        let expires_at = alert.expires_at.format(&Rfc3339).unwrap_or_default();
        let fields = [
            ("extRef", Some(alert.ext_ref)),
            ("templateId", Some(alert.template_id)),
            ("msgType", Some(alert.msg_type)),
            ("topic", alert.topic),
            ("title", alert.title),
            ("createdAt", Some(alert.created_at)),
            ("expiresAt", Some(expires_at.as_str())),
        ];
        let mut hasher = Sha256::new();
        for (name, value) in fields {
            let read = self
                .alert_fields_read
                .as_ref()
                .is_none_or(|read| read.iter().any(|r| r == name));
            if read {
                hasher.update(name.as_bytes());
                match value {
                    // Length-prefixed, so that no two different inputs hash the same bytes.
                    Some(value) => {
                        hasher.update((value.len() as u64 + 1).to_le_bytes());
                        hasher.update(value.as_bytes());
                    }
                    None => hasher.update(0u64.to_le_bytes()),
                }
            }
        }
        hasher.update(b"metadata");
        hasher.update(metadata_digest);
        hasher.finalize().into()
    }

    /// Renders the alert: its title first (the card and the text may show it as `title`).
    pub fn render(
        &self,
        alert: &AlertFields<'_>,
        metadata: &serde_json::Value,
    ) -> Result<Rendering, RenderError> {
        let alert_value = alert_value(alert);
        let metadata = json_value(metadata);
        let context = Value::from_pairs([
            ("alert", alert_value.clone()),
            ("metadata", metadata.clone()),
        ]);
        let raw_title = self.run(TITLE, &context)?;
        let title = match tidy_title(&raw_title) {
            title if title.is_empty() => alert
                .title
                .filter(|t| !t.trim().is_empty())
                .unwrap_or(alert.template_id)
                .to_owned(),
            title => title,
        };
        let context = Value::from_pairs([
            ("alert", alert_value),
            ("metadata", metadata),
            ("title", Value::from(title.as_str())),
        ]);
        let html = self.run(CARD, &context)?;
        if html.len() > MAX_HTML_BYTES {
            return Err(too_large(CARD, MAX_HTML_BYTES));
        }
        markup::check(&html).map_err(|reason| RenderError {
            template: CARD,
            reason,
        })?;
        let text = self.run(TEXT, &context)?;
        if text.len() > MAX_TEXT_BYTES {
            return Err(too_large(TEXT, MAX_TEXT_BYTES));
        }
        Ok(Rendering {
            title,
            html: html.trim().to_owned(),
            text: text.trim().to_owned(),
        })
    }

    fn run(&self, name: &'static str, context: &Value) -> Result<String, RenderError> {
        let template = self.env.get_template(name).map_err(|err| RenderError {
            template: name,
            reason: describe(&err),
        })?;
        template.render(context).map_err(|err| RenderError {
            template: name,
            reason: describe(&err),
        })
    }
}

/// Which `alert` fields the sources read, by static analysis: `None` when any of them uses
/// `alert` other than through a plain attribute (`alert.title`).
fn alert_fields_read(env: &Environment<'static>) -> anyhow::Result<Option<Vec<String>>> {
    let mut read = Vec::new();
    for name in [TITLE, CARD, TEXT] {
        for variable in env.get_template(name)?.undeclared_variables(true) {
            if variable == "alert" {
                return Ok(None);
            }
            if let Some(field) = variable.strip_prefix("alert.") {
                let field = field.split('.').next().unwrap_or(field).to_owned();
                if !read.contains(&field) {
                    read.push(field);
                }
            }
        }
    }
    Ok(Some(read))
}

fn too_large(template: &'static str, limit: usize) -> RenderError {
    RenderError {
        template,
        reason: format!("the rendering is larger than {limit} bytes"),
    }
}

/// One line for a human: what went wrong, and where in the template.
fn describe(err: &minijinja::Error) -> String {
    let what = match err.kind() {
        ErrorKind::OutOfFuel => "the template used up its step budget".to_owned(),
        ErrorKind::UndefinedError => format!(
            "undefined value{}",
            err.detail().map(|d| format!(" ({d})")).unwrap_or_default()
        ),
        _ => err
            .detail()
            .map_or_else(|| err.kind().to_string(), str::to_owned),
    };
    match err.line() {
        Some(line) => format!("{what} (line {line})"),
        None => what,
    }
}

/// A title is one line: whitespace collapsed, at most [`MAX_TITLE_CHARS`].
fn tidy_title(raw: &str) -> String {
    let mut title = raw.split_whitespace().collect::<Vec<_>>().join(" ");
    if let Some((cut, _)) = title.char_indices().nth(MAX_TITLE_CHARS) {
        title.truncate(cut);
        title.push('…');
    }
    title
}

fn alert_value(alert: &AlertFields<'_>) -> Value {
    Value::from_pairs([
        ("extRef", Value::from(alert.ext_ref)),
        ("templateId", Value::from(alert.template_id)),
        ("msgType", Value::from(alert.msg_type)),
        ("topic", Value::from(alert.topic)),
        ("title", Value::from(alert.title)),
        ("createdAt", Value::from(alert.created_at)),
        (
            "expiresAt",
            Value::from(alert.expires_at.format(&Rfc3339).unwrap_or_default()),
        ),
    ])
}

/// JSON as template values: objects become [`JsonObject`]s, `null` becomes `none`.
fn json_value(json: &serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::from(()),
        serde_json::Value::Bool(b) => Value::from(*b),
        serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
            (Some(i), _) => Value::from(i),
            (None, Some(f)) => Value::from(f),
            (None, None) => Value::from(n.to_string()),
        },
        serde_json::Value::String(s) => Value::from(s.as_str()),
        serde_json::Value::Array(items) => items.iter().map(json_value).collect(),
        serde_json::Value::Object(map) => Value::from_object(JsonObject(
            map.iter()
                .map(|(k, v)| (k.clone(), json_value(v)))
                .collect(),
        )),
    }
}

/// A JSON object as a template sees it. Partner objects are small (a dozen keys at most), so a
/// list searched by name beats minijinja's general map, which sorts its keys on construction
/// and compares them as values on every lookup — both per alert, on the ingestion path.
#[derive(Debug)]
struct JsonObject(Vec<(String, Value)>);

impl Object for JsonObject {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.get_value_by_str(key.as_str()?)
    }

    fn get_value_by_str(self: &Arc<Self>, key: &str) -> Option<Value> {
        self.0
            .iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.clone())
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        let keys: Vec<Value> = self
            .0
            .iter()
            .map(|(name, _)| Value::from(name.as_str()))
            .collect();
        Enumerator::Iter(Box::new(keys.into_iter()))
    }
}

/// The filters templates may use besides minijinja's built-in ones.
mod filters {
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
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use time::macros::datetime;

    use super::*;

    fn fields() -> AlertFields<'static> {
        AlertFields {
            ext_ref: "r1",
            template_id: "T",
            msg_type: "",
            topic: None,
            title: None,
            created_at: "2030-01-01T00:00:00Z",
            expires_at: datetime!(2030-02-01 00:00 UTC),
        }
    }

    /// `render_cached` with the digest of the canonical JSON of `metadata`, as the alert service
    /// passes it.
    fn cached(
        renderer: &Renderer,
        alert: &AlertFields<'_>,
        metadata: &serde_json::Value,
    ) -> Result<Arc<Rendering>, RenderError> {
        let digest = Sha256::digest(metadata.to_string().as_bytes()).into();
        renderer.render_cached(alert, metadata, &digest)
    }

    fn renderer(card: &str) -> Renderer {
        Renderer::compile(&BTreeMap::from([
            (TITLE.to_owned(), "Hello {{ metadata.name }}".to_owned()),
            (CARD.to_owned(), card.to_owned()),
        ]))
        .unwrap()
    }

    #[test]
    fn cached_renderings_depend_on_exactly_what_the_templates_read() {
        let reads_title = renderer("<p>{{ alert.title }} {{ metadata.name }}</p>");
        assert_eq!(
            reads_title.alert_fields_read,
            Some(vec!["title".to_owned()])
        );
        let metadata = json!({"name": "Ada"});
        let first = cached(&reads_title, &fields(), &metadata).unwrap();
        // Another extRef (not read): the same rendering, from the cache.
        let other_ref = AlertFields {
            ext_ref: "r2",
            ..fields()
        };
        assert_eq!(cached(&reads_title, &other_ref, &metadata).unwrap(), first);
        assert_eq!(reads_title.cache.lock().unwrap().len(), 1);
        // Another title (read) or other metadata: rendered anew.
        let titled = AlertFields {
            title: Some("Offer"),
            ..fields()
        };
        assert_eq!(
            cached(&reads_title, &titled, &metadata).unwrap().html,
            "<p>Offer Ada</p>"
        );
        assert_eq!(
            cached(&reads_title, &fields(), &json!({"name": "Bob"}))
                .unwrap()
                .html,
            "<p>None Bob</p>"
        );
        assert_eq!(reads_title.cache.lock().unwrap().len(), 3);
    }

    #[test]
    fn a_template_using_the_whole_alert_keys_its_cache_on_every_field() {
        let whole = renderer("<p>{% for k in alert %}{{ k }}{% endfor %}</p>");
        assert_eq!(whole.alert_fields_read, None);
        let metadata = json!({"name": "Ada"});
        cached(&whole, &fields(), &metadata).unwrap();
        let other_ref = AlertFields {
            ext_ref: "r2",
            ..fields()
        };
        cached(&whole, &other_ref, &metadata).unwrap();
        assert_eq!(whole.cache.lock().unwrap().len(), 2);
    }

    #[test]
    fn the_card_escapes_and_the_title_does_not() {
        let rendered = renderer("<p>{{ metadata.name }}</p>")
            .render(&fields(), &json!({"name": "<b>&</b>"}))
            .unwrap();
        assert_eq!(rendered.title, "Hello <b>&</b>");
        assert_eq!(rendered.html, "<p>&lt;b&gt;&amp;&lt;&#x2f;b&gt;</p>");
        assert_eq!(
            rendered.text, "Hello <b>&</b>",
            "the default text is the title"
        );
    }

    #[test]
    fn undefined_fields_are_errors_unless_tested() {
        let err = renderer("<p>{{ metadata.nmae }}</p>")
            .render(&fields(), &json!({"name": "x"}))
            .unwrap_err();
        assert_eq!(err.template, CARD);
        assert!(err.reason.contains("undefined"), "{err}");
        let ok = renderer(
            "<p>{% if metadata.nmae is defined %}x{% endif %}{{ metadata.nmae|default('-') }}</p>",
        )
        .render(&fields(), &json!({"name": "x"}))
        .unwrap();
        assert_eq!(ok.html, "<p>-</p>");
    }

    #[test]
    fn a_runaway_template_runs_out_of_steps() {
        let err = renderer(
            "{% for i in range(100000) %}{% for j in range(100000) %}.{% endfor %}{% endfor %}",
        )
        .render(&fields(), &json!({"name": "x"}))
        .unwrap_err();
        assert!(err.reason.contains("step budget"), "{err}");
    }

    #[test]
    fn there_is_no_way_to_read_files() {
        let err = Renderer::compile(&BTreeMap::from([(
            CARD.to_owned(),
            "{% include '/etc/passwd' %}".to_owned(),
        )]));
        assert!(err.is_err(), "include is not part of the language here");
    }

    #[test]
    fn links_pass_through_the_url_filter_only_when_http() {
        let card =
            r#"<a href="{{ metadata.href|url }}" target="_blank" rel="noopener noreferrer">go</a>"#;
        let html = |href: &str| {
            renderer(card)
                .render(&fields(), &json!({"name": "x", "href": href}))
                .map(|r| r.html)
        };
        assert_eq!(
            html("https://a.example/x?a=1&b='2'\"").unwrap(),
            r#"<a href="https://a.example/x?a=1&amp;b=&#39;2&#39;&quot;" target="_blank" rel="noopener noreferrer">go</a>"#
        );
        for refused in [
            "javascript:alert(1)",
            "JAVASCRIPT:alert(1)",
            " https://a.example/",
            "https://user:pw@a.example/",
            "https:///path",
            "https://a.example/\nx",
            "//a.example/",
            "data:text/html,x",
        ] {
            assert_eq!(
                html(refused).unwrap(),
                r#"<a href="" target="_blank" rel="noopener noreferrer">go</a>"#,
                "{refused}"
            );
        }
        assert!(
            html("HTTP://A.EXAMPLE")
                .unwrap()
                .contains("href=\"HTTP://A.EXAMPLE\"")
        );
        let unfiltered =
            r#"<a href="{{ metadata.href }}" target="_blank" rel="noopener noreferrer">go</a>"#;
        let err = renderer(unfiltered)
            .render(
                &fields(),
                &json!({"name": "x", "href": "https://a.example/"}),
            )
            .unwrap_err();
        assert!(err.reason.contains("url"), "{err}");
    }

    #[test]
    fn filters_format_dates_and_prices() {
        let card = "<p>{{ metadata.at|datetime }}|{{ metadata.day|date }}|{{ metadata.price|money }}|{{ metadata.none|money }}</p>";
        let rendered = renderer(card)
            .render(
                &fields(),
                &json!({"name": "x", "at": "2025-08-01T12:00:00+02:00", "day": "2025-08-01",
                        "price": {"amount": 450, "currency": "USD"}, "none": {}}),
            )
            .unwrap();
        assert_eq!(
            rendered.html,
            "<p>Fri 1 Aug 2025, 10:00 UTC|Fri 1 Aug 2025|450.00 USD|</p>"
        );
    }

    #[test]
    fn an_empty_title_falls_back_to_the_alert_title_or_the_template() {
        let renderer =
            Renderer::compile(&BTreeMap::from([(TITLE.to_owned(), "  ".to_owned())])).unwrap();
        let rendered = renderer.render(&fields(), &json!({})).unwrap();
        assert_eq!(rendered.title, "T");
        let titled = AlertFields {
            title: Some("Offers"),
            ..fields()
        };
        assert_eq!(
            renderer.render(&titled, &json!({})).unwrap().title,
            "Offers"
        );
    }
}

#[cfg(test)]
mod groundspan {
    use serde_json::json;

    use super::*;
    use crate::partners::bundle;

    #[test]
    fn the_groundspan_templates_read_only_the_alert_title_so_fan_outs_render_once() {
        assert_eq!(
            groundspan().alert_fields_read,
            Some(vec!["title".to_owned()])
        );
    }

    fn groundspan() -> Renderer {
        let partners = bundle::bundled().unwrap();
        let partner = partners.iter().find(|p| p.id == "groundspan").unwrap();
        Renderer::compile(&partner.templates[0].sources).unwrap()
    }

    fn fields() -> AlertFields<'static> {
        AlertFields {
            ext_ref: "r",
            template_id: "NOTIFY_TEMPLATE_ID",
            msg_type: "",
            topic: None,
            title: None,
            created_at: "2025-08-19T10:00:00Z",
            expires_at: time::macros::datetime!(2030-01-01 00:00 UTC),
        }
    }

    #[test]
    fn the_bundled_template_renders_a_minimal_package() {
        let rendered = groundspan()
            .render(&fields(), &json!({"packages": [{"packageId": "p1"}]}))
            .unwrap();
        assert_eq!(rendered.title, "Groundspan: 1 travel offer for you");
        assert!(
            rendered
                .html
                .contains("<h3 class=\"package__title\">p1</h3>")
        );
        assert!(!rendered.html.contains("<img"), "no logo without a URL");
    }

    #[test]
    fn the_largest_payload_the_schema_allows_ends_within_the_budget() {
        let variant = json!({"variantId": "v", "variantTitle": "Economy", "variantDesc": "d",
            "price": {"amount": 1, "currency": "EUR"},
            "userActions": {"label": "Book", "href": "https://groundspan.com/b"}});
        let package = json!({"packageId": "p", "packageTitle": "P", "travelDate": "2030-01-01",
            "location": {"origin": "A", "destination": "B"}, "variants": vec![variant; 50]});
        let metadata = json!({"packages": vec![package; 50]});
        match groundspan().render(&fields(), &metadata) {
            Ok(rendered) => assert!(rendered.html.len() <= MAX_HTML_BYTES),
            Err(err) => assert!(err.reason.contains("larger than"), "{err}"),
        }
    }
}

//! The sandbox, the filters and the cache, then the bundled Groundspan template.

use std::{collections::BTreeMap, sync::Arc};

use serde_json::json;
use sha2::{Digest, Sha256};
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
        reads_title.cache.alert_fields_read,
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
    assert_eq!(reads_title.cache.len(), 1);
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
    assert_eq!(reads_title.cache.len(), 3);
}

#[test]
fn a_template_using_the_whole_alert_keys_its_cache_on_every_field() {
    let whole = renderer("<p>{% for k in alert %}{{ k }}{% endfor %}</p>");
    assert_eq!(whole.cache.alert_fields_read, None);
    let metadata = json!({"name": "Ada"});
    cached(&whole, &fields(), &metadata).unwrap();
    let other_ref = AlertFields {
        ext_ref: "r2",
        ..fields()
    };
    cached(&whole, &other_ref, &metadata).unwrap();
    assert_eq!(whole.cache.len(), 2);
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

#[test]
fn compile_each_reports_every_source_that_does_not_compile() {
    let errors = Renderer::compile_each(&BTreeMap::from([
        (TITLE.to_owned(), "{% if %}".to_owned()),
        (CARD.to_owned(), "<p>ok</p>".to_owned()),
        (TEXT.to_owned(), "{{ x }".to_owned()),
    ]))
    .unwrap_err();
    let failed: Vec<&str> = errors.iter().map(|err| err.template).collect();
    assert_eq!(failed, [TITLE, TEXT]);
    let err =
        Renderer::compile(&BTreeMap::from([(TEXT.to_owned(), "{{ x }".to_owned())])).unwrap_err();
    assert!(err.to_string().starts_with("text.jinja: "), "{err}");
}

#[test]
fn render_each_goes_on_past_a_failed_source_where_render_stops() {
    let failing = Renderer::compile(&BTreeMap::from([
        (TITLE.to_owned(), "{{ metadata.nmae }}".to_owned()),
        (CARD.to_owned(), "<p>{{ title }}</p>".to_owned()),
        (TEXT.to_owned(), "{{ title|nope }}".to_owned()),
    ]))
    .unwrap();
    let metadata = json!({"name": "x"});
    assert_eq!(
        failing.render(&fields(), &metadata).unwrap_err().template,
        TITLE
    );
    let errors = failing.render_each(&fields(), &metadata).unwrap_err();
    let failed: Vec<&str> = errors.iter().map(|err| err.template).collect();
    assert_eq!(
        failed,
        [TITLE, TEXT],
        "the card renders with the fallback title"
    );

    let good = renderer("<p>{{ title }}</p>");
    assert_eq!(
        good.render_each(&fields(), &metadata).unwrap(),
        good.render(&fields(), &metadata).unwrap()
    );
}

#[test]
fn unknown_variables_are_found_by_static_analysis() {
    let reads = renderer("<p>{{ metadata.a.b }}{{ alert.expiresAt }}{{ alert.nope }}{{ who }}</p>");
    assert_eq!(
        reads.unknown_variables(),
        [(CARD, "alert.nope".to_owned()), (CARD, "who".to_owned())]
    );
}

mod groundspan {
    use serde_json::json;

    use super::super::*;
    use crate::partners::bundle;

    #[test]
    fn the_groundspan_templates_read_only_the_alert_title_so_fan_outs_render_once() {
        assert_eq!(
            groundspan().cache.alert_fields_read,
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

use std::collections::BTreeMap;

use time::macros::datetime;

use super::*;

const SCHEMA_JSON: &str = r#"{
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "link": {"type": "string", "format": "partner-url"},
        "items": {"type": "array", "items": {"type": "object", "required": ["id"]}}
    }
}"#;
const CARD: &str = "<p>{{ metadata.name }}</p>";

/// Checks template `T` of a partner allowed on `acme.example`.
fn check(schema: Option<&str>, sources: &[(&str, &str)], example: Option<&str>) -> Report {
    let sources: BTreeMap<String, String> = sources
        .iter()
        .map(|(name, text)| ((*name).to_owned(), (*text).to_owned()))
        .collect();
    let files = TemplateFiles {
        id: "T",
        schema,
        sources: &sources,
        example,
    };
    let mut report = Report::default();
    let policy = UrlPolicy::new(&["acme.example".to_owned()]);
    template(
        &files,
        &policy,
        datetime!(2030-01-01 10:00:00.25 UTC),
        &mut report,
    );
    report
}

fn problems(report: &Report) -> Vec<String> {
    report.problems.iter().map(ToString::to_string).collect()
}

#[test]
fn a_template_whose_example_renders_passes() {
    let report = check(
        Some(SCHEMA_JSON),
        &[
            ("title.jinja", "Hi {{ metadata.name }}"),
            ("card.html.jinja", CARD),
        ],
        Some(r#"{"name": "Ada"}"#),
    );
    assert!(report.passed(), "{:?}", problems(&report));
    assert!(report.warnings.is_empty(), "{:?}", report.warnings);
    assert_eq!(report.rendered, [("T".to_owned(), "Hi Ada".to_owned())]);
}

#[test]
fn the_example_alert_is_created_now_and_expires_a_week_later() {
    let title = "{{ alert.extRef }}|{{ alert.templateId }}|{{ alert.msgType }}|\
                 {{ alert.topic }}|{{ alert.title }}|{{ alert.createdAt }}|{{ alert.expiresAt }}";
    let report = check(Some("{}"), &[("title.jinja", title)], Some("{}"));
    assert_eq!(
        report.rendered[0].1,
        "example|T||None|None|2030-01-01T10:00:00Z|2030-01-08T10:00:00Z"
    );
}

#[test]
fn an_unknown_filter_is_a_problem_of_its_source_with_its_line() {
    let card = "<p>\n{{ metadata.name|price }}</p>";
    let report = check(
        Some(SCHEMA_JSON),
        &[("card.html.jinja", card)],
        Some(r#"{"name": "Ada"}"#),
    );
    assert_eq!(
        problems(&report),
        ["templates/T/card.html.jinja: filter price is unknown (line 2)"]
    );
    assert!(report.rendered.is_empty());
}

#[test]
fn every_source_that_fails_to_render_is_reported() {
    let report = check(
        Some(SCHEMA_JSON),
        &[
            ("title.jinja", "{{ metadata.nmae }}"),
            ("card.html.jinja", "<p>{{ title }}</p><script></script>"),
            ("text.jinja", "{{ metadata.name|nope }}"),
        ],
        Some(r#"{"name": "Ada"}"#),
    );
    let problems = problems(&report);
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(problems[0].starts_with("templates/T/title.jinja: undefined value"));
    assert_eq!(
        problems[1],
        "templates/T/card.html.jinja: the card may not contain <script>"
    );
    assert!(problems[2].starts_with("templates/T/text.jinja: filter nope is unknown"));
}

#[test]
fn every_source_that_does_not_compile_is_reported() {
    let report = check(
        Some(SCHEMA_JSON),
        &[
            ("title.jinja", "{% if %}"),
            ("card.html.jinja", CARD),
            ("text.jinja", "{{ x }"),
        ],
        Some(r#"{"name": "Ada"}"#),
    );
    let files: Vec<&str> = report.problems.iter().map(|p| p.file.as_str()).collect();
    assert_eq!(files, ["templates/T/title.jinja", "templates/T/text.jinja"]);
}

#[test]
fn an_example_the_schema_refuses_names_example_json_and_the_pointer() {
    let report = check(
        Some(SCHEMA_JSON),
        &[("card.html.jinja", CARD)],
        Some(r#"{"name": 3, "items": [{}]}"#),
    );
    let problems = problems(&report);
    assert!(
        problems.contains(&"templates/T/example.json: /items/0/id: id is required.".to_owned()),
        "{problems:?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.starts_with("templates/T/example.json: /name: ")),
        "{problems:?}"
    );
    assert!(
        report.rendered.is_empty(),
        "a refused example is not rendered"
    );
}

#[test]
fn the_example_keeps_to_the_partners_url_policy() {
    let report = check(
        Some(SCHEMA_JSON),
        &[("card.html.jinja", CARD)],
        Some(r#"{"name": "Ada", "link": "https://elsewhere.example/x"}"#),
    );
    assert_eq!(
        problems(&report),
        [
            "templates/T/example.json: /link: Links and images must be https URLs on the partner's allowed domains."
        ]
    );
    let allowed = check(
        Some(SCHEMA_JSON),
        &[("card.html.jinja", CARD)],
        Some(r#"{"name": "Ada", "link": "https://www.acme.example/x"}"#),
    );
    assert!(allowed.passed(), "{:?}", problems(&allowed));
}

#[test]
fn the_example_is_read_as_strictly_as_an_alerts_metadata() {
    let twice = check(
        Some(SCHEMA_JSON),
        &[],
        Some(r#"{"name": "Ada", "items": [{"id": 1, "id": 2}]}"#),
    );
    let problems_twice = problems(&twice);
    assert_eq!(problems_twice.len(), 1);
    assert!(
        problems_twice[0].starts_with("templates/T/example.json: /items/0/id: "),
        "{problems_twice:?}"
    );
    for (example, expected) in [
        ("[1]", "must be a JSON object"),
        ("{\"name\": ", "not JSON"),
    ] {
        let report = check(Some(SCHEMA_JSON), &[], Some(example));
        let problems = problems(&report);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with(&format!("templates/T/example.json: {expected}")),
            "{problems:?}"
        );
    }
}

#[test]
fn a_template_without_an_example_is_compiled_and_warned_about() {
    let report = check(Some(SCHEMA_JSON), &[("card.html.jinja", CARD)], None);
    assert!(report.passed());
    assert!(report.rendered.is_empty());
    assert_eq!(report.warnings.len(), 1);
    assert_eq!(report.warnings[0].file, "templates/T");
    assert!(report.warnings[0].message.contains("no example.json"));

    let broken = check(Some(SCHEMA_JSON), &[("card.html.jinja", "{% for %}")], None);
    assert_eq!(
        broken.problems[0].file, "templates/T/card.html.jinja",
        "a source that does not compile is refused, example or not"
    );
}

#[test]
fn a_variable_no_rendering_has_is_warned_about_without_rendering() {
    let report = check(
        Some(SCHEMA_JSON),
        &[
            ("title.jinja", "{{ title }}{{ range(2)|length }}"),
            (
                "card.html.jinja",
                "<p>{{ alert.nope }}{{ alert.title }}{{ title }}{{ metadata.x }}</p>\
                 {% for i in metadata.items %}{{ i.id }}{{ loop.index }}{% endfor %}\
                 {% if price is defined %}{{ price }}{% endif %}",
            ),
        ],
        None,
    );
    let warned: Vec<String> = report
        .warnings
        .iter()
        .filter(|w| w.message.starts_with("reads"))
        .map(|w| format!("{} {}", w.file, w.message.split(',').next().unwrap()))
        .collect();
    assert_eq!(
        warned,
        [
            "templates/T/title.jinja reads `title`",
            "templates/T/card.html.jinja reads `alert.nope`",
            "templates/T/card.html.jinja reads `price`",
        ]
    );
}

#[test]
fn a_schema_missing_or_broken_is_a_problem_of_schema_json() {
    let missing = check(None, &[], None);
    assert_eq!(missing.problems[0].file, "templates/T/schema.json");
    assert!(missing.problems[0].message.starts_with("missing"));
    let not_json = check(Some("{not json"), &[], None);
    assert!(
        not_json.problems[0].message.starts_with("not JSON"),
        "{:?}",
        not_json.problems
    );
    let invalid = check(Some(r#"{"type": "no-such-type"}"#), &[], None);
    assert!(
        invalid.problems[0]
            .message
            .starts_with("invalid JSON Schema"),
        "{:?}",
        invalid.problems
    );
}

#[test]
fn with_a_broken_schema_the_example_is_still_rendered() {
    let report = check(
        Some(r#"{"type": "no-such-type"}"#),
        &[("card.html.jinja", "<p>{{ metadata.name|price }}</p>")],
        Some(r#"{"name": "Ada"}"#),
    );
    let files: Vec<&str> = report.problems.iter().map(|p| p.file.as_str()).collect();
    assert_eq!(
        files,
        ["templates/T/schema.json", "templates/T/card.html.jinja"]
    );
}

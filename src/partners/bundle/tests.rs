use super::*;

#[test]
fn the_bundled_groundspan_partner_loads() {
    let partners = bundled().unwrap();
    let groundspan = partners.iter().find(|p| p.id == "groundspan").unwrap();
    assert_eq!(
        groundspan.allowed_url_domains,
        ["groundspan.com", "concur.com"]
    );
    assert_eq!(groundspan.templates.len(), 1);
    assert_eq!(groundspan.templates[0].template_id, "NOTIFY_TEMPLATE_ID");
    assert!(groundspan.generated_secret.starts_with("whsec_"));
}

fn files(entries: &[(&str, &str)]) -> BTreeMap<PathBuf, String> {
    entries
        .iter()
        .map(|(p, t)| (PathBuf::from(p), (*t).to_owned()))
        .collect()
}

#[test]
fn refuses_a_schema_that_does_not_compile() {
    let err = from_files(&files(&[
        ("partner.toml", "id = \"p\"\nname = \"P\"\n"),
        ("templates/T/schema.json", r#"{"type": "no-such-type"}"#),
    ]))
    .unwrap_err();
    assert!(format!("{err:#}").contains("schema.json"), "{err:#}");
}

#[test]
fn refuses_a_render_source_that_does_not_compile() {
    let err = from_files(&files(&[
        ("partner.toml", "id = \"p\"\nname = \"P\"\n"),
        ("templates/T/schema.json", "{}"),
        ("templates/T/card.html.jinja", "<p>{% for x in %}</p>"),
    ]))
    .unwrap_err();
    assert!(format!("{err:#}").contains("card.html.jinja"), "{err:#}");
}

#[test]
fn refuses_unknown_keys_and_files() {
    assert!(
        from_files(&files(&[(
            "partner.toml",
            "id = \"p\"\nname = \"P\"\nallowed_domains = []\n"
        )]))
        .is_err()
    );
    assert!(
        from_files(&files(&[
            ("partner.toml", "id = \"p\"\nname = \"P\"\n"),
            ("templates/T/schema.json", "{}"),
            ("templates/T/evil.sh", "rm -rf /"),
        ]))
        .is_err()
    );
}

fn groundspan_files() -> BTreeMap<PathBuf, String> {
    let dir = BUNDLED.get_dir("groundspan").unwrap();
    let mut files = BTreeMap::new();
    collect_embedded(dir, dir.path(), &mut files);
    files
}

#[test]
fn the_bundled_groundspan_example_renders() {
    let checked = check_files(&groundspan_files());
    assert!(checked.report.passed(), "{:?}", checked.report.problems);
    assert!(
        checked.report.warnings.is_empty(),
        "{:?}",
        checked.report.warnings
    );
    assert_eq!(
        checked.report.rendered,
        [(
            "NOTIFY_TEMPLATE_ID".to_owned(),
            "Groundspan: 3 travel offers for you".to_owned()
        )]
    );
    assert!(checked.import.is_some());
}

#[test]
fn a_template_that_cannot_render_its_example_is_not_imported() {
    let mut files = groundspan_files();
    let card = PathBuf::from("templates/NOTIFY_TEMPLATE_ID/card.html.jinja");
    let broken = files[&card].replace("{{ provider }}", "{{ provider|price }}");
    files.insert(card, broken);
    let checked = check_files(&files);
    assert!(checked.import.is_none());
    let problems: Vec<String> = checked
        .report
        .problems
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0].starts_with(
            "templates/NOTIFY_TEMPLATE_ID/card.html.jinja: filter price is unknown (line "
        ),
        "{problems:?}"
    );
    let err = from_files(&files).unwrap_err();
    assert!(
        format!("{err:#}").contains("filter price is unknown"),
        "{err:#}"
    );
}

#[test]
fn every_problem_of_a_directory_is_reported_at_once() {
    let checked = check_files(&files(&[
        (
            "partner.toml",
            "id = \"P\"\nname = \" \"\nallowed_url_domains = [\"nodots\", \"ok.example\"]\n\
             postback_secret = \"whsec_c2hvcnQ=\"\nrate_limit = { per_second = 0 }\n",
        ),
        ("README.md", "hello"),
        ("templates/T/schema.json", "{}"),
        (
            "templates/T/card.html.jinja",
            "<p>{{ metadata.x|nope }}</p>",
        ),
        ("templates/T/example.json", r#"{"x": 1}"#),
        ("templates/U/card.html.jinja", "<p>{% if %}</p>"),
    ]));
    assert!(checked.import.is_none());
    let files: Vec<&str> = checked
        .report
        .problems
        .iter()
        .map(|p| p.file.as_str())
        .collect();
    assert_eq!(
        files,
        [
            "README.md",
            "partner.toml",
            "partner.toml",
            "partner.toml",
            "partner.toml",
            "partner.toml",
            "templates/T/card.html.jinja",
            "templates/U/schema.json",
            "templates/U/card.html.jinja",
        ],
        "{:#?}",
        checked.report.problems
    );
}

#[test]
fn a_partner_toml_that_does_not_read_names_its_line() {
    let checked = check_files(&files(&[(
        "partner.toml",
        "id = \"p\"\nname = \"P\"\nallowed_domains = []\n",
    )]));
    let problem = checked.report.problems[0].to_string();
    assert!(
        problem.starts_with("partner.toml: unknown field `allowed_domains`"),
        "{problem}"
    );
    assert!(problem.ends_with("(line 3)"), "{problem}");
}

#[test]
fn the_example_is_not_part_of_the_templates_content() {
    let import = |example: &str| {
        from_files(&files(&[
            ("partner.toml", "id = \"p\"\nname = \"P\"\n"),
            ("templates/T/schema.json", "{}"),
            ("templates/T/example.json", example),
        ]))
        .unwrap()
    };
    let (a, b) = (import("{}"), import(r#"{"other": true}"#));
    assert_eq!(a.templates[0].content_hash, b.templates[0].content_hash);
    assert!(!a.templates[0].sources.contains_key("example.json"));
}

#[test]
fn the_content_hash_follows_the_content() {
    let a = from_files(&files(&[
        ("partner.toml", "id = \"p\"\nname = \"P\"\n"),
        ("templates/T/schema.json", "{}"),
    ]))
    .unwrap();
    let b = from_files(&files(&[
        ("partner.toml", "id = \"p\"\nname = \"P\"\n"),
        ("templates/T/schema.json", "{ }"),
    ]))
    .unwrap();
    assert_ne!(a.templates[0].content_hash, b.templates[0].content_hash);
}

//! `maestro partner check` and the same check run by `maestro partner import`, with the real
//! binary: a template that cannot render its example never reaches the database.

use std::{
    path::{Path, PathBuf},
    process::Output,
};

use crate::real_binary::{maestro, migrated_dir};

const SCHEMA: &str = r#"{
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string"},
        "items": {"type": "array", "items": {"type": "object", "required": ["id"]}}
    }
}"#;
const CARD: &str = "<article>\n  <h3>{{ title }}</h3>\n  <p>{{ metadata.name }}</p>\n</article>\n";
const EXAMPLE: &str = r#"{"name": "Ada", "items": [{"id": 1}]}"#;

/// A partner directory `acme` in `root` with one template, `OFFER`.
fn partner_dir(root: &Path, card: &str, example: Option<&str>) -> PathBuf {
    let dir = root.join("acme");
    let template = dir.join("templates/OFFER");
    std::fs::create_dir_all(&template).unwrap();
    std::fs::write(
        dir.join("partner.toml"),
        "id = \"acme\"\nname = \"Acme\"\nallowed_url_domains = [\"acme.example\"]\n",
    )
    .unwrap();
    std::fs::write(template.join("schema.json"), SCHEMA).unwrap();
    std::fs::write(
        template.join("title.jinja"),
        "Offer for {{ metadata.name }}",
    )
    .unwrap();
    std::fs::write(template.join("card.html.jinja"), card).unwrap();
    match example {
        Some(example) => std::fs::write(template.join("example.json"), example).unwrap(),
        None => {
            let _ = std::fs::remove_file(template.join("example.json"));
        }
    }
    dir
}

fn run(root: &Path, args: &[&str], dir: &Path) -> (Output, String, String) {
    let mut all = args.to_vec();
    all.push(dir.to_str().unwrap());
    let output = maestro(root, &all);
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    (output, stdout, stderr)
}

fn stdout_of(root: &Path, args: &[&str]) -> String {
    let output = maestro(root, args);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn check_and_import_refuse_a_card_with_an_unknown_filter() {
    let root = tempfile::tempdir().unwrap();
    let card = CARD.replace("{{ metadata.name }}", "{{ metadata.name|price }}");
    let dir = partner_dir(root.path(), &card, Some(EXAMPLE));
    let problem = "templates/OFFER/card.html.jinja: filter price is unknown (line 3)";

    let (output, stdout, stderr) = run(root.path(), &["partner", "check"], &dir);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(problem), "{stderr}");
    assert!(!stdout.contains("ok"), "{stdout}");
    assert!(
        !root.path().join("maestro.db").exists(),
        "checking touches no database"
    );
    assert!(maestro(root.path(), &["migrate"]).status.success());

    let (output, _, stderr) = run(root.path(), &["partner", "import"], &dir);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(problem), "{stderr}");
    assert!(stderr.contains("nothing was imported"), "{stderr}");
    let list = stdout_of(root.path(), &["partner", "list"]);
    assert!(!list.contains("acme"), "{list}");
}

#[test]
fn a_refused_import_leaves_the_existing_partner_as_it_was() {
    let root = migrated_dir();
    let dir = partner_dir(root.path(), CARD, Some(EXAMPLE));
    let (output, stdout, stderr) = run(root.path(), &["partner", "import"], &dir);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.contains("template OFFER v1 (new version)"),
        "{stdout}"
    );

    // A card that reads a variable no alert has: every alert would be refused.
    let broken = CARD.replace("{{ metadata.name }}", "{{ metadata.name }} {{ price }}");
    partner_dir(root.path(), &broken, Some(EXAMPLE));
    let (output, _, stderr) = run(root.path(), &["partner", "import"], &dir);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("templates/OFFER/card.html.jinja: undefined value (line 3)"),
        "{stderr}"
    );
    let show = stdout_of(root.path(), &["partner", "show", "acme"]);
    assert!(show.contains("template\tOFFER v1"), "{show}");

    partner_dir(
        root.path(),
        &CARD.replace("<p>", "<p class=\"name\">"),
        Some(EXAMPLE),
    );
    let (output, stdout, stderr) = run(root.path(), &["partner", "import"], &dir);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.contains("template OFFER v2 (new version)"),
        "{stdout}"
    );
}

#[test]
fn check_and_import_refuse_an_example_that_breaks_the_schema() {
    let root = migrated_dir();
    let dir = partner_dir(
        root.path(),
        CARD,
        Some(r#"{"name": "Ada", "items": [{"id": 1}, {"label": "no id"}]}"#),
    );
    let problem = "templates/OFFER/example.json: /items/1/id: id is required.";
    for command in ["check", "import"] {
        let (output, _, stderr) = run(root.path(), &["partner", command], &dir);
        assert_eq!(output.status.code(), Some(1), "{command}: {stderr}");
        assert!(stderr.contains(problem), "{command}: {stderr}");
    }
    let list = stdout_of(root.path(), &["partner", "list"]);
    assert!(!list.contains("acme"), "{list}");
}

#[test]
fn a_good_directory_passes_the_check_and_imports() {
    let root = migrated_dir();
    let dir = partner_dir(root.path(), CARD, Some(EXAMPLE));
    let (output, stdout, stderr) = run(root.path(), &["partner", "check"], &dir);
    assert!(output.status.success(), "{stderr}");
    assert_eq!(
        stdout,
        "templates/OFFER: ok (example.json renders \"Offer for Ada\")\n"
    );
    assert!(!stderr.contains("warning"), "{stderr}");

    let (output, stdout, stderr) = run(root.path(), &["partner", "import"], &dir);
    assert!(output.status.success(), "{stderr}");
    assert!(stdout.contains("created partner acme"), "{stdout}");
}

#[test]
fn a_template_without_an_example_is_imported_with_a_warning() {
    let root = migrated_dir();
    let dir = partner_dir(root.path(), CARD, None);
    for command in ["check", "import"] {
        let (output, _, stderr) = run(root.path(), &["partner", command], &dir);
        assert!(output.status.success(), "{command}: {stderr}");
        assert!(
            stderr.contains("warning: templates/OFFER: no example.json"),
            "{command}: {stderr}"
        );
    }
}

#[test]
fn the_bundled_groundspan_passes_the_check() {
    let root = tempfile::tempdir().unwrap();
    let groundspan = Path::new(env!("CARGO_MANIFEST_DIR")).join("partners/groundspan");
    let (output, stdout, stderr) = run(root.path(), &["partner", "check"], &groundspan);
    assert!(output.status.success(), "{stderr}");
    assert!(
        stdout.starts_with("templates/NOTIFY_TEMPLATE_ID: ok (example.json renders"),
        "{stdout}"
    );
    assert!(!stderr.contains("warning"), "{stderr}");
}

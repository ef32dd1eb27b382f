//! The layers of the settings, read with an environment and files of the tests' own.

use std::{collections::HashMap, ffi::OsString, path::Path};

use super::*;

#[test]
fn defaults_come_from_the_declarations_not_the_environment() {
    let settings = Settings::with_database("127.0.0.1:0", "sqlite://x.db");
    assert_eq!(settings.listen, "127.0.0.1:0");
    assert_eq!(settings.database.url, "sqlite://x.db");
    assert_eq!(settings.database.database_timeout, Duration::from_secs(5));
    assert_eq!(settings.max_body_bytes, 256 * 1024);
    assert_eq!(settings.shutdown_grace, Duration::from_secs(20));
    assert_eq!(
        settings.expired_retention,
        Duration::from_secs(7 * 24 * 3600)
    );
    assert_eq!(DatabaseArgs::default().url, DEFAULT_DATABASE_URL);
    assert!(settings.trusted_jwks.is_empty());
    assert_eq!(settings.trusted_audience, None);
    assert_eq!(DatabaseArgs::default().master_key, None);
}

#[test]
fn trusted_jwks_is_a_comma_separated_list_of_sources() {
    let settings: Settings = defaults(&[
        "--trusted-jwks",
        "https://idp.example.com=https://idp.example.com/jwks?x=1, /etc/a.jwks",
        "--trusted-jwks",
        "https://b.example.com/.well-known/jwks.json",
        "--trusted-audience",
        "https://maestro.example.com",
    ]);
    let shown: Vec<String> = settings
        .trusted_jwks
        .iter()
        .map(|s| s.to_string())
        .collect();
    assert_eq!(
        shown,
        [
            "https://idp.example.com=https://idp.example.com/jwks?x=1",
            "/etc/a.jwks",
            "https://b.example.com/.well-known/jwks.json",
        ]
    );
    assert_eq!(
        settings.trusted_jwks[0].issuer.as_deref(),
        Some("https://idp.example.com")
    );
    assert_eq!(
        settings.trusted_audience.as_deref(),
        Some("https://maestro.example.com")
    );
    let refused = Settings::augment_args(clap::Command::new("maestro"))
        .mut_args(|arg| arg.env(clap::builder::Resettable::Reset))
        .try_get_matches_from(["maestro", "--trusted-jwks", "http://idp/jwks"]);
    assert!(refused.unwrap_err().to_string().contains("https://"));
}

#[test]
fn the_master_key_never_shows_in_the_settings_debug() {
    let key = "q83vEjRWeJC6ze8SNFZ4kLrN7xI0VniQus3vEjRWeJA=";
    let mut settings = Settings::with_database("127.0.0.1:0", "sqlite://x.db");
    settings.database.master_key = Some(key.parse().unwrap());
    let shown = format!("{settings:?} {settings:#?}");
    assert!(
        !shown.contains(key) && !shown.contains("q83vEjRW"),
        "{shown}"
    );
    assert!(
        shown.contains("master_key: Some(Secret(<redacted>))"),
        "{shown}"
    );
}

/// `Settings` read from `args`, `variables` and, if given, the file `toml`.
fn read(
    args: &[&str],
    variables: &[(&str, &str)],
    toml: Option<&str>,
) -> anyhow::Result<Layered<Settings>> {
    let dir = tempfile::tempdir().unwrap();
    let file = toml.map(|text| {
        let path = dir.path().join("maestro.toml");
        std::fs::write(&path, text).unwrap();
        path
    });
    read_with_file(args, variables, file.as_deref())
}

fn read_with_file(
    args: &[&str],
    variables: &[(&str, &str)],
    file: Option<&Path>,
) -> anyhow::Result<Layered<Settings>> {
    let environment: HashMap<String, OsString> = variables
        .iter()
        .map(|(name, value)| ((*name).to_owned(), OsString::from(value)))
        .collect();
    let matches = Layered::<Settings>::augment_args(clap::Command::new("maestro"))
        .try_get_matches_from(std::iter::once("maestro").chain(args.iter().copied()))?;
    load(&matches, file, &|name| environment.get(name).cloned())
}

#[test]
fn flags_win_over_variables_over_the_file_over_the_defaults() {
    let settings = read(
        &["--sweep-interval", "3s"],
        &[
            ("MAESTRO_SWEEP_INTERVAL", "2s"),
            ("MAESTRO_REQUEST_TIMEOUT", "7s"),
        ],
        Some("sweep_interval = \"1s\"\nrequest_timeout = \"9s\"\nmax_body_bytes = 1000\n"),
    )
    .unwrap();
    assert_eq!(settings.sweep_interval, Duration::from_secs(3));
    assert_eq!(
        settings.origin("sweep_interval"),
        Some(&Origin::Flag("sweep-interval".into()))
    );
    assert_eq!(settings.request_timeout, Duration::from_secs(7));
    assert_eq!(
        settings.origin("request_timeout"),
        Some(&Origin::Variable("MAESTRO_REQUEST_TIMEOUT".into()))
    );
    assert_eq!(settings.max_body_bytes, 1000);
    assert!(matches!(
        settings.origin("max_body_bytes"),
        Some(Origin::File(_))
    ));
    assert_eq!(settings.listen, "127.0.0.1:8080");
    assert_eq!(settings.origin("listen"), Some(&Origin::Default));
    assert_eq!(settings.origin("trusted_audience"), None);
}

#[test]
fn the_database_settings_are_layered_like_the_rest() {
    let settings = read(
        &["--database-max-connections", "3"],
        &[("MAESTRO_DATABASE_URL", "sqlite://v.db")],
        Some("database_url = \"sqlite://f.db\"\ndatabase_timeout = \"2s\"\n"),
    )
    .unwrap();
    assert_eq!(settings.database.url, "sqlite://v.db");
    assert_eq!(settings.database.database_timeout, Duration::from_secs(2));
    assert_eq!(settings.database.database_max_connections, 3);
}

#[test]
fn lists_are_arrays_in_the_file_and_comma_separated_elsewhere() {
    let file = "delivery_allowed_subnets = [\"10.0.0.0/8\", \"127.0.0.0/8\"]\n";
    let settings = read(&[], &[], Some(file)).unwrap();
    assert_eq!(settings.delivery_allowed_subnets.len(), 2);
    let file = "delivery_allowed_subnets = \"10.0.0.0/8, 127.0.0.0/8\"\n";
    assert_eq!(
        read(&[], &[], Some(file))
            .unwrap()
            .delivery_allowed_subnets
            .len(),
        2
    );
    let variables = [(
        "MAESTRO_DELIVERY_ALLOWED_SUBNETS",
        "10.0.0.0/8,192.168.0.0/16,127.0.0.0/8",
    )];
    assert_eq!(
        read(&[], &variables, None)
            .unwrap()
            .delivery_allowed_subnets
            .len(),
        3
    );
    let flags = ["--delivery-allowed-subnets", "10.0.0.0/8"];
    assert_eq!(
        read(&flags, &variables, None)
            .unwrap()
            .delivery_allowed_subnets
            .len(),
        1
    );
}

#[test]
fn an_empty_variable_counts_as_unset() {
    let settings = read(
        &[],
        &[("MAESTRO_LISTEN", ""), ("MAESTRO_MAX_BODY_BYTES", "")],
        Some("listen = \"0.0.0.0:9\"\n"),
    )
    .unwrap();
    assert_eq!(settings.listen, "0.0.0.0:9");
    assert_eq!(settings.max_body_bytes, 256 * 1024);
}

#[test]
fn an_unknown_key_names_the_key_and_the_file() {
    let message = format!(
        "{:#}",
        read(&[], &[], Some("max_body_byte = 10\n")).unwrap_err()
    );
    assert!(message.contains("unknown key `max_body_byte`"), "{message}");
    assert!(message.contains("maestro.toml"), "{message}");
    let message = format!(
        "{:#}",
        read(&[], &[], Some("[database]\nurl = \"x\"\n")).unwrap_err()
    );
    assert!(message.contains("unknown key `database`"), "{message}");
}

#[test]
fn a_bad_value_names_its_variable_or_its_file_and_key() {
    let message = read(&[], &[("MAESTRO_MAX_BODY_BYTES", "lots")], None)
        .unwrap_err()
        .to_string();
    assert!(message.starts_with("MAESTRO_MAX_BODY_BYTES: "), "{message}");
    let message = read(&[], &[("MAESTRO_REQUEST_TIMEOUT", "5 parsecs")], None)
        .unwrap_err()
        .to_string();
    assert!(
        message.starts_with("MAESTRO_REQUEST_TIMEOUT: invalid duration \"5 parsecs\""),
        "{message}"
    );
    let message = read(&[], &[], Some("role = \"boss\"\n"))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("maestro.toml: role: invalid value \"boss\": one of all, api, worker"),
        "{message}"
    );
    let message = read(&[], &[], Some("trusted_jwks = [\"http://idp/jwks\"]\n"))
        .unwrap_err()
        .to_string();
    assert!(
        message.contains("maestro.toml: trusted_jwks: "),
        "{message}"
    );
    assert!(message.contains("https://"), "{message}");
    let message = format!("{:#}", read(&[], &[], Some("listen = \n")).unwrap_err());
    assert!(
        message.contains("maestro.toml is not valid TOML"),
        "{message}"
    );
    let missing = Path::new("/nonexistent/maestro.toml");
    let message = format!("{:#}", read_with_file(&[], &[], Some(missing)).unwrap_err());
    assert!(
        message.contains("cannot read the configuration file /nonexistent/maestro.toml"),
        "{message}"
    );
}

/// The example file ships every key with its default.
#[test]
fn the_example_file_parses_and_gives_the_defaults() {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("maestro.example.toml");
    let from_example = read_with_file(&[], &[], Some(&example)).unwrap();
    let defaults = read(&[], &[], None).unwrap();
    assert_eq!(
        show::render(&from_example)
            .unwrap()
            .replace(&example.display().to_string(), "default"),
        show::render(&defaults).unwrap()
    );
    let text = std::fs::read_to_string(&example).unwrap();
    for setting in declared::<Settings>() {
        let written = text.lines().any(|line| {
            let line = line.trim_start_matches("# ");
            line.starts_with(&format!("{} =", setting.key))
        });
        assert!(written, "maestro.example.toml lacks {}", setting.key);
    }
}

/// Every setting any command takes can be written in the file, which holds those of `serve`.
#[test]
fn every_setting_of_every_command_is_a_setting_of_serve() {
    use clap::CommandFactory;
    fn visit(command: &clap::Command, keys: &[String], variables: &mut Vec<String>) {
        for arg in command.get_arguments() {
            if let Some(long) = arg.get_long()
                && arg.get_id() != CONFIG_ARG
                && arg
                    .get_help()
                    .is_some_and(|help| help.to_string().contains("[env: "))
            {
                assert!(
                    keys.contains(&long.replace('-', "_")),
                    "--{long} of {}",
                    command.get_name()
                );
                variables.push(long.to_owned());
            }
        }
        for sub in command.get_subcommands() {
            visit(sub, keys, variables);
        }
    }
    let keys: Vec<String> = declared::<Settings>().into_iter().map(|s| s.key).collect();
    let mut seen = Vec::new();
    visit(&crate::cli::Cli::command(), &keys, &mut seen);
    assert!(seen.iter().any(|flag| flag == "public-url"));
    let public: Vec<String> = declared::<PublicUrl>().into_iter().map(|s| s.key).collect();
    assert_eq!(public, ["public_url"]);
}

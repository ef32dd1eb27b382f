//! Settings read from their layers, each over the one before: the defaults declared in the
//! `#[arg]` attributes, the TOML file of `--config` / `MAESTRO_CONFIG`, the `MAESTRO_*`
//! variables, and the flags given on the command line. figment merges the layers and remembers
//! where each value came from; serde reads the result into the settings' types.
//!
//! A setting is an argument declared with `env`: its key in the file is its flag's name with `_`
//! for `-`. clap parses only the command line (the variables are taken out of its arguments, see
//! [`Layered::augment_args`]), so that a bad variable is reported by its name rather than as if
//! it were a flag.

use std::{
    collections::BTreeMap,
    ffi::OsString,
    fmt,
    path::{Path, PathBuf},
};

use anyhow::Context;
use clap::{ArgMatches, Args, Command, FromArgMatches, builder::Resettable, parser::ValueSource};
use figment::{
    Figment, Metadata, Profile, Provider, Source,
    value::{Dict, Map, Value},
};
use serde::de::DeserializeOwned;

/// A group of settings (`Settings`, `DatabaseArgs`, …).
pub trait Layer: Args + DeserializeOwned {
    /// Reads the group from the merged layers; a group that holds another overrides it.
    fn extract(figment: &Figment) -> Result<Self, Box<figment::Error>> {
        Ok(figment.extract_lossy()?)
    }
}

/// A setting as declared.
#[derive(Clone, Debug)]
pub struct Declared {
    id: String,
    /// Its key in the configuration file.
    pub key: String,
    /// Its `MAESTRO_*` variable.
    pub variable: String,
    pub flag: String,
    default: Vec<String>,
    /// Several values (a flag given repeatedly, or one comma-separated text).
    list: bool,
    /// A secret: never shown.
    pub secret: bool,
}

/// The settings of group `T`, in declaration order.
pub fn declared<T: Args>() -> Vec<Declared> {
    T::augment_args(Command::new("maestro"))
        .get_arguments()
        .filter_map(|arg| {
            let variable = arg.get_env()?.to_str()?.to_owned();
            let flag = arg.get_long()?.to_owned();
            Some(Declared {
                id: arg.get_id().to_string(),
                key: flag.replace('-', "_"),
                variable,
                flag,
                default: arg
                    .get_default_values()
                    .iter()
                    .map(|value| value.to_string_lossy().into_owned())
                    .collect(),
                list: matches!(arg.get_action(), clap::ArgAction::Append),
                secret: arg.is_hide_env_values_set(),
            })
        })
        .collect()
}

/// Where a setting's value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    Default,
    File(PathBuf),
    Variable(String),
    Flag(String),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Default => f.write_str("default"),
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::Variable(name) => f.write_str(name),
            Origin::Flag(flag) => write!(f, "--{flag}"),
        }
    }
}

/// A group of settings read from every layer, with where each value came from.
#[derive(Clone, Debug)]
pub struct Layered<T> {
    value: T,
    origins: BTreeMap<String, Origin>,
}

impl<T> Layered<T> {
    pub fn into_inner(self) -> T {
        self.value
    }

    /// Where the value of `key` came from; `None` for a setting left unset.
    pub fn origin(&self, key: &str) -> Option<&Origin> {
        self.origins.get(key)
    }
}

impl<T> std::ops::Deref for Layered<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> std::ops::DerefMut for Layered<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

/// The global argument naming the configuration file.
pub const CONFIG_ARG: &str = "config";

impl<T: Layer> Args for Layered<T> {
    /// `T`'s arguments with their variables taken out of clap's hands (the layers read them),
    /// still shown in the help.
    fn augment_args(command: Command) -> Command {
        declared::<T>()
            .into_iter()
            .fold(T::augment_args(command), |command, setting| {
                command.mut_arg(&setting.id, |arg| {
                    let note = format!("[env: {}]", setting.variable);
                    let help = arg.get_help().map(|help| format!("{help} {note}"));
                    let long_help = arg.get_long_help().map(|help| format!("{help}\n\n{note}"));
                    let arg = arg.env(Resettable::Reset);
                    let arg = match help {
                        Some(help) => arg.help(help),
                        None => arg,
                    };
                    match long_help {
                        Some(help) => arg.long_help(help),
                        None => arg,
                    }
                })
            })
    }

    fn augment_args_for_update(command: Command) -> Command {
        Self::augment_args(command)
    }
}

impl<T: Layer> FromArgMatches for Layered<T> {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        let file = matches.try_get_one::<PathBuf>(CONFIG_ARG).ok().flatten();
        load(matches, file.map(PathBuf::as_path), &|name| {
            std::env::var_os(name)
        })
        .map_err(|err| {
            clap::Error::raw(
                clap::error::ErrorKind::ValueValidation,
                format!("{err:#}\n"),
            )
        })
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

/// Reads group `T` from its layers: the declarations' defaults, `file`, the variables as
/// `variable` reads them, and the flags given in `matches` (parsed by a command holding `T`'s
/// arguments).
pub fn load<T: Layer>(
    matches: &ArgMatches,
    file: Option<&Path>,
    variable: &dyn Fn(&str) -> Option<OsString>,
) -> anyhow::Result<Layered<T>> {
    let settings = declared::<T>();
    let mut figment =
        Figment::new().merge(Values::new(Metadata::named(DEFAULTS), defaults(&settings)));
    if let Some(path) = file {
        let metadata = Metadata::from(FILE, Source::File(path.to_owned()));
        figment = figment.merge(Values::new(metadata, read_file(path)?));
    }
    figment = figment
        .merge(Values::new(
            Metadata::named(VARIABLES),
            variables(&settings, variable)?,
        ))
        .merge(Values::new(
            Metadata::named(FLAGS),
            flags(&settings, matches),
        ));
    let value = T::extract(&figment).map_err(|err| anyhow::anyhow!(describe(*err, &settings)))?;
    let origins = settings
        .iter()
        .filter_map(|setting| {
            let metadata = figment.find_metadata(&setting.key)?;
            let origin = match metadata.name.as_ref() {
                FILE => Origin::File(file?.to_owned()),
                VARIABLES => Origin::Variable(setting.variable.clone()),
                FLAGS => Origin::Flag(setting.flag.clone()),
                _ => Origin::Default,
            };
            Some((setting.key.clone(), origin))
        })
        .collect();
    Ok(Layered { value, origins })
}

const DEFAULTS: &str = "default";
const FILE: &str = "configuration file";
const VARIABLES: &str = "environment";
const FLAGS: &str = "command line";

fn read_file(path: &Path) -> anyhow::Result<Dict> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
    let table: toml::Table = toml::from_str(&text).with_context(|| {
        format!(
            "the configuration file {} is not valid TOML",
            path.display()
        )
    })?;
    // Every key a file may hold: those of `maestro serve`, whose settings include every other
    // command's. The value says whether the setting is a list.
    let known: BTreeMap<String, bool> = declared::<super::Settings>()
        .into_iter()
        .map(|setting| (setting.key, setting.list))
        .collect();
    if let Some(unknown) = table.keys().find(|key| !known.contains_key(*key)) {
        anyhow::bail!(
            "the configuration file {}: unknown key `{unknown}` (the keys are the flags of \
             `maestro serve` with `_` for `-`, e.g. `max_body_bytes`)",
            path.display()
        );
    }
    let mut dict = Dict::new();
    for (key, value) in table {
        // A list may be written as an array or as one comma-separated string, as in a variable.
        let value = match value {
            toml::Value::String(text) if known[&key] => split(&text),
            value => Value::serialize(value)
                .with_context(|| format!("the configuration file {}: {key}", path.display()))?,
        };
        dict.insert(key, value);
    }
    Ok(dict)
}

fn split(text: &str) -> Value {
    text.split(',')
        .filter(|part| !part.trim().is_empty())
        .map(|part| Value::from(part.trim().to_owned()))
        .collect::<Vec<_>>()
        .into()
}

fn text_value(setting: &Declared, text: String) -> Value {
    if setting.list {
        split(&text)
    } else {
        Value::from(text)
    }
}

fn defaults(settings: &[Declared]) -> Dict {
    settings
        .iter()
        .filter_map(|setting| {
            let value = match (setting.list, setting.default.first()) {
                (true, _) => setting
                    .default
                    .iter()
                    .cloned()
                    .map(Value::from)
                    .collect::<Vec<_>>()
                    .into(),
                (false, Some(default)) => Value::from(default.clone()),
                (false, None) => return None,
            };
            Some((setting.key.clone(), value))
        })
        .collect()
}

/// The settings' variables that are set; a variable set to the empty string counts as unset
/// (container environments write `VAR=` for "not given").
fn variables(
    settings: &[Declared],
    variable: &dyn Fn(&str) -> Option<OsString>,
) -> anyhow::Result<Dict> {
    let mut dict = Dict::new();
    for setting in settings {
        let Some(value) = variable(&setting.variable).filter(|value| !value.is_empty()) else {
            continue;
        };
        let text = value
            .into_string()
            .map_err(|_| anyhow::anyhow!("{}: not valid UTF-8", setting.variable))?;
        dict.insert(setting.key.clone(), text_value(setting, text));
    }
    Ok(dict)
}

/// The settings given on the command line (clap has checked them already).
fn flags(settings: &[Declared], matches: &ArgMatches) -> Dict {
    settings
        .iter()
        .filter(|setting| matches.value_source(&setting.id) == Some(ValueSource::CommandLine))
        .filter_map(|setting| {
            let raw: Vec<String> = matches
                .get_raw(&setting.id)?
                .map(|value| value.to_string_lossy().into_owned())
                .collect();
            let value = match setting.list {
                true => raw.into_iter().map(Value::from).collect::<Vec<_>>().into(),
                false => Value::from(raw.into_iter().next()?),
            };
            Some((setting.key.clone(), value))
        })
        .collect()
}

/// A figment error as the operator needs it: the variable, the file and key, or the flag.
fn describe(err: figment::Error, settings: &[Declared]) -> String {
    err.into_iter()
        .map(|err| {
            let key = err.path.first().cloned().unwrap_or_default();
            let setting = settings.iter().find(|setting| setting.key == key);
            let kind = err.kind.to_string();
            match (err.metadata.as_ref(), setting) {
                (Some(metadata), Some(setting)) if metadata.name == VARIABLES => {
                    format!("{}: {kind}", setting.variable)
                }
                (Some(metadata), Some(setting)) if metadata.name == FLAGS => {
                    format!("--{}: {kind}", setting.flag)
                }
                (
                    Some(Metadata {
                        source: Some(Source::File(path)),
                        ..
                    }),
                    _,
                ) => {
                    format!("the configuration file {}: {key}: {kind}", path.display())
                }
                _ if key.is_empty() => kind,
                _ => format!("{key}: {kind}"),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

struct Values {
    metadata: Metadata,
    dict: Dict,
}

impl Values {
    fn new(metadata: Metadata, dict: Dict) -> Values {
        Values { metadata, dict }
    }
}

impl Provider for Values {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.dict.clone()))
    }
}

//! A strict reader of the Prometheus text exposition format (0.0.4), enough to check what
//! `/metrics` serves: every sample belongs to a family declared by `# TYPE`, and each family's
//! `# HELP`, type and samples are kept.

use std::collections::BTreeMap;

#[derive(Debug, Default)]
pub struct Family {
    pub help: Option<String>,
    pub kind: String,
    pub samples: Vec<Sample>,
}

#[derive(Clone, Debug)]
pub struct Sample {
    /// The sample's own name: the family's, or with `_bucket`, `_sum`, `_count`.
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

impl Family {
    /// The samples named `name` whose labels include every pair of `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }
}

/// The families of `text`, by name. Panics, saying where, on anything the format does not allow.
pub fn parse(text: &str) -> BTreeMap<String, Family> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            let family = families.entry(name.to_owned()).or_default();
            assert!(family.help.is_none(), "HELP twice for {name}");
            family.help = Some(help.to_owned());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect(line);
            let family = families.entry(name.to_owned()).or_default();
            assert!(family.kind.is_empty(), "TYPE twice for {name}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            family.kind = kind.to_owned();
        } else if line.starts_with('#') {
            continue;
        } else {
            let sample = sample(line);
            let family = family_of(&sample.name, &families)
                .unwrap_or_else(|| panic!("a sample of no declared family: {line}"));
            families.get_mut(&family).unwrap().samples.push(sample);
        }
    }
    families
}

/// The declared family a sample belongs to (a histogram's or summary's series carry suffixes).
fn family_of(name: &str, families: &BTreeMap<String, Family>) -> Option<String> {
    if families.get(name).is_some_and(|f| !f.kind.is_empty()) {
        return Some(name.to_owned());
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        families
            .get(base)
            .filter(|f| matches!(f.kind.as_str(), "histogram" | "summary"))
            .map(|_| base.to_owned())
    })
}

fn sample(line: &str) -> Sample {
    let (series, value) = line.rsplit_once(' ').expect(line);
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        value => value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}")),
    };
    let Some((name, labels)) = series.split_once('{') else {
        return Sample {
            name: series.to_owned(),
            labels: BTreeMap::new(),
            value,
        };
    };
    let mut rest = labels.strip_suffix('}').expect(line);
    let mut parsed = BTreeMap::new();
    while !rest.is_empty() {
        let (key, after) = rest.split_once("=\"").expect(line);
        let mut text = String::new();
        let mut chars = after.char_indices();
        let end = loop {
            match chars.next().expect(line) {
                (_, '\\') => match chars.next().expect(line).1 {
                    'n' => text.push('\n'),
                    escaped => text.push(escaped),
                },
                (at, '"') => break at,
                (_, c) => text.push(c),
            }
        };
        assert!(parsed.insert(key.to_owned(), text).is_none(), "{line}");
        rest = after[end + 1..]
            .strip_prefix(',')
            .unwrap_or(&after[end + 1..]);
    }
    Sample {
        name: name.to_owned(),
        labels: parsed,
        value,
    }
}

#[test]
fn the_reader_reads_labels_escapes_and_histogram_series() {
    let families = parse(
        "# HELP h Help.\n# TYPE h histogram\nh_bucket{a=\"x\\\"y\",le=\"+Inf\"} 2\n\
         h_sum{a=\"x\\\"y\"} 0.5\nh_count{a=\"x\\\"y\"} 2\n# TYPE g gauge\ng 1\n",
    );
    let h = &families["h"];
    assert_eq!(h.help.as_deref(), Some("Help."));
    assert_eq!(h.samples.len(), 3);
    assert_eq!(
        h.find("h_bucket", &[("a", "x\"y"), ("le", "+Inf")]).len(),
        1
    );
    assert_eq!(families["g"].help, None);
}

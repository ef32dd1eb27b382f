//! How list commands print: an aligned table with a header row for people, or one JSON array
//! (`--output json`) for scripts, which should never parse the table.

use clap::{Args, ValueEnum};
use comfy_table::{Table, presets};
use serde::Serialize;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Aligned columns under a header row.
    Text,
    /// One JSON array of objects.
    Json,
}

#[derive(Args, Clone, Copy, Debug)]
pub struct OutputArgs {
    /// `text` (aligned columns) or `json` (one array, for scripts).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub output: Format,
}

impl OutputArgs {
    /// Prints `items`: as JSON, or as a table of `headers` with one row per item.
    pub fn print<T: Serialize>(
        self,
        items: &[T],
        headers: &[&str],
        row: impl Fn(&T) -> Vec<String>,
    ) -> anyhow::Result<()> {
        match self.output {
            Format::Json => println!("{}", serde_json::to_string(items)?),
            Format::Text => println!("{}", table(headers, items.iter().map(row))),
        }
        Ok(())
    }
}

/// Columns two spaces apart, no borders, no trailing blanks: like `ps` or `kubectl get`.
fn table(headers: &[&str], rows: impl Iterator<Item = Vec<String>>) -> String {
    let mut table = Table::new();
    table
        .load_style(presets::NOTHING)
        .set_header(headers.to_vec());
    for row in rows {
        table.add_row(row);
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 2));
    }
    table.trim_fmt()
}

/// An optional value in a table cell.
pub fn or_dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_owned(), |value| value.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_is_aligned_under_its_header_without_borders() {
        let shown = table(
            &["ID", "NAME"],
            [
                vec!["groundspan".to_owned(), "Groundspan".to_owned()],
                vec!["a".to_owned(), "A".to_owned()],
            ]
            .into_iter(),
        );
        assert_eq!(
            shown,
            "ID          NAME\ngroundspan  Groundspan\na           A"
        );
    }
}

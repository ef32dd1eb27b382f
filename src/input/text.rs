//! The characters text may hold: those XML 1.0 allows (`Char` of the XML 1.0 grammar). That
//! leaves out U+0000–U+0008, U+000B, U+000C, U+000E–U+001F, U+FFFE and U+FFFF (Rust strings
//! hold no surrogates). Everything else, including tab, line feed and carriage return, is text.

use std::borrow::Cow;

use quick_xml::events::BytesText;

/// Whether `c` may appear in text maestro accepts.
pub fn is_acceptable(c: char) -> bool {
    match c {
        '\t' | '\n' | '\r' => true,
        '\u{0}'..='\u{1f}' | '\u{fffe}' | '\u{ffff}' => false,
        _ => true,
    }
}

/// The first character of `text` maestro does not accept, if any.
pub fn forbidden_char(text: &str) -> Option<char> {
    // Nearly all text is clean: a pass over the bytes finds the only two shapes a forbidden
    // character can take in UTF-8 (a byte below 0x20, or 0xEF leading U+FFFE/U+FFFF) before
    // any decoding is done.
    let bytes = text.as_bytes();
    let suspect = bytes
        .iter()
        .any(|&b| (b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r')) || b == 0xEF);
    if !suspect {
        return None;
    }
    text.chars().find(|&c| !is_acceptable(c))
}

/// `U+0000`, as messages name a character (the character itself may not be printable).
pub fn code_point(c: char) -> String {
    format!("U+{:04X}", c as u32)
}

/// A sentence saying that the text at `what` holds `c`, for a problem's message.
pub fn refusal(what: &str, c: char) -> String {
    format!(
        "{what} contains {}, a control or non-character that maestro does not accept \
         (text may hold any character XML 1.0 allows).",
        code_point(c)
    )
}

/// `text` with every character XML 1.0 forbids replaced by U+FFFD. Every XML document maestro
/// writes passes its text through here, so that none can be malformed, whatever was stored
/// before intake refused such characters.
pub fn xml_safe(text: &str) -> Cow<'_, str> {
    if forbidden_char(text).is_none() {
        return Cow::Borrowed(text);
    }
    Cow::Owned(
        text.chars()
            .map(|c| if is_acceptable(c) { c } else { '\u{fffd}' })
            .collect(),
    )
}

/// XML character data for quick-xml's writer: escaped by it, and [`xml_safe`] first. Every
/// text maestro writes into XML is made here.
pub fn xml_text(text: &str) -> BytesText<'_> {
    match xml_safe(text) {
        Cow::Borrowed(text) => BytesText::new(text),
        Cow::Owned(text) => BytesText::new(&text).into_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exactly_the_characters_xml_forbids_are_refused() {
        let forbidden: Vec<char> = ('\u{0}'..='\u{20}')
            .chain(['\u{fffd}', '\u{fffe}', '\u{ffff}', '\u{10000}'])
            .filter(|&c| !is_acceptable(c))
            .collect();
        let mut expected: Vec<char> = ('\u{0}'..='\u{8}').collect();
        expected.extend(['\u{b}', '\u{c}']);
        expected.extend('\u{e}'..='\u{1f}');
        expected.extend(['\u{fffe}', '\u{ffff}']);
        assert_eq!(forbidden, expected);
    }

    #[test]
    fn the_first_forbidden_character_is_found_anywhere() {
        assert_eq!(forbidden_char("plain text\twith\ttabs\r\n"), None);
        assert_eq!(forbidden_char("é ü 漢字 \u{fffd} \u{1f600}"), None);
        assert_eq!(forbidden_char("a\u{0}b"), Some('\u{0}'));
        assert_eq!(forbidden_char("ok \u{ef} then \u{1b}"), Some('\u{1b}'));
        assert_eq!(forbidden_char("\u{fffe}"), Some('\u{fffe}'));
        assert_eq!(forbidden_char("end\u{ffff}"), Some('\u{ffff}'));
        assert_eq!(code_point('\u{0}'), "U+0000");
        assert_eq!(code_point('\u{ffff}'), "U+FFFF");
    }

    #[test]
    fn xml_safe_text_replaces_only_what_xml_forbids() {
        assert!(matches!(xml_safe("T-1 <&>"), Cow::Borrowed("T-1 <&>")));
        assert_eq!(
            xml_safe("a\u{0}b\u{b}c\u{ffff}\n"),
            "a\u{fffd}b\u{fffd}c\u{fffd}\n"
        );
    }
}

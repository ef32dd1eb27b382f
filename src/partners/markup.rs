//! The rules a rendered card must keep, checked on every rendering before it is stored:
//!
//! - `href` and `src` hold an `http(s)` URL (or nothing): no `javascript:`, `data:` or
//!   relative addresses;
//! - a link opens in a new tab and gives the partner neither the inbox page nor its address:
//!   `target="_blank"` and `rel="noopener noreferrer"`;
//! - every image has an `alt` (its accessibility text);
//! - no scripts, frames, forms, styles or event-handler attributes.
//!
//! The scanner reads tags only. Partner data cannot open a tag or leave a quoted attribute value
//! (the card is auto-escaped), so what it finds is the template's own markup; a template that
//! breaks a rule fails every rendering with a message that names the rule.

/// Elements a card may not contain.
const FORBIDDEN: [&str; 12] = [
    "script", "style", "iframe", "frame", "object", "embed", "form", "base", "meta", "link", "svg",
    "math",
];
/// Attributes holding an address.
const ADDRESSES: [&str; 5] = ["href", "src", "action", "formaction", "poster"];

/// `Ok` when the markup keeps every rule; otherwise which rule it breaks.
pub fn check(html: &str) -> Result<(), String> {
    let bytes = html.as_bytes();
    let mut at = 0;
    while let Some(offset) = html[at..].find('<') {
        let start = at + offset;
        let rest = &html[start..];
        if let Some(comment) = rest.strip_prefix("<!--") {
            let end = comment
                .find("-->")
                .ok_or("the card has an unterminated comment")?;
            at = start + 4 + end + 3;
            continue;
        }
        let Some(&next) = bytes.get(start + 1) else {
            break;
        };
        if next == b'/' || next == b'!' {
            at = start + rest.find('>').ok_or("the card has an unterminated tag")? + 1;
            continue;
        }
        if !next.is_ascii_alphabetic() {
            // Not a tag (a template's literal "<"): text.
            at = start + 1;
            continue;
        }
        let (tag, end) = parse_tag(html, start + 1)?;
        tag.check()?;
        at = end;
    }
    Ok(())
}

/// A start tag as written; names compare without regard to ASCII case. Borrowed from the
/// markup, so that checking a card allocates nothing unless it fails.
struct Tag<'a> {
    name: &'a str,
    attributes: Vec<(&'a str, &'a str)>,
}

impl Tag<'_> {
    fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| *v)
    }

    fn check(&self) -> Result<(), String> {
        // For messages only: building it for every tag would cost an allocation each.
        let name = || self.name.to_ascii_lowercase();
        if FORBIDDEN.iter().any(|forbidden| self.is(forbidden)) {
            return Err(format!("the card may not contain <{}>", name()));
        }
        for (attribute, value) in &self.attributes {
            let handler = attribute
                .get(..2)
                .is_some_and(|head| head.eq_ignore_ascii_case("on"));
            if handler {
                return Err(format!(
                    "<{}> has an event handler ({attribute}); cards run no scripts",
                    name()
                ));
            }
            if attribute.eq_ignore_ascii_case("srcset") {
                return Err(format!("<{}> uses srcset; give one src instead", name()));
            }
            let address = ADDRESSES.iter().any(|a| attribute.eq_ignore_ascii_case(a));
            if address && !is_http_url(value) {
                return Err(format!(
                    "the {attribute} of <{}> is not an http(s) URL; pass link and image \
                     addresses through the `url` filter",
                    name()
                ));
            }
        }
        if self.is("a") && self.attribute("href").is_some() {
            let rel = self.attribute("rel").unwrap_or_default();
            let words: Vec<&str> = rel.split_ascii_whitespace().collect();
            if self.attribute("target") != Some("_blank")
                || !words.contains(&"noopener")
                || !words.contains(&"noreferrer")
            {
                return Err(
                    "a link must have target=\"_blank\" and rel=\"noopener noreferrer\"".into(),
                );
            }
        }
        if self.is("img") && self.attribute("alt").is_none() {
            return Err("an <img> needs an alt attribute (its accessibility text)".into());
        }
        Ok(())
    }
}

/// Empty (no address), or an absolute `http(s)` URL as written (entities are not decoded:
/// `&#x2f;` is not a slash here, which keeps obfuscated schemes out).
fn is_http_url(value: &str) -> bool {
    let starts = |prefix: &str| {
        value
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
    };
    value.is_empty() || starts("https://") || starts("http://")
}

/// Reads a start tag from just after its `<`; returns it and the offset after its `>`.
fn parse_tag(html: &str, from: usize) -> Result<(Tag<'_>, usize), String> {
    let bytes = html.as_bytes();
    let mut at = from;
    while at < bytes.len() && (bytes[at].is_ascii_alphanumeric() || bytes[at] == b'-') {
        at += 1;
    }
    let name = &html[from..at];
    let mut attributes = Vec::new();
    loop {
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        match bytes.get(at) {
            None => return Err(format!("the card has an unterminated <{name}> tag")),
            Some(b'>') => return Ok((Tag { name, attributes }, at + 1)),
            Some(b'/') => {
                at += 1;
                continue;
            }
            Some(_) => {}
        }
        let name_start = at;
        while at < bytes.len()
            && !matches!(bytes[at], b'=' | b'>' | b'/')
            && !bytes[at].is_ascii_whitespace()
        {
            at += 1;
        }
        let attribute = &html[name_start..at];
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        if bytes.get(at) != Some(&b'=') {
            attributes.push((attribute, ""));
            continue;
        }
        at += 1;
        while at < bytes.len() && bytes[at].is_ascii_whitespace() {
            at += 1;
        }
        let value = match bytes.get(at) {
            Some(&quote @ (b'"' | b'\'')) => {
                let end = html[at + 1..]
                    .find(quote as char)
                    .ok_or_else(|| format!("an attribute of <{name}> is not closed"))?;
                let value = &html[at + 1..at + 1 + end];
                at += end + 2;
                value
            }
            _ => {
                return Err(format!(
                    "the {attribute} of <{name}> is not quoted; quote every attribute value"
                ));
            }
        };
        attributes.push((attribute, value));
    }
}

#[cfg(test)]
mod tests {
    use super::check;

    #[test]
    fn accepts_safe_links_images_and_text() {
        check(
            r#"<article class="card"><!-- c --><img src="https://a.example/l.png" alt="Logo">
               <p>1 < 2 &amp; 3 &gt; 2</p><br/><a href="https://a.example/b?x=1&amp;y=2"
               target="_blank" rel="noopener noreferrer" class="button">Book</a><a>no link</a>
               <img src="" alt=""></article>"#,
        )
        .unwrap();
    }

    #[test]
    fn refuses_unsafe_markup() {
        for (html, rule) in [
            (
                r#"<a href="javascript:alert(1)" target="_blank" rel="noopener noreferrer">x</a>"#,
                "http(s)",
            ),
            (
                r#"<a href="https:&#x2f;&#x2f;a.example" target="_blank" rel="noopener noreferrer">x</a>"#,
                "url",
            ),
            (
                r#"<a href="/relative" target="_blank" rel="noopener noreferrer">x</a>"#,
                "http(s)",
            ),
            (r#"<a href="https://a.example">x</a>"#, "noopener"),
            (
                r#"<a href="https://a.example" target="_blank" rel="noopener">x</a>"#,
                "noreferrer",
            ),
            (r#"<img src="https://a.example/l.png">"#, "alt"),
            (
                r#"<img src="data:image/png;base64,AAAA" alt="x">"#,
                "http(s)",
            ),
            (r#"<IMG SRC=x alt="">"#, "quoted"),
            (r#"<p onclick="x()">x</p>"#, "event handler"),
            (r#"<SCRIPT>alert(1)</SCRIPT>"#, "<script>"),
            (
                r#"<p><iframe src="https://a.example"></iframe></p>"#,
                "<iframe>",
            ),
            (r#"<p title="x"#, "not closed"),
        ] {
            let err = check(html).expect_err(html);
            assert!(err.contains(rule), "{html}: {err}");
        }
    }
}

//! What a fan-out's alerts share, stored once by both backends: the rendering (named by
//! [`rendering_hash`]) and the metadata document (named by the digest the domain made when it
//! checked it), which a revision's payload leaves out and [`put_back`] restores.

use std::borrow::Cow;

use sha2::{Digest, Sha256};

use super::{AlertContent, Rendering};

/// SHA-256 of the title, card and text: the name a rendering is stored under.
pub(crate) fn rendering_hash(rendering: &Rendering) -> Vec<u8> {
    let mut hasher = Sha256::new();
    for part in [&rendering.title, &rendering.html, &rendering.text] {
        // Length-prefixed, so that no two different renderings hash the same bytes.
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().to_vec()
}

/// A revision's body as stored: the payload without its metadata, and the metadata document
/// with its digest and the byte offset where it goes back. The whole payload, and no document,
/// when the content does not say where its metadata is.
pub(crate) struct StoredBody<'a> {
    pub payload: Cow<'a, str>,
    pub metadata: Option<(&'a [u8; 32], &'a str, i64)>,
}

pub(crate) fn split_body(content: &AlertContent) -> StoredBody<'_> {
    let located = content.payload_metadata.as_ref().and_then(|metadata| {
        let json = content.payload.get(metadata.range.clone())?;
        Some((metadata, json))
    });
    match located {
        Some((metadata, json)) => {
            debug_assert_eq!(
                <[u8; 32]>::from(Sha256::digest(json.as_bytes())),
                metadata.digest
            );
            let range = &metadata.range;
            let rest = [
                &content.payload[..range.start],
                &content.payload[range.end..],
            ]
            .concat();
            StoredBody {
                payload: Cow::Owned(rest),
                metadata: Some((&metadata.digest, json, range.start as i64)),
            }
        }
        None => StoredBody {
            payload: Cow::Borrowed(content.payload.as_str()),
            metadata: None,
        },
    }
}

/// The whole body of a revision: `payload` with the metadata document `json` put back at byte
/// `at`, for a revision that names one (`at` is `None` for one stored whole).
pub(crate) fn put_back(
    mut payload: String,
    at: Option<i64>,
    json: Option<String>,
) -> Result<String, &'static str> {
    let Some(at) = at else {
        return Ok(payload);
    };
    let at = usize::try_from(at)
        .ok()
        .filter(|at| payload.is_char_boundary(*at));
    match (at, json) {
        (Some(at), Some(json)) => {
            payload.insert_str(at, &json);
            Ok(payload)
        }
        _ => Err("a revision's metadata document is missing or misplaced"),
    }
}

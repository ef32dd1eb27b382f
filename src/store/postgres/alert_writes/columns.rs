//! The columns of a batch's multi-row inserts: its revisions, and the renderings and metadata
//! documents they name, each once.

use std::sync::Arc;

use crate::store::{
    AlertContent, Rendering,
    stored_once::{rendering_hash, split_body},
};

/// The renderings and metadata documents of a batch's revisions, each once, as the columns of
/// their multi-row inserts; and per revision the names it stores.
#[derive(Default)]
pub(super) struct Shared {
    known: Vec<(Arc<Rendering>, Vec<u8>)>,
    pub(super) rendering_hash: Vec<Vec<u8>>,
    pub(super) title: Vec<String>,
    pub(super) html: Vec<String>,
    pub(super) text: Vec<String>,
    pub(super) metadata_hash: Vec<Vec<u8>>,
    pub(super) json: Vec<String>,
}

/// A batch's revision rows, as columns.
#[derive(Default)]
pub(super) struct Revisions {
    pub(super) payload: Vec<String>,
    pub(super) rendering_hash: Vec<Vec<u8>>,
    pub(super) metadata_hash: Vec<Option<Vec<u8>>>,
    pub(super) metadata_at: Vec<Option<i32>>,
}

impl Revisions {
    pub(super) fn push(&mut self, content: &AlertContent, shared: &mut Shared) {
        self.rendering_hash
            .push(shared.rendering(&content.rendering));
        let body = split_body(content);
        // A payload is at most the body limit, far below i32::MAX; should an offset not fit,
        // the body is stored whole.
        let located = body
            .metadata
            .and_then(|(digest, json, at)| Some((digest, json, i32::try_from(at).ok()?)));
        match located {
            Some((digest, json, at)) => {
                shared.metadata(digest, json);
                self.payload.push(body.payload.into_owned());
                self.metadata_hash.push(Some(digest.to_vec()));
                self.metadata_at.push(Some(at));
            }
            None => {
                self.payload.push(content.payload.clone());
                self.metadata_hash.push(None);
                self.metadata_at.push(None);
            }
        }
    }
}

impl Shared {
    fn rendering(&mut self, rendering: &Arc<Rendering>) -> Vec<u8> {
        // Alerts of a fan-out share one rendering (the same `Arc`, compared by address first).
        if let Some((_, hash)) = self.known.iter().find(|(known, _)| known == rendering) {
            return hash.clone();
        }
        let hash = rendering_hash(rendering);
        if !self.rendering_hash.contains(&hash) {
            self.rendering_hash.push(hash.clone());
            self.title.push(rendering.title.clone());
            self.html.push(rendering.html.clone());
            self.text.push(rendering.text.clone());
        }
        self.known.push((Arc::clone(rendering), hash.clone()));
        hash
    }

    fn metadata(&mut self, digest: &[u8; 32], json: &str) {
        if !self
            .metadata_hash
            .iter()
            .any(|known| known[..] == digest[..])
        {
            self.metadata_hash.push(digest.to_vec());
            self.json.push(json.to_owned());
        }
    }
}

/// Stores the batch's renderings and metadata documents that its revisions (`revised`, a CTE
/// with the columns `rendering_hash` and `metadata_hash`) name, unless they are stored.
const STORE_SHARED: &str = "rendered AS ( \
         INSERT INTO renderings (hash, title, html, text) \
         SELECT * FROM UNNEST($R1::bytea[], $R2::text[], $R3::text[], $R4::text[]) \
             AS g(hash, title, html, text) \
         WHERE g.hash IN (SELECT rendering_hash FROM named) \
         ON CONFLICT (hash) DO NOTHING), \
     documented AS ( \
         INSERT INTO metadata_documents (hash, json) \
         SELECT * FROM UNNEST($R5::bytea[], $R6::text[]) AS m(hash, json) \
         WHERE m.hash IN (SELECT metadata_hash FROM named) \
         ON CONFLICT (hash) DO NOTHING)";

/// `STORE_SHARED` with its parameters numbered from `first`.
pub(super) fn store_shared(first: usize) -> String {
    (1..=6).rev().fold(STORE_SHARED.to_owned(), |sql, n| {
        sql.replace(&format!("$R{n}"), &format!("${}", first + n - 1))
    })
}

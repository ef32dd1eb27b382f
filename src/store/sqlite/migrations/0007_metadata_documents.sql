-- Metadata stored once per distinct document. A partner fans one offer out to many travellers:
-- every one of those alerts carries the same metadata, which was most of each revision's
-- payload (2,500 of the seed's 2,810 bytes) and so most of what a create wrote and fsynced.
-- A revision written since keeps its payload without the metadata's value, names the document
-- by `metadata_hash`, and says where the value goes back (`metadata_at`, a byte offset into
-- `payload`). Revisions written before this keep their whole payload (`metadata_hash` NULL).
CREATE TABLE metadata_documents (
    hash BLOB NOT NULL UNIQUE,          -- SHA-256 of the canonical JSON
    json TEXT NOT NULL
);
ALTER TABLE alert_revisions ADD COLUMN metadata_hash BLOB REFERENCES metadata_documents(hash);
ALTER TABLE alert_revisions ADD COLUMN metadata_at INTEGER;
-- For the purge: a document goes when no revision names it any more.
CREATE INDEX alert_revisions_by_metadata ON alert_revisions (metadata_hash)
    WHERE metadata_hash IS NOT NULL;

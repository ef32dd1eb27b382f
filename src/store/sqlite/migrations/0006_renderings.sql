-- Renderings stored once per distinct content. A partner fans one offer out to many travellers,
-- and each of those alerts renders the same card; a copy per revision was most of what a
-- create wrote (and fsynced). Revisions written before this keep their own `rendered_*`
-- columns; newer ones leave them empty and name their rendering by `rendering_hash`.
CREATE TABLE renderings (
    hash  BLOB NOT NULL UNIQUE,         -- SHA-256 of the title, card and text
    title TEXT NOT NULL,
    html  TEXT NOT NULL,
    text  TEXT NOT NULL
);
ALTER TABLE alert_revisions ADD COLUMN rendering_hash BLOB REFERENCES renderings(hash);
-- For the purge: a rendering goes when no revision names it any more.
CREATE INDEX alert_revisions_by_rendering ON alert_revisions (rendering_hash)
    WHERE rendering_hash IS NOT NULL;

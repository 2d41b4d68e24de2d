-- 003: one upload row per file content, and points remember whose value they replaced.
--
-- uploads.sha256 becomes UNIQUE so two writers racing with the same bytes cannot both record an
-- upload (Store checks for a duplicate inside its write transaction; the constraint settles a race).
-- A database written before this migration may already hold repeated sha256 rows: the oldest row
-- of each content is kept, points recorded under a later copy move to it, and the copies go.
-- DuckDB builds an index over rows deleted earlier in the same transaction, so instead of
-- DELETE + CREATE UNIQUE INDEX the table is rebuilt with the constraint (same columns, same sequence).
UPDATE points SET upload_id = d.keep
FROM (SELECT id, min(id) OVER (PARTITION BY sha256) AS keep FROM uploads) d
WHERE points.upload_id = d.id AND d.id <> d.keep;

CREATE TABLE uploads_003 (
    id           INTEGER PRIMARY KEY DEFAULT nextval('upload_id_seq'),
    sha256       VARCHAR NOT NULL UNIQUE,
    name         VARCHAR NOT NULL,
    format       VARCHAR NOT NULL,
    rows         BIGINT NOT NULL,      -- data rows read from the file
    accepted     BIGINT NOT NULL,      -- points kept
    rejected     BIGINT NOT NULL,      -- rows dropped (e.g. repeated series+timestamp: last one kept)
    inserted     BIGINT NOT NULL,      -- new points
    updated      BIGINT NOT NULL,      -- existing points whose value changed (now owned by this upload)
    unchanged    BIGINT NOT NULL,      -- existing points re-sent with the same value (left with their upload)
    series_count INTEGER NOT NULL,
    actor        VARCHAR,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);
INSERT INTO uploads_003
SELECT id, sha256, name, format, rows, accepted, rejected, inserted, updated, unchanged, series_count, actor,
       created_at
FROM uploads WHERE id IN (SELECT min(id) FROM uploads GROUP BY sha256);
DROP TABLE uploads;
ALTER TABLE uploads_003 RENAME TO uploads;

-- replaced_upload: the upload whose DIFFERENT value this point overwrote (NULL for a point that was
-- new when written). Deleting the point's upload removes the point; the overwritten value is gone,
-- and Store.delete_upload reports how many such points it removed and from which uploads.
ALTER TABLE points ADD COLUMN replaced_upload INTEGER;

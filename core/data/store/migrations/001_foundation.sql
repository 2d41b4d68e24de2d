-- 001: series, points, uploads, incidents.
CREATE SEQUENCE series_id_seq START 1;
CREATE TABLE series (
    id          INTEGER PRIMARY KEY DEFAULT nextval('series_id_seq'),
    key         VARCHAR NOT NULL UNIQUE,          -- name{labels}, labels sorted
    name        VARCHAR NOT NULL,
    labels      JSON NOT NULL DEFAULT '{}',
    unit        VARCHAR,
    kind        VARCHAR NOT NULL DEFAULT 'gauge'
                CHECK (kind IN ('gauge', 'counter', 'rate', 'histogram_quantile')),
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

-- One row per (series_id, ts). Uniqueness is kept by Store.write_points inside its transaction
-- (a declared primary key makes bulk loads of millions of rows about ten times slower in DuckDB);
-- tests/test_store.py checks it. value NULL = an explicit missing value (NaN) in the source.
CREATE TABLE points (
    series_id   INTEGER NOT NULL,
    ts          TIMESTAMPTZ NOT NULL,
    value       DOUBLE,
    upload_id   INTEGER
);

CREATE SEQUENCE upload_id_seq START 1;
CREATE TABLE uploads (
    id           INTEGER PRIMARY KEY DEFAULT nextval('upload_id_seq'),
    sha256       VARCHAR NOT NULL,
    name         VARCHAR NOT NULL,
    format       VARCHAR NOT NULL,
    rows         BIGINT NOT NULL,      -- data rows read from the file
    accepted     BIGINT NOT NULL,      -- points kept
    rejected     BIGINT NOT NULL,      -- rows dropped (e.g. repeated series+timestamp: last one kept)
    inserted     BIGINT NOT NULL,      -- new points
    updated      BIGINT NOT NULL,      -- existing points whose value changed
    unchanged    BIGINT NOT NULL,      -- existing points re-sent with the same value
    series_count INTEGER NOT NULL,
    actor        VARCHAR,
    created_at   TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE SEQUENCE incident_id_seq START 1;
CREATE TABLE incidents (
    id          INTEGER PRIMARY KEY DEFAULT nextval('incident_id_seq'),
    series_key  VARCHAR,               -- NULL: applies to every series (a global incident)
    start_ts    TIMESTAMPTZ NOT NULL,
    end_ts      TIMESTAMPTZ NOT NULL,
    kind        VARCHAR,               -- e.g. spike, degradation, level_shift (free text)
    source      VARCHAR NOT NULL,      -- file name or 'manual'
    note        VARCHAR,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    CHECK (end_ts >= start_ts)
);

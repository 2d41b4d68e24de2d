-- 006: predicted impact of every policy version, and rollback trigger firings.
--
-- change_predictions: one row per (version, rule, series, measure), written in the same transaction
-- as the version itself (core/policy/versions.py _write_version), so a version never exists without
-- its prediction or the other way round. ``basis`` keeps what the interval was computed from (count
-- and span of the replay window, dispersion; incidents caught of labelled), so the interval can be
-- re-stated for the actual length of data after the change (core/policy/outcomes.py).
CREATE TABLE change_predictions (
    policy         VARCHAR NOT NULL,
    version        INTEGER NOT NULL,
    rule           VARCHAR NOT NULL,
    series         VARCHAR NOT NULL,
    measure        VARCHAR NOT NULL
                   CHECK (measure IN ('episodes_per_week', 'time_in_alert_pct', 'incidents_caught')),
    predicted      DOUBLE,                  -- NULL: no honest number (note says why)
    predicted_low  DOUBLE,
    predicted_high DOUBLE,
    source         VARCHAR NOT NULL CHECK (source IN ('recommendation', 'replay')),
    window_start   TIMESTAMPTZ,             -- the history the prediction was computed on
    window_end     TIMESTAMPTZ,
    basis          VARCHAR NOT NULL DEFAULT '{}',  -- canonical JSON
    note           VARCHAR,
    PRIMARY KEY (policy, version, rule, series, measure)
);

-- A rollback trigger fires at most once per (policy, version, trigger): the primary key enforces it.
CREATE TABLE trigger_firings (
    policy         VARCHAR NOT NULL,
    version        INTEGER NOT NULL,        -- the change the trigger judged
    trigger        VARCHAR NOT NULL CHECK (trigger IN ('alert_storm', 'missed_incident', 'slo_burn')),
    fired_at       TIMESTAMPTZ NOT NULL,
    mode           VARCHAR NOT NULL CHECK (mode IN ('rollback', 'propose')),
    result_version INTEGER,                 -- the rollback version written (in force, or pending approval)
    evidence       VARCHAR NOT NULL,        -- canonical JSON: numbers and window
    PRIMARY KEY (policy, version, trigger)
);

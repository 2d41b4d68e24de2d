-- 004: simulated A/B experiments of alert rules and their per-unit outcomes.
--
-- An experiment moves planning -> running -> completed, or to stopped (with a reason) from planning
-- or running; the allowed transitions are enforced in core/experiment/lifecycle.py and every one is
-- recorded in the audit trail in the same transaction. The plan (with its stopping rule) is frozen
-- once the experiment runs.
CREATE SEQUENCE experiment_id_seq START 1;
CREATE TABLE experiments (
    id           INTEGER PRIMARY KEY DEFAULT nextval('experiment_id_seq'),
    name         VARCHAR NOT NULL,
    series       VARCHAR NOT NULL,             -- the stored series the simulation bootstraps
    rule_a       VARCHAR NOT NULL,             -- canonical JSON of the control rule
    rule_b       VARCHAR NOT NULL,             -- canonical JSON of the candidate rule
    plan         VARCHAR NOT NULL,             -- canonical JSON of the plan (stopping rule included)
    settings     VARCHAR NOT NULL DEFAULT '{}',-- JSON: simulation settings (seed, rate, shapes, block)
    status       VARCHAR NOT NULL CHECK (status IN ('planning', 'running', 'completed', 'stopped')),
    result       VARCHAR,                      -- JSON of the verdict when completed
    stop_reason  VARCHAR,
    created_by   VARCHAR NOT NULL,
    created_at   TIMESTAMPTZ NOT NULL,
    updated_at   TIMESTAMPTZ NOT NULL
);

CREATE TABLE experiment_units (
    experiment_id  INTEGER NOT NULL,
    unit           INTEGER NOT NULL CHECK (unit >= 0),
    day            TIMESTAMPTZ NOT NULL,
    arm            VARCHAR NOT NULL CHECK (arm IN ('A', 'B')),
    episodes       DOUBLE NOT NULL,
    false_episodes DOUBLE NOT NULL,
    incidents      DOUBLE NOT NULL,
    caught         DOUBLE NOT NULL,
    missed         DOUBLE NOT NULL,
    delay_s        DOUBLE,                     -- NULL when no incident was caught that day
    PRIMARY KEY (experiment_id, unit)
);

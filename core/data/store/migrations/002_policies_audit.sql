-- 002: threshold policies (immutable versions, approvals) and the hash-chained audit trail.
--
-- A policy is the set of alert rules in force; "default" is the one the app uses. Each change is a
-- new row of policy_versions (number 1..n per policy) that is never updated afterwards: a decision
-- on a version that needs approval lives in approvals, and the version's status is derived from it.
-- The ACTIVE version is computed at query time (core/store/policies.py), so scheduled changes need
-- no scheduler.
CREATE SEQUENCE policy_id_seq START 1;
CREATE TABLE policies (
    id          INTEGER PRIMARY KEY DEFAULT nextval('policy_id_seq'),
    name        VARCHAR NOT NULL UNIQUE,
    description VARCHAR,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE policy_versions (
    policy_id         INTEGER NOT NULL,
    number            INTEGER NOT NULL CHECK (number >= 1),
    parent_number     INTEGER,                 -- the version this change was based on (NULL for v1)
    author            VARCHAR NOT NULL,
    created_at        TIMESTAMPTZ NOT NULL,
    reason            VARCHAR NOT NULL,
    content           VARCHAR NOT NULL,        -- canonical JSON of the rules (sorted keys, by rule name)
    content_hash      VARCHAR NOT NULL,        -- sha256 hex of content
    effective_at      TIMESTAMPTZ,             -- scheduled change; NULL = as soon as it is approved
    requires_approval BOOLEAN NOT NULL,        -- significant change: needs a second person
    significance      VARCHAR NOT NULL DEFAULT '[]',  -- JSON list of why it is significant
    source            VARCHAR NOT NULL DEFAULT 'apply'
                      CHECK (source IN ('apply', 'rollback', 'import', 'seed', 'experiment')),
    experiment_id     INTEGER,                 -- reserved: the experiment that proposed this version
    meta              VARCHAR NOT NULL DEFAULT '{}',  -- JSON: policy-level settings from YAML
    PRIMARY KEY (policy_id, number)
);

-- At most one decision per version: the approval (or rejection) by a second person.
CREATE TABLE approvals (
    policy_id       INTEGER NOT NULL,
    version_number  INTEGER NOT NULL,
    decision        VARCHAR NOT NULL CHECK (decision IN ('approved', 'rejected')),
    actor           VARCHAR NOT NULL,
    reason          VARCHAR NOT NULL,
    decided_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (policy_id, version_number)
);

-- Append-only audit trail. entry_hash = sha256 over the canonical fields and prev_hash
-- (see core/audit.py); verify_audit() recomputes the chain.
CREATE TABLE audit (
    seq          BIGINT PRIMARY KEY,
    ts           TIMESTAMPTZ NOT NULL,
    actor        VARCHAR NOT NULL,
    action       VARCHAR NOT NULL,
    object       VARCHAR,
    reason       VARCHAR,
    detail       VARCHAR NOT NULL,             -- canonical JSON
    before_hash  VARCHAR,
    after_hash   VARCHAR,
    prev_hash    VARCHAR NOT NULL,
    entry_hash   VARCHAR NOT NULL
);

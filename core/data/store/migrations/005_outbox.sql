-- 005: notification outbox. A notice is written in the same transaction as the change that raised it
-- (a pending approval, an SLO budget alert); one delivery row per configured channel holds its state
-- (pending -> sent, or failed after the last retry); every attempt is kept in delivery_log. Delivery
-- happens outside any write transaction (core/data/notify.py), so a failing endpoint never blocks a write.
CREATE SEQUENCE notice_id_seq START 1;
CREATE TABLE notices (
    id          INTEGER PRIMARY KEY DEFAULT nextval('notice_id_seq'),
    kind        VARCHAR NOT NULL,              -- pending_approval, slo_budget, drift, rollback
    dedup_key   VARCHAR NOT NULL,              -- same key within the de-duplication window: not sent again
    title       VARCHAR NOT NULL,
    body        VARCHAR NOT NULL,
    payload     VARCHAR NOT NULL DEFAULT '{}', -- canonical JSON of the notice's facts
    created_at  TIMESTAMPTZ NOT NULL
);
CREATE INDEX notices_dedup ON notices (dedup_key, created_at);

CREATE TABLE notice_deliveries (
    notice_id       INTEGER NOT NULL,
    channel         VARCHAR NOT NULL,          -- channel name from the notifications config
    status          VARCHAR NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at TIMESTAMPTZ NOT NULL,
    last_error      VARCHAR,
    sent_at         TIMESTAMPTZ,
    PRIMARY KEY (notice_id, channel)
);

CREATE TABLE notice_log (
    notice_id   INTEGER NOT NULL,
    channel     VARCHAR NOT NULL,
    attempt     INTEGER NOT NULL,
    ts          TIMESTAMPTZ NOT NULL,
    ok          BOOLEAN NOT NULL,
    http_status INTEGER,
    error       VARCHAR
);

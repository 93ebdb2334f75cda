-- Version 4: the annotators' workbench (fvlm audit).

-- Every decision is one append-only row of audits: who, when, on what item
-- (target table + JSON key, the study it belongs to), the old and new value,
-- a comment. kind: link (new accept|reject; an accepted link align did not
-- find is an added link), status (normal|abnormal|unmentioned), label
-- (present|absent|uncertain), flag (phi_seen|wrong_series|bad_mask|not_ct),
-- undo (undoes names the row taken back). role: the decider's role then (a
-- lead's decision resolves a conflict). queue: the order the study was
-- served from (random: the sample that estimates precision without bias).
ALTER TABLE audits ADD COLUMN study_id INTEGER REFERENCES studies(id);
ALTER TABLE audits ADD COLUMN kind TEXT;
ALTER TABLE audits ADD COLUMN comment TEXT;
ALTER TABLE audits ADD COLUMN undoes INTEGER REFERENCES audits(id);
ALTER TABLE audits ADD COLUMN role TEXT;
ALTER TABLE audits ADD COLUMN queue TEXT;
CREATE INDEX audits_study ON audits(study_id);
CREATE INDEX audits_undoes ON audits(undoes);
CREATE TRIGGER audits_append_only_update BEFORE UPDATE ON audits
BEGIN SELECT RAISE(ABORT, 'audits is append-only'); END;
CREATE TRIGGER audits_append_only_delete BEFORE DELETE ON audits
BEGIN SELECT RAISE(ABORT, 'audits is append-only'); END;

-- Annotators' accounts: the token is shown once; only HMAC-SHA256(salt,
-- token) is kept. A removed account keeps its row (its decisions name it).
CREATE TABLE audit_users (
  id          INTEGER PRIMARY KEY,
  name        TEXT NOT NULL UNIQUE,
  role        TEXT NOT NULL CHECK (role IN ('annotator', 'lead')),
  salt        TEXT NOT NULL,               -- 16 random bytes, hex
  token_hash  TEXT NOT NULL,               -- HMAC-SHA256(salt, token), hex
  created_at  TEXT NOT NULL,
  removed_at  TEXT
);

-- The studies each annotator is to audit, in the order the lead chose.
CREATE TABLE audit_queue (
  who         TEXT NOT NULL,               -- audit_users.name
  study_id    INTEGER NOT NULL REFERENCES studies(id),
  pos         INTEGER NOT NULL,            -- 0 first
  ord         TEXT NOT NULL CHECK (ord IN ('flags', 'weakest', 'model', 'random')),
  score       REAL,                        -- what the order sorted by
  doubled     INTEGER NOT NULL DEFAULT 0,  -- 1: given to two annotators for agreement
  seed        INTEGER,                     -- random order's seed
  created_at  TEXT NOT NULL,
  PRIMARY KEY (who, study_id)
);
CREATE INDEX audit_queue_pos ON audit_queue(who, pos);

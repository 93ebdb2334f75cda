-- Version 2: links explain themselves; a table of corpus-wide facts; runs
-- record where they ran.

-- Why a link exists: the matched term and its byte offsets into
-- reports.text, the rule or cue that fired, and for a continuation the
-- sentence it continues.
ALTER TABLE links ADD COLUMN term TEXT;
ALTER TABLE links ADD COLUMN start INTEGER;
ALTER TABLE links ADD COLUMN end INTEGER;
ALTER TABLE links ADD COLUMN rule TEXT;
ALTER TABLE links ADD COLUMN continues INTEGER REFERENCES sentences(id);

-- Corpus-wide facts, one value per key (the de-identification key's
-- fingerprint, say).
CREATE TABLE meta (
  key         TEXT PRIMARY KEY,
  value       TEXT NOT NULL
);

ALTER TABLE runs ADD COLUMN revision TEXT;
ALTER TABLE runs ADD COLUMN host TEXT;
ALTER TABLE runs ADD COLUMN corpus_fingerprint TEXT;

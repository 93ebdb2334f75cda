-- The corpus database: the current schema, applied as a whole to a new file.
-- Its version is PRAGMA user_version, set by lib/db.c to FVLM_SCHEMA_VERSION.
-- An older database is brought forward by schemas/migrations/NNN.sql (the
-- step from version NNN-1 to NNN), each inside one transaction.
--
-- Conventions: ids are INTEGER PRIMARY KEY; times are ISO-8601 UTC text;
-- anatomy and task ids are the `id` columns of schemas/anatomy.tsv and
-- schemas/findings.tsv; offsets into report text are byte offsets into
-- reports.text (UTF-8, as stored); voxel boxes are half-open [lo, hi) on the
-- corpus grid in (z, y, x) order.

-- --------------------------------------------------------------------------
-- Runs and errors: every stage invocation, every per-item failure.
-- --------------------------------------------------------------------------
CREATE TABLE runs (
  id          INTEGER PRIMARY KEY,
  stage       TEXT NOT NULL,               -- ingest, parse, align, train, eval, probe, synth, demo
  args        TEXT NOT NULL,               -- JSON array of the command line
  config      TEXT,                        -- JSON object of the effective config
  version     TEXT NOT NULL,               -- fvlm version that ran
  seed        INTEGER,
  started_at  TEXT NOT NULL,
  ended_at    TEXT,
  status      TEXT NOT NULL CHECK (status IN ('running', 'ok', 'failed', 'interrupted')),
  counts      TEXT,                        -- JSON object: items seen, done, skipped, ...
  n_errors    INTEGER NOT NULL DEFAULT 0,
  pid         INTEGER,                     -- process that ran it (to find interrupted runs)
  revision    TEXT,                        -- source revision of the fvlm that ran
  host        TEXT,                        -- machine it ran on
  corpus_fingerprint TEXT                  -- what the corpus held when it started
);

CREATE TABLE errors (
  id          INTEGER PRIMARY KEY,
  run_id      INTEGER NOT NULL REFERENCES runs(id),
  source      TEXT NOT NULL,               -- file or archive path, or table name
  member      TEXT,                        -- archive member, row number or offset
  reason      TEXT NOT NULL,
  created_at  TEXT NOT NULL
);
CREATE INDEX errors_run ON errors(run_id);

-- Corpus-wide facts, one value per key (the de-identification key's
-- fingerprint, say).
CREATE TABLE meta (
  key         TEXT PRIMARY KEY,
  value       TEXT NOT NULL
);

-- --------------------------------------------------------------------------
-- Ingest: sources, studies, volumes, masks, reports.
-- --------------------------------------------------------------------------
CREATE TABLE sources (
  id          INTEGER PRIMARY KEY,
  path        TEXT NOT NULL,               -- archive or file path (de-identified)
  member      TEXT NOT NULL DEFAULT '',    -- member inside the archive ('' for a plain file)
  sha256      TEXT NOT NULL,               -- of the member's bytes
  size        INTEGER NOT NULL,
  kind        TEXT NOT NULL,               -- dicom, nifti, mask, report, metadata, other
  status      TEXT NOT NULL CHECK (status IN ('ok', 'failed', 'ignored')),
  study_id    INTEGER REFERENCES studies(id),
  run_id      INTEGER NOT NULL REFERENCES runs(id),
  reason      TEXT                         -- status ignored: why (failed: see errors)
);
-- A member is its bytes at its place: the same bytes in two studies are two
-- rows (re-runs skip a member by its place and sha256).
CREATE UNIQUE INDEX sources_member ON sources(sha256, kind, path, member);

CREATE TABLE studies (
  id          INTEGER PRIMARY KEY,
  study_key   TEXT NOT NULL UNIQUE,        -- keyed hash (HMAC-SHA256) of the source study id
  patient_key TEXT,                        -- keyed hash of the patient id
  dataset     TEXT,                        -- where it came from: hospital, ctrate, ...
  split       TEXT NOT NULL DEFAULT 'train' CHECK (split IN ('train', 'valid', 'test')),
  created_run INTEGER REFERENCES runs(id)
);

CREATE TABLE volumes (
  id          INTEGER PRIMARY KEY,
  study_id    INTEGER NOT NULL REFERENCES studies(id),
  sha256      TEXT NOT NULL,               -- of the source bytes (a series: of its sorted members)
  source      TEXT NOT NULL,               -- archive:member or series description
  src_dims    TEXT NOT NULL,               -- JSON [nx, ny, nz]
  src_spacing TEXT NOT NULL,               -- JSON [sx, sy, sz] mm
  src_affine  TEXT NOT NULL,               -- JSON 4x4 voxel -> RAS+ mm
  src_orient  TEXT NOT NULL,               -- orientation code of the source, e.g. LPS
  src_dtype   TEXT NOT NULL,
  nz INTEGER NOT NULL, ny INTEGER NOT NULL, nx INTEGER NOT NULL,   -- corpus grid
  sz REAL NOT NULL, sy REAL NOT NULL, sx REAL NOT NULL,            -- corpus spacing, mm
  affine      TEXT NOT NULL,               -- JSON 4x4 of the corpus grid
  shard       TEXT NOT NULL,               -- file name under <db>.tensors/
  tensor      TEXT NOT NULL,               -- tensor name in the shard (int16 HU, (z, y, x))
  hu_min REAL, hu_max REAL, hu_mean REAL,
  notes       TEXT,                        -- what ingest did: gaps, duplicates, scouts dropped
  UNIQUE (study_id)
);

CREATE TABLE masks (
  id          INTEGER PRIMARY KEY,
  study_id    INTEGER NOT NULL REFERENCES studies(id),
  volume_id   INTEGER NOT NULL REFERENCES volumes(id),
  sha256      TEXT NOT NULL,
  source      TEXT NOT NULL,
  shard       TEXT NOT NULL,
  tensor      TEXT NOT NULL,               -- uint8 TotalSegmentator ids on the volume's grid
  labels      TEXT,                        -- JSON: label ids present
  resampled   INTEGER NOT NULL DEFAULT 0,  -- 1 when the source grid differed from the CT's
  UNIQUE (study_id)
);

CREATE TABLE reports (
  id          INTEGER PRIMARY KEY,
  study_id    INTEGER NOT NULL REFERENCES studies(id),
  sha256      TEXT NOT NULL,
  source      TEXT NOT NULL,
  format      TEXT NOT NULL,               -- txt, ctrate_csv, jsonl, dicom_sr
  language    TEXT NOT NULL CHECK (language IN ('zh', 'en')),
  encoding    TEXT NOT NULL,               -- detected source encoding: utf-8, utf-8-bom, gb18030
  text        TEXT NOT NULL,               -- de-identified UTF-8 text
  n_phi       INTEGER NOT NULL DEFAULT 0,  -- placeholders substituted by de-identification
  parsed_run  INTEGER REFERENCES runs(id), -- last parse run that processed it
  UNIQUE (study_id)
);

-- --------------------------------------------------------------------------
-- Parse: sentences, mentions, findings, labels.
-- --------------------------------------------------------------------------
CREATE TABLE sentences (
  id          INTEGER PRIMARY KEY,
  report_id   INTEGER NOT NULL REFERENCES reports(id),
  study_id    INTEGER NOT NULL REFERENCES studies(id),
  idx         INTEGER NOT NULL,            -- order in the report, from 0
  section     TEXT NOT NULL CHECK (section IN ('findings', 'impression', 'other')),
  start       INTEGER NOT NULL,            -- byte offsets into reports.text
  end         INTEGER NOT NULL,
  text        TEXT NOT NULL,               -- the original span
  norm        TEXT NOT NULL,               -- the normalised text the rules saw
  UNIQUE (report_id, idx)
);
CREATE INDEX sentences_study ON sentences(study_id);

CREATE TABLE mentions (
  id          INTEGER PRIMARY KEY,
  sentence_id INTEGER NOT NULL REFERENCES sentences(id),
  anatomy     TEXT NOT NULL,
  start       INTEGER NOT NULL,
  end         INTEGER NOT NULL,
  term        TEXT NOT NULL,
  rule        TEXT NOT NULL
);
CREATE INDEX mentions_sentence ON mentions(sentence_id);

CREATE TABLE findings (
  id          INTEGER PRIMARY KEY,
  sentence_id INTEGER NOT NULL REFERENCES sentences(id),
  study_id    INTEGER NOT NULL REFERENCES studies(id),
  task        TEXT NOT NULL,
  anatomy     TEXT NOT NULL,
  polarity    INTEGER NOT NULL CHECK (polarity IN (1, 0, -1)),  -- present, absent, uncertain
  start       INTEGER NOT NULL,
  end         INTEGER NOT NULL,
  term        TEXT NOT NULL,
  rule        TEXT NOT NULL                -- id of the rule that decided the polarity
);
CREATE INDEX findings_sentence ON findings(sentence_id);
CREATE INDEX findings_study ON findings(study_id);

CREATE TABLE labels (
  study_id    INTEGER NOT NULL REFERENCES studies(id),
  task        TEXT NOT NULL,
  value       INTEGER CHECK (value IN (1, 0, -1)),  -- NULL: not mentioned
  source      TEXT NOT NULL CHECK (source IN ('parsed', 'gold', 'audit')),
  sentence_id INTEGER REFERENCES sentences(id),
  start       INTEGER,
  end         INTEGER,
  rule        TEXT,
  run_id      INTEGER REFERENCES runs(id),
  PRIMARY KEY (study_id, task)
);

-- --------------------------------------------------------------------------
-- Align: links, anatomy status, regions, flags, samples.
-- --------------------------------------------------------------------------
CREATE TABLE links (
  sentence_id INTEGER NOT NULL REFERENCES sentences(id),
  anatomy     TEXT NOT NULL,               -- '' records a sentence that links to none
  method      TEXT NOT NULL,               -- mention, finding, continuation, group, none, audit
  confidence  REAL NOT NULL,
  source      TEXT NOT NULL DEFAULT 'align' CHECK (source IN ('align', 'audit')),
  accepted    INTEGER,                     -- annotator: 1 accepted, 0 rejected, NULL not audited
  run_id      INTEGER REFERENCES runs(id),
  -- why the link exists
  term        TEXT,                        -- the matched term or cue
  start       INTEGER,                     -- its byte offsets into reports.text
  end         INTEGER,
  rule        TEXT,                        -- the rule or cue that fired
  continues   INTEGER REFERENCES sentences(id),  -- a continuation: the sentence it continues
  PRIMARY KEY (sentence_id, anatomy)
);

CREATE TABLE regions (
  study_id    INTEGER NOT NULL REFERENCES studies(id),
  anatomy     TEXT NOT NULL,               -- '_union' holds the crop box of all anatomies
  voxels      INTEGER NOT NULL,
  volume_ml   REAL NOT NULL,
  z0 INTEGER NOT NULL, z1 INTEGER NOT NULL,
  y0 INTEGER NOT NULL, y1 INTEGER NOT NULL,
  x0 INTEGER NOT NULL, x1 INTEGER NOT NULL,
  whole       INTEGER NOT NULL,            -- 1 when it does not touch the volume's border
  run_id      INTEGER REFERENCES runs(id),
  PRIMARY KEY (study_id, anatomy)
);

CREATE TABLE anatomy_status (
  study_id    INTEGER NOT NULL REFERENCES studies(id),
  anatomy     TEXT NOT NULL,
  status      TEXT NOT NULL CHECK (status IN ('normal', 'abnormal', 'unmentioned')),
  findings_text   TEXT NOT NULL DEFAULT '',   -- its findings sentences, report order
  impression_text TEXT NOT NULL DEFAULT '',   -- its impression sentences, report order
  text        TEXT NOT NULL DEFAULT '',    -- training text: impression then findings, or the normal template
  diseases    TEXT NOT NULL DEFAULT '[]',  -- JSON array of task ids present or uncertain
  source      TEXT NOT NULL DEFAULT 'align' CHECK (source IN ('align', 'audit')),
  run_id      INTEGER REFERENCES runs(id),
  PRIMARY KEY (study_id, anatomy)
);

CREATE TABLE flags (
  id          INTEGER PRIMARY KEY,
  study_id    INTEGER NOT NULL REFERENCES studies(id),
  anatomy     TEXT,
  kind        TEXT NOT NULL,               -- abnormal_without_mask, implausible_volume, no_mask, ...
  detail      TEXT,
  run_id      INTEGER REFERENCES runs(id)
);
CREATE INDEX flags_study ON flags(study_id);

-- The anatomy-level training set: one row per (study, anatomy) that can be
-- trained on (has text and a region).
CREATE TABLE samples (
  study_id    INTEGER NOT NULL REFERENCES studies(id),
  anatomy     TEXT NOT NULL,
  split       TEXT NOT NULL,
  status      TEXT NOT NULL CHECK (status IN ('normal', 'abnormal')),
  text        TEXT NOT NULL,
  diseases    TEXT NOT NULL DEFAULT '[]',
  whole       INTEGER NOT NULL,
  run_id      INTEGER REFERENCES runs(id),
  PRIMARY KEY (study_id, anatomy)
);

-- Annotators' changes, newest last.
CREATE TABLE audits (
  id          INTEGER PRIMARY KEY,
  who         TEXT NOT NULL,
  at          TEXT NOT NULL,
  target      TEXT NOT NULL,               -- table name
  key         TEXT NOT NULL,               -- JSON of the row's key
  old         TEXT,
  new         TEXT,
  study_id    INTEGER REFERENCES studies(id),
  kind        TEXT,                        -- link, status, label, flag, undo (see migrations/003.sql)
  comment     TEXT,
  undoes      INTEGER REFERENCES audits(id),  -- undo: the row it takes back
  role        TEXT,                        -- annotator or lead, when decided
  queue       TEXT                         -- the queue order the study was served from
);
CREATE INDEX audits_study ON audits(study_id);
CREATE INDEX audits_undoes ON audits(undoes);
-- Append-only: a decision is taken back by an undo row, never edited.
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

-- --------------------------------------------------------------------------
-- Train and eval.
-- --------------------------------------------------------------------------
CREATE TABLE models (
  id          INTEGER PRIMARY KEY,
  run_id      INTEGER NOT NULL REFERENCES runs(id),
  path        TEXT NOT NULL,
  sha256      TEXT NOT NULL,
  preset      TEXT NOT NULL,
  loss        TEXT NOT NULL,
  step        INTEGER NOT NULL,
  created_at  TEXT NOT NULL
);

CREATE TABLE metrics (
  run_id      INTEGER NOT NULL REFERENCES runs(id),
  step        INTEGER NOT NULL,
  epoch       INTEGER,
  name        TEXT NOT NULL,               -- loss, lr, val_loss, samples_per_s, ...
  value       REAL NOT NULL,
  PRIMARY KEY (run_id, step, name)
);

CREATE TABLE eval_results (
  run_id      INTEGER NOT NULL REFERENCES runs(id),
  model_id    INTEGER REFERENCES models(id),
  method      TEXT NOT NULL,               -- zero-shot or probe
  task        TEXT NOT NULL,
  anatomy     TEXT NOT NULL,
  split       TEXT NOT NULL,
  style       TEXT NOT NULL,               -- prompt style: fvlm or ctclip
  label_source TEXT NOT NULL,              -- truth file, labels csv, or parsed (silver)
  n_pos       INTEGER NOT NULL,
  n_neg       INTEGER NOT NULL,
  n_uncertain INTEGER NOT NULL,
  auc REAL, auc_lo REAL, auc_hi REAL,      -- NULL when the task has one class only
  threshold REAL, accuracy REAL, f1_weighted REAL, precision REAL,
  sensitivity REAL, specificity REAL,
  PRIMARY KEY (run_id, method, task)
);

-- The identifiers a user may type to find a study (`fvlm key`, --accession,
-- the audit search), as keyed hashes only: HMAC-SHA256(key,
-- "<kind>:<identifier>"). kind: accession (DICOM AccessionNumber), study_uid
-- (StudyInstanceUID), source (an archive or study-folder name without
-- extension, a file stem, a CT-RATE study or volume name). See
-- migrations/005.sql.
CREATE TABLE study_ids (
  study_id    INTEGER NOT NULL REFERENCES studies(id),
  kind        TEXT NOT NULL,               -- accession, study_uid or source
  id_hash     TEXT NOT NULL,               -- HMAC-SHA256(key, "<kind>:<identifier>"), hex
  PRIMARY KEY (kind, id_hash, study_id)
);
